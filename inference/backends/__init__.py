"""LLM engines behind the interface of `inference.llm.LLM` (the transformers reference).

- `llamacpp.LlamaCppLLM`: a GGUF file run in-process by llama.cpp (`llama-cpp-python`).
- `openai_http.OpenAIHTTPLLM`: any OpenAI-compatible completions server (llama.cpp's server,
  vLLM, ...), over HTTP.

Both give the callers what `LLM` gives them: `chat_prompt`, `label_token_ids`,
`label_logprobs`, `label_logprobs_rows`, `vocabulary_of`, `generate`, `generate_ids`,
`cache_prefix`, `cache_head`, `stats`, `lock`, `name`. Nothing here is imported at package
import time: each backend imports its engine when it is created.
"""
