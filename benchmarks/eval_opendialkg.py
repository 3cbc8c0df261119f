"""OpenDialKG results for the README: the valid file evaluated, the train file feeding signals.

    python benchmarks/eval_opendialkg.py             # 500 valid turns, all four systems
    python benchmarks/eval_table.py                  # README table from runs/eval/*/report.json

Same as:

    recochat eval --catalog ../shared/data/opendialkg/id2info.json --catalog-format opendialkg \
        --dialogues ../shared/data/opendialkg/valid_data_processed.jsonl --format opendialkg \
        --train ../shared/data/opendialkg/train_data_processed.jsonl \
        --limit 500 --seed 0 --out runs/eval/opendialkg-all

The public files are split by turn, not by dialogue: about half of the valid turns come from
dialogues that also have turns in the train file. `recochat eval` drops those train turns (see
`config.train_turns_dropped_as_overlap` in report.json) so no evaluated dialogue feeds the
co-occurrence signal.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_common import DATA, main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(
        main(
            "opendialkg",
            [
                "--catalog", str(DATA / "opendialkg/id2info.json"),
                "--catalog-format", "opendialkg",
                "--dialogues", str(DATA / "opendialkg/valid_data_processed.jsonl"),
                "--format", "opendialkg",
                "--train", str(DATA / "opendialkg/train_data_processed.jsonl"),
            ],
            default_split="all",
        )
    )  # fmt: skip
