"""How fast one decoding step of the default LLM runs, by thread and OpenMP setting.

    python benchmarks/omp_pools.py [--steps 40] [--json runs/omp_pools.json]

torch's OpenMP runtime (libgomp) gives every thread that runs a parallel region its own pool
of worker threads. This measures a batch-1 decoding step of the default model, median of
`--steps`, in a fresh process per setting (the variables are read when torch loads):
- `main`: on the main thread, the default wait policy;
- `worker`: on a second thread after the main thread has run the model (as a served turn
  runs on a Gradio worker thread after loading), the default wait policy;
- `passive main` / `passive worker`: the same under `OMP_WAIT_POLICY=PASSIVE` (what
  `recochat.env` sets for every entry point);
- `one pool`: `OMP_NUM_THREADS=1` for the process and `torch.set_num_threads(N)` in the one
  thread that runs the model (model loading included), so a single pool exists; but torch's
  process-wide count then reaches every thread that runs torch later;
- `compute thread`: as served (`recochat.env.set_env_defaults(serving=True)`): the `worker`
  run, with every forward pass on `inference.compute_thread` (N OpenMP threads for it alone,
  `OMP_NUM_THREADS=1` for every other thread) and the default wait policy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from inference.compute_thread import ENV as COMPUTE_THREADS

SETTINGS = {  # name: (environment, thread that runs the steps)
    "main": ({}, "main"),
    "worker": ({}, "worker"),
    "passive main": ({"OMP_WAIT_POLICY": "PASSIVE"}, "main"),
    "passive worker": ({"OMP_WAIT_POLICY": "PASSIVE"}, "worker"),
    "one pool": ({"OMP_NUM_THREADS": "1"}, "one pool"),
    "compute thread": ({"OMP_NUM_THREADS": "1", COMPUTE_THREADS: "{threads}"}, "worker"),
}


def child(where: str, steps: int, threads: int) -> float:
    """Median ms of a decoding step, run where `where` says."""
    import tempfile

    result: list[float] = []

    def load():
        from inference.llm import load_transformers_llm
        from inference.settings import LLMSettings

        return load_transformers_llm(LLMSettings(), Path(tempfile.mkdtemp()))

    def measure(llm) -> None:
        import torch

        ids = llm._encode(llm.chat_prompt("Name a film for a quiet night."))
        times = []
        with torch.inference_mode():
            _, cache, _ = llm._prefill([ids], steps + 2)
            step = torch.tensor([[100]])
            llm._forward(step, cache)
            for _ in range(steps):
                started = time.perf_counter()
                llm._forward(step, cache)
                times.append((time.perf_counter() - started) * 1000)
        result.append(statistics.median(times))

    if where == "main":
        measure(load())
    elif where == "worker":
        llm = load()
        measure(llm)  # the main thread runs the model first, as loading and warm-up do
        result.clear()
        t = threading.Thread(target=measure, args=(llm,))
        t.start()
        t.join()
    else:

        def alone() -> None:
            import torch

            torch.set_num_threads(threads)
            measure(load())

        t = threading.Thread(target=alone)
        t.start()
        t.join()
    return result[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--json", dest="json_out", help="also write the figures here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.threads)))
        return 0
    figures = {}
    for name, (env, where) in SETTINGS.items():
        run_env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "RECOCHAT_"))}
        run_env.update({k: v.format(threads=args.threads) for k, v in env.items()})
        run_env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        cmd = [sys.executable, __file__, "--child", where, "--steps", str(args.steps)]
        cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, env=run_env, capture_output=True, text=True, check=True)
        figures[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:>15}: {figures[name]:6.1f} ms a decoding step", flush=True)
    figures["load_average"] = os.getloadavg()[0]
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
