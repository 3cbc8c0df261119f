"""Load the causal LLM once per process and run the two operations the product needs.

- `label_logprobs`: one forward pass, log-probabilities of single-token labels at the answer
  position (the reranker's scores).
- `generate`: batched greedy generation (the naive baseline, eval replies), a plain decoding loop
  that stops each row at `stop` / end-of-sequence instead of running the full token budget;
  `stream_ids` / `stream_text`: the same step for one prompt, each token as it is picked (the
  reply the page shows as it is written).

Both reuse the keys/values of prompt prefixes already run (`inference.prefix_cache`): the static
chat template + system prompt + instruction header is computed once, and the part a batch of
reason prompts shares is run once for the whole batch. Compute is bf16 where the hardware has
bf16 units (`llm.dtype = "auto"`), fp32 elsewhere.

Weights are located and loaded by `inference.model_files`. The operations live in mixins by
job: `inference.label_scoring`, `inference.generation`, and the prefill/step machinery they
share, `inference.forward`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference import compute_thread
from inference.forward import ForwardPass, full_attention_only
from inference.generation import Generation
from inference.label_scoring import LabelScoring
from inference.linear_packing import pack_linears, split_head
from inference.model_files import load_base_model, validate_adapter_dir
from inference.prefix_cache import PrefixCache
from inference.settings import LLMSettings

log = logging.getLogger(__name__)


@dataclass
class LLMStats:
    """Counters since load (read deltas around a call): what ran, what the cache saved."""

    prompt_tokens: int = 0  # prompt tokens run through the model
    cached_tokens: int = 0  # prompt tokens whose keys/values came from the prefix cache
    generated_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0


@dataclass
class LLM(LabelScoring, Generation, ForwardPass):
    """A loaded model + tokenizer, shared by all requests of a process.

    `prefix_cache=None` runs every prompt from its first token (the reference path).
    """

    model: Any
    tokenizer: Any
    name: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    prefix_cache: PrefixCache | None = field(default_factory=PrefixCache, repr=False)
    stats: LLMStats = field(default_factory=LLMStats)

    def __post_init__(self) -> None:
        # Sliding-window layers drop old keys, so a stored prefix would not be reusable.
        if self.prefix_cache is not None and not full_attention_only(self.model.config):
            self.prefix_cache = None
        self._decoder, self._head = split_head(self.model)

    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user_text})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )


def load_llm(settings: LLMSettings, cache_dir: Path) -> Any:
    """The engine(s) `llm.backend` / `llm.generate_backend` name, loaded, with `LLM`'s methods
    (+ `inference.batching` when `llm.batching`)."""
    ranker = _load_engine(settings, cache_dir, settings.backend)
    llm = ranker
    writer_kind = settings.generate_backend or settings.backend
    if writer_kind != settings.backend:
        from inference.backends.split import TaskSplitLLM

        llm = TaskSplitLLM(ranker, _load_engine(settings, cache_dir, writer_kind))
    if settings.batching:
        from inference.batching import BatchingLLM

        llm = BatchingLLM(llm, window_s=settings.batch_window_ms / 1000)
    return llm


def _load_engine(settings: LLMSettings, cache_dir: Path, backend: str) -> Any:
    if backend == "transformers":
        return load_transformers_llm(settings, cache_dir)
    from inference.backends.load import load_backend

    return load_backend(settings, cache_dir, backend)


def load_transformers_llm(settings: LLMSettings, cache_dir: Path) -> LLM:
    """Load the configured base model (+ LoRA adapter) for inference in-process (on the
    compute thread, where its forward passes will run)."""
    return compute_thread.run(_load_transformers_llm, settings, cache_dir)


def _load_transformers_llm(settings: LLMSettings, cache_dir: Path) -> LLM:
    adapter = validate_adapter_dir(settings.adapter) if settings.adapter else None
    model, tokenizer = load_base_model(settings, cache_dir)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        if not settings.load_in_4bit:
            model = model.merge_and_unload()  # no adapter overhead per token at serving time
    model.eval()
    if not settings.load_in_4bit:
        packed = pack_linears(model, settings.decode_weights)
        int4 = sum(1 for m in model.modules() if getattr(m, "int4", None) is not None)
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        log.info("%d %s linear layers replaced (%d decode from int4 weights)", packed, dtype, int4)
        if settings.decode_weights == "int4" and not int4:
            log.warning(
                "llm.decode_weights = 'int4' is not in use (it needs CPU linears and ATen's "
                "4-bit kernels): decoding from the model's own %s weights",
                dtype,
            )
    if model.generation_config is not None:
        # Greedy decoding: drop sampling knobs shipped with the model to avoid warnings.
        for key in ("temperature", "top_p", "top_k"):
            setattr(model.generation_config, key, None)
    return LLM(model=model, tokenizer=tokenizer, name=settings.model)
