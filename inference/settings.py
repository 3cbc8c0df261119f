"""Settings of the LLM runtime: which model, how it is loaded, how it reranks.

The chatbot's `Settings` nests these under `llm`; finetune and evaluation read them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, model_validator

BUILTIN_LLM = "builtin:smollm2-135m-instruct"


RerankMode = Literal["auto", "logits", "generate", "pointwise"]
RERANK_MODES: tuple[str, ...] = get_args(RerankMode)[1:]  # the runnable ones ("auto" resolves)

Backend = Literal["transformers", "llamacpp", "openai"]
BACKENDS: tuple[str, ...] = get_args(Backend)


class LLMSettings(BaseModel):
    model: str = Field(
        BUILTIN_LLM,
        description="Base model: 'builtin:smollm2-135m-instruct', a local HF model dir, or a hub id "
        "already in the local HF cache (HF_HUB_OFFLINE=1 is always set).",
    )
    adapter: Path | None = Field(None, description="LoRA adapter dir made by `recochat finetune`.")
    reply_adapter: Path | None = Field(
        None,
        description="LoRA adapter dir made by `recochat finetune --task reply`: the reply writer "
        "runs on a second copy of the base model with it merged (unset: the reply uses the "
        "served LLM).",
    )
    load_in_4bit: bool = Field(
        False, description="Load the base model in 4-bit NF4 via bitsandbytes (QLoRA-style)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Compute dtype when not 4-bit. 'auto': bfloat16 on CUDA and on CPUs with "
        "AMX/AVX512-BF16 (several times faster there), float32 on other CPUs.",
    )
    decode_weights: Literal["bf16", "int4"] = Field(
        "bf16",
        description="transformers on a CPU: 'int4' runs one-token decoding steps from "
        "4-bit weights (a scale and offset per 32 inputs, the bundled model's own Q4_1 grid), "
        "1.4-2x as fast per step; prefill and ranking stay on the model's own bf16 or fp32 "
        "weights (inference/int4_decode.py).",
    )
    threads: int = Field(
        0, description="torch CPU threads (of the compute thread when it is on); 0 = the default."
    )
    trust_remote_code: bool = Field(
        False,
        description="Allow model repos to run their own Python code. Off unless you trust it.",
    )
    max_reason_tokens: int = Field(
        24,
        description="Token budget of one generated reason (a cut reason ends at its last comma).",
    )
    rerank_mode: RerankMode = Field(
        "auto",
        description="'auto': the mode the served adapter was trained for (its "
        "recochat_finetune.json), else 'logits'. "
        "'logits': rank by next-token letter probabilities (one forward pass); "
        "'generate': parse a generated letter list, falling back to logits when unparsable; "
        "'pointwise': one yes/no question per candidate (prompts/score.txt), batched over a "
        "shared conversation prefix.",
    )
    rerank_prior: float = Field(
        1.0, description="Weight of the retrieval-rank prior fused with the LLM scores.", ge=0
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the LLM runs.")
    backend: Backend = Field(
        "transformers",
        description="Inference engine: 'transformers' (in-process, the training reference), "
        "'llamacpp' (a GGUF in-process via llama-cpp-python), 'openai' (any OpenAI-compatible "
        "completions server: llama.cpp's server, vLLM, ...).",
    )
    generate_backend: Backend | None = Field(
        None,
        description="Engine for reply/reason generation when it should differ from `backend` "
        "(ranking stays on `backend`); None: `backend` does everything.",
    )
    batching: bool = Field(
        False,
        description="Share forward passes across sessions (inference/batching.py): on "
        "transformers, concurrent streamed replies decode as one continuous batch "
        "(inference/stream_batching.py) and generate calls merge; ranking calls are never "
        "merged (batch-invariant scores). Raises server.concurrency's default to 16.",
    )
    batch_window_ms: float = Field(
        8.0, ge=0, description="How long a generation call waits for others to join its batch."
    )
    gguf: Path | None = Field(
        None,
        description="llamacpp: the GGUF file; None: the builtin model's bundled Q4_1 GGUF "
        "(a fine-tuned adapter: `recochat export-gguf --mode merged`).",
    )
    gguf_lora: Path | None = Field(
        None,
        description="llamacpp: a llama.cpp LoRA GGUF applied on top of `gguf` "
        "(`recochat export-gguf --mode lora`).",
    )
    n_ctx: int = Field(4096, ge=256, description="llamacpp: context length in tokens.")
    base_url: str = Field(
        "", description="openai: the server's API root, e.g. http://127.0.0.1:8080/v1."
    )
    served_model: str = Field(
        "",
        description="openai: the model name on the server; '' = the only model it serves. "
        "`model` must still name a local copy of its tokenizer.",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="openai: env var holding the API key (local servers: none)."
    )
    timeout_s: float = Field(60.0, gt=0, description="openai: seconds per HTTP request.")
    grammar_field: str | None = Field(
        "grammar",
        description="openai: request field for a GBNF grammar (llama.cpp: 'grammar', vLLM: "
        "'guided_grammar'); None: never send one (outputs are checked instead).",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=lambda: {"repeat_penalty": 1.1},
        description="openai: extra request fields (vLLM: {repetition_penalty = 1.1}).",
    )

    @model_validator(mode="after")
    def _backend_keys(self) -> LLMSettings:
        engines = {self.backend, self.generate_backend or self.backend}
        if "openai" in engines and not self.base_url:
            raise ValueError(
                "llm.backend 'openai' needs llm.base_url (e.g. http://127.0.0.1:8080/v1)"
            )
        if "llamacpp" in engines:
            if self.adapter is not None and self.gguf is None and self.gguf_lora is None:
                raise ValueError(
                    "llm.backend 'llamacpp' runs GGUF files: export the adapter with "
                    "`recochat export-gguf --adapter DIR --out FILE` and set llm.gguf"
                )
            if self.gguf is None and self.model != BUILTIN_LLM:
                raise ValueError(f"llm.backend 'llamacpp' needs llm.gguf for {self.model!r}")
        if self.decode_weights != "bf16" and "transformers" not in engines:
            raise ValueError(
                "llm.decode_weights is a transformers option (a GGUF decodes from its own weights)"
            )
        if self.load_in_4bit and engines != {"transformers"}:
            raise ValueError("llm.load_in_4bit is a transformers option (GGUFs are quantized)")
        return self
