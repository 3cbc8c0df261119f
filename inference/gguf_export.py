"""Export a fine-tuned model to GGUF, so llama.cpp (in-process or its server) serves it.

Two forms, both made by llama.cpp's own converters (`convert_hf_to_gguf.py`,
`convert_lora_to_gguf.py`, with their `conversion/` and `gguf-py/` packages), which the
llama-cpp-python source distribution vendors and `make setup` unpacks into
`$VENV/share/llama-cpp-convert` (override: `RECOCHAT_LLAMA_CPP_CONVERT`):

- `merged`: the base model with the adapter merged in (peft `merge_and_unload`), saved as a
  transformers checkpoint and converted to one GGUF file (`outtype` f16/bf16/q8_0, or q4_1 /
  q4_0 / q5_1 / q8_0 re-quantized from f16 through llama.cpp's own `llama_model_quantize`).
  Serve it with `llm.gguf = FILE`.
- `lora`: the adapter alone as a llama.cpp LoRA file, applied at load time on top of the base
  GGUF (`llm.gguf_lora = FILE`); keeps the builtin Q4_1 base as it is.

This module knows nothing about serving: it only writes files.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from inference.errors import ModelError
from inference.model_files import resolve_model_dir, validate_adapter_dir
from inference.settings import LLMSettings

log = logging.getLogger(__name__)

CONVERT_ENV = "RECOCHAT_LLAMA_CPP_CONVERT"
CONVERT_TYPES = ("f32", "f16", "bf16", "q8_0")  # what convert_hf_to_gguf.py writes itself
QUANT_TYPES = {"q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9, "q8_0": 7}  # llama_ftype values


def converter_dir() -> Path:
    """Where llama.cpp's conversion scripts were unpacked (`make setup`)."""
    configured = os.environ.get(CONVERT_ENV)
    path = Path(configured) if configured else Path(sys.prefix) / "share" / "llama-cpp-convert"
    if not (path / "convert_hf_to_gguf.py").is_file():
        raise ModelError(
            f"llama.cpp's converters are not in {path}: run `make setup` (it unpacks them from "
            f"the llama-cpp-python sdist) or set {CONVERT_ENV}"
        )
    return path


def export_gguf(
    settings: LLMSettings,
    cache_dir: Path,
    adapter: Path,
    out: Path,
    *,
    form: str = "merged",
    outtype: str = "q8_0",
) -> Path:
    """Write `adapter` (a `recochat finetune` output) on `settings.model` as GGUF to `out`."""
    adapter = validate_adapter_dir(adapter)
    base = Path(resolve_model_dir(settings.model, cache_dir))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if form == "lora":
        if outtype not in ("f32", "f16", "bf16", "q8_0"):
            raise ModelError("a LoRA GGUF is written as f32, f16, bf16 or q8_0")
        _convert("convert_lora_to_gguf.py", adapter, out, outtype, "--base", str(base))
        return out
    if form != "merged":
        raise ModelError(f"unknown GGUF export form {form!r}: use 'merged' or 'lora'")
    if outtype not in CONVERT_TYPES and outtype not in QUANT_TYPES:
        raise ModelError(
            f"unknown outtype {outtype!r}: use one of {CONVERT_TYPES + tuple(QUANT_TYPES)}"
        )
    with tempfile.TemporaryDirectory(prefix="recochat-merge-") as tmp:
        merged = Path(tmp) / "merged"
        merge_adapter(base, adapter, merged, settings.trust_remote_code)
        if outtype in CONVERT_TYPES:
            _convert("convert_hf_to_gguf.py", merged, out, outtype)
        else:
            f16 = Path(tmp) / "merged-f16.gguf"
            _convert("convert_hf_to_gguf.py", merged, f16, "f16")
            quantize(f16, out, outtype)
    return out


def merge_adapter(base: Path, adapter: Path, dest: Path, trust_remote_code: bool = False) -> Path:
    """Save base + adapter, merged, as a plain fp32 transformers checkpoint in `dest`."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code
    )
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(dest, safe_serialization=True)
    AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code).save_pretrained(dest)
    return dest


def quantize(src: Path, dst: Path, outtype: str) -> Path:
    """Re-quantize a GGUF file with llama.cpp's `llama_model_quantize` (no llama.cpp tools
    needed: the function is in the library llama-cpp-python builds)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[outtype]
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), params)
    if rc != 0:
        raise ModelError(f"llama.cpp could not quantize {src} to {outtype} (code {rc})")
    return dst


def _convert(script: str, source: Path, out: Path, outtype: str, *extra: str) -> None:
    tools = converter_dir()
    cmd = [sys.executable, str(tools / script), str(source), "--outfile", str(out)]
    cmd += ["--outtype", outtype, *extra]
    log.info("running %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelError(f"{script} failed: {tail[0]}")


def copy_converters(sdist_root: Path, dest: Path) -> Path:
    """Unpack llama.cpp's converters from an extracted llama-cpp-python sdist into `dest`."""
    src = Path(sdist_root) / "vendor" / "llama.cpp"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py"):
        shutil.copy2(src / name, dest / name)
    for name in ("conversion", "gguf-py"):
        shutil.copytree(src / name, dest / name, dirs_exist_ok=True)
    return dest
