"""`recochat export-gguf`: write a `recochat finetune` adapter as GGUF for llama.cpp.

    recochat export-gguf --adapter runs/ft-redial --out runs/ft-redial/model-q8_0.gguf
    recochat export-gguf --adapter runs/ft-redial --out runs/ft-redial/model-q4_1.gguf \\
        --outtype q4_1
    recochat export-gguf --adapter runs/ft-redial --mode lora --outtype f16 \\
        --out runs/ft-redial/lora-f16.gguf

`--mode merged` (default) writes one self-contained GGUF (serve it with llm.gguf); `--mode lora` writes a
llama.cpp LoRA file applied on top of the base GGUF (llm.gguf_lora).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_export_gguf_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export-gguf",
        help="write a fine-tuned adapter as GGUF for llama.cpp (in-process or its server)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--adapter", required=True, type=Path, help="a `recochat finetune` output dir")
    p.add_argument("--out", required=True, type=Path, help="GGUF file to write")
    p.add_argument(
        "--mode", "--form", dest="form", choices=["merged", "lora"], default="merged",
        help="merged: one self-contained GGUF; lora: a llama.cpp LoRA file on the base GGUF",
    )  # fmt: skip
    p.add_argument(
        "--outtype",
        default="q8_0",
        help="f32, f16, bf16, q8_0 (converter), or q4_0/q4_1/q5_0/q5_1 (re-quantized)",
    )
    p.add_argument("--home", help="data dir (model cache)")
    p.add_argument("--model", help="base LLM the adapter was trained on (default: config)")
    p.set_defaults(func=run_export_gguf)
    return p


def run_export_gguf(args: argparse.Namespace) -> int:
    """Run the parsed command; domain errors propagate for the caller to print in one line."""
    from chatbot.config import load_settings
    from inference.gguf_export import export_gguf

    settings = load_settings({"home": args.home, "llm.model": args.model})
    out = export_gguf(
        settings.llm,
        settings.model_cache,
        args.adapter,
        args.out,
        form=args.form,
        outtype=args.outtype,
    )
    print(f"GGUF written to {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0
