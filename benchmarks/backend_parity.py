"""Rank the fixed turns (`evaluation.backend_parity`) with each backend; agreement with the
transformers reference (top-1 match, Kendall's tau of the 20-candidate order).

    python benchmarks/backend_parity.py --out runs/parity.json
    python benchmarks/backend_parity.py --base-url http://127.0.0.1:8765/v1 --out runs/parity.json

`--base-url` adds the `openai` backend against a running OpenAI-compatible server serving the
same model (e.g. `python -m llama_cpp.server --model <builtin gguf> --port 8765`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from evaluation.backend_parity import agreement, fixed_turns, rank_turns
from inference.llm import load_llm
from inference.model_files import builtin_gguf_path, resolve_model_dir
from inference.settings import BUILTIN_LLM, LLMSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-cache", type=Path, default=Path(".recochat/models"))
    ap.add_argument("--gguf", type=Path, help="GGUF for llamacpp (default: the builtin Q4_1)")
    ap.add_argument("--base-url", help="also rank with an OpenAI-compatible server")
    ap.add_argument("--served-model", default="", help="model name there (default: first)")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (0: its default)")
    ap.add_argument("--modes", default="logits,pointwise")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from inference.backends.llamacpp import LlamaCppLLM

    backends = {
        "transformers": load_llm(LLMSettings(), args.model_cache),
        "llamacpp": LlamaCppLLM(args.gguf or builtin_gguf_path(), threads=args.threads),
    }
    if args.base_url:
        import openai
        from transformers import AutoTokenizer

        from inference.backends.openai_http import OpenAIHTTPLLM

        served = args.served_model or (
            openai.OpenAI(base_url=args.base_url, api_key="unused").models.list().data[0].id
        )
        tok = AutoTokenizer.from_pretrained(resolve_model_dir(BUILTIN_LLM, args.model_cache))
        backends["openai"] = OpenAIHTTPLLM(args.base_url, served, tok)
    turns = fixed_turns()
    report: dict[str, object] = {"turns": len(turns), "candidates": len(turns[0].items)}
    for mode in args.modes.split(","):
        orders, seconds = {}, {}
        for name, llm in backends.items():
            t0 = time.perf_counter()
            orders[name] = rank_turns(llm, turns, mode)
            seconds[name] = round(time.perf_counter() - t0, 2)
        ref = orders["transformers"]
        report[mode] = {
            "seconds": seconds,
            "load_1min": os.getloadavg()[0],
            "vs_transformers": {
                n: dataclasses.asdict(agreement(ref, o))
                for n, o in orders.items()
                if n != "transformers"
            },
            "orders": orders,
        }
        if "openai" in orders:
            same = agreement(orders["llamacpp"], orders["openai"])
            report[mode]["openai_vs_llamacpp"] = dataclasses.asdict(same)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    brief = {m: {k: v for k, v in r.items() if k != "orders"} for m, r in report.items()
             if isinstance(r, dict)}  # fmt: skip
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    main()
