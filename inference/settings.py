"""Settings of the LLM runtime: which model, how it is loaded, how it reranks.

The chatbot's `Settings` nests these under `llm`; finetune and evaluation read them too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, Field

BUILTIN_LLM = "builtin:smollm2-135m-instruct"


RerankMode = Literal["auto", "logits", "generate", "pointwise"]
RERANK_MODES: tuple[str, ...] = get_args(RerankMode)[1:]  # the runnable ones ("auto" resolves)


class LLMSettings(BaseModel):
    model: str = Field(
        BUILTIN_LLM,
        description="Base model: 'builtin:smollm2-135m-instruct', a local HF model dir, or a hub id "
        "already in the local HF cache (HF_HUB_OFFLINE=1 is always set).",
    )
    adapter: Path | None = Field(None, description="LoRA adapter dir made by `recochat finetune`.")
    load_in_4bit: bool = Field(
        False, description="Load the base model in 4-bit NF4 via bitsandbytes (QLoRA-style)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Compute dtype when not 4-bit. 'auto': bfloat16 on CUDA and on CPUs with "
        "AMX/AVX512-BF16 (several times faster there), float32 on other CPUs.",
    )
    threads: int = Field(0, description="torch CPU threads; 0 = torch's default.")
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
