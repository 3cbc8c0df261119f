"""Per-stage turn latency vs a naive LangChain RAG chain: `recochat bench` as a script.

    # demo catalog, 24 turns, no scaling (about a minute on 2 CPU cores):
    python benchmarks/latency.py --turns 24 --out runs/bench-demo
    # ReDial catalog (indexed into the home once, then reused), replaying the built-in
    # conversations, JSON on stdout:
    python benchmarks/latency.py --catalog ../shared/data/redial/id2info.json \
        --catalog-format redial --home /tmp/redial-home --turns 24 --json --out runs/bench-redial
    # the same, replaying real ReDial seeker turns instead:
    python benchmarks/latency.py --catalog ../shared/data/redial/id2info.json \
        --catalog-format redial --home /tmp/redial-home --turns 24 \
        --conversations ../shared/data/redial/valid_data_processed.jsonl \
        --conversations-format redial

Every flag of `recochat bench` is accepted; this script only defaults to --no-scaling (use
benchmarks/scaling.py for the catalog scaling curve). Measure on a quiet machine: the report
carries the load average at start and end.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault(
    "OMP_WAIT_POLICY", "PASSIVE"
)  # before torch loads: see inference/linear_packing.py

from recochat.cli import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a in ("--scaling", "--no-scaling") for a in argv):
        argv.append("--no-scaling")
    raise SystemExit(main(["bench", *argv]))
