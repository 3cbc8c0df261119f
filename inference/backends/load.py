"""Build the engine `llm.backend` names, and say in one line at startup what it serves.

`inference.llm.load_llm` calls `load_backend` for every backend but `transformers`; with
`llm.generate_backend` set, ranking and generation run on two engines (`split.TaskSplitLLM`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from inference.errors import ModelError
from inference.settings import LLMSettings

log = logging.getLogger(__name__)


def load_backend(settings: LLMSettings, cache_dir: Path, backend: str) -> Any:
    """A loaded engine of kind `backend` ('llamacpp' or 'openai') for `settings`."""
    if backend == "llamacpp":
        llm = _llamacpp(settings)
    elif backend == "openai":
        llm = _openai(settings, cache_dir)
    else:
        raise ModelError(f"unknown llm.backend {backend!r}")
    log.warning("llm backend %s: %s", backend, capabilities(llm))
    return llm


def capabilities(llm: Any) -> str:
    """One line: how this engine ranks, constrains and streams (what it cannot do, plainly)."""
    mode = getattr(llm, "logprob_mode", "")
    if mode:  # openai
        reasons = (
            "grammar-constrained reasons"
            if llm.grammar_ok
            else "NO grammar: reasons checked, template reason on a miss (counted)"
        )
        return f"ranking by /v1/completions logprobs ({mode}), {reasons}, streamed replies"
    return "ranking by label logits, token-masked reasons, streamed replies"


def _llamacpp(settings: LLMSettings) -> Any:
    from inference.backends.llamacpp import LlamaCppLLM
    from inference.model_files import builtin_gguf_path

    gguf = settings.gguf or builtin_gguf_path()
    return LlamaCppLLM(
        gguf,
        n_ctx=settings.n_ctx,
        threads=settings.threads,
        lora_path=settings.gguf_lora,
        name=settings.model,
    )


def _openai(settings: LLMSettings, cache_dir: Path) -> Any:
    from transformers import AutoTokenizer

    from inference.backends.openai_http import OpenAIHTTPLLM
    from inference.model_files import resolve_model_dir

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_dir(settings.model, cache_dir))
    except OSError as exc:
        raise ModelError(
            f"llm.backend 'openai' needs a local tokenizer of the served model at llm.model "
            f"({settings.model!r}): {str(exc).splitlines()[0]}"
        ) from None
    return OpenAIHTTPLLM(
        settings.base_url,
        settings.served_model,
        tokenizer,
        api_key_env=settings.api_key_env,
        timeout_s=settings.timeout_s,
        grammar_field=settings.grammar_field,
        extra_body=dict(settings.extra_body),
    )
