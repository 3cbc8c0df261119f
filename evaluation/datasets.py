"""The public datasets `recochat eval --dataset NAME` knows, as paths under a data dir.

    recochat eval --dataset redial --split test --out runs/eval/redial-test
    recochat eval --dataset opendialkg --limit 500 --out runs/eval/opendialkg-all

ReDial's `valid_data_processed.jsonl` is split by dialogue (70/15/15, `dialogues.split`):
collaborative signals come from its train split (`--train-split`), numbers are reported on
dev or test. OpenDialKG's public files are split by turn, not by dialogue: its train file
feeds the signals and `recochat eval` drops the train turns of evaluated dialogues (see
`config.train_turns_dropped_as_overlap` in report.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path("../shared/data")  # read-only, never copied into the repo


@dataclass(frozen=True)
class Dataset:
    catalog: str  # relative to the data dir
    catalog_format: str
    dialogues: str
    format: str
    split: str  # the split reported by default
    train: str | None = None  # a separate train file, else the train split of `dialogues`


DATASETS: dict[str, Dataset] = {
    "redial": Dataset(
        "redial/id2info.json", "redial", "redial/valid_data_processed.jsonl", "redial", "test"
    ),
    "opendialkg": Dataset(
        "opendialkg/id2info.json",
        "opendialkg",
        "opendialkg/valid_data_processed.jsonl",
        "opendialkg",
        "all",
        train="opendialkg/train_data_processed.jsonl",
    ),
}
