"""ReDial results for the README: the test split of the public ReDial turns, signals from train.

    python benchmarks/eval_redial.py                 # 500 test turns, all four systems
    python benchmarks/eval_redial.py --split dev     # model/weight selection happens on dev
    python benchmarks/eval_table.py                  # README table from runs/eval/*/report.json

Same as:

    recochat eval --catalog ../shared/data/redial/id2info.json --catalog-format redial \
        --dialogues ../shared/data/redial/valid_data_processed.jsonl --format redial \
        --split test --train-split --limit 500 --seed 0 --out runs/eval/redial-test

`valid_data_processed.jsonl` is split by dialogue (70/15/15, `dialogues.split.split_of`):
collaborative signals come from its train split only, numbers are reported on its test split.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_common import DATA, main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(
        main(
            "redial",
            [
                "--catalog", str(DATA / "redial/id2info.json"), "--catalog-format", "redial",
                "--dialogues", str(DATA / "redial/valid_data_processed.jsonl"),
                "--format", "redial", "--train-split",
            ],
            default_split="test",
        )
    )  # fmt: skip
