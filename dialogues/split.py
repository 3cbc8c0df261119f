"""The one split of dialogue data: by dialogue id, 70/15/15 train/dev/test.

Choose on dev, report on test once; training and evaluation use this same function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from dialogues.schema import SPLITS, RecTurn, Split
from retrieval.errors import RetrievalError


def split_of(dialog_id: str, seed: int = 0) -> Split:
    """Deterministic split by dialogue: 70% train, 15% dev, 15% test."""
    bucket = int(hashlib.sha256(f"{seed}:{dialog_id}".encode()).hexdigest()[:8], 16) % 100
    if bucket < 70:
        return "train"
    if bucket < 85:
        return "dev"
    return "test"


def split_turns(turns: Iterable[RecTurn], split: str, seed: int = 0) -> list[RecTurn]:
    """The turns whose dialogue falls in `split` ('all' keeps every turn)."""
    if split == "all":
        return list(turns)
    if split not in SPLITS:
        raise RetrievalError(f"unknown split {split!r}: use all, {', '.join(SPLITS)}")
    return [t for t in turns if split_of(t.dialog_id, seed) == split]
