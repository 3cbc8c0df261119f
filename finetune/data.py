"""Read the dialogues to learn from (any supported format, or the feedback DB) and split them.

The split is by dialogue (`dialogues.split.split_of`): train turns are learned from, dev
turns select the checkpoint, test turns are never read past the split.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.errors import InputError
from dialogues.importers import load_rec_turns
from dialogues.schema import FORMATS as DIALOGUE_FORMATS
from dialogues.schema import RecTurn
from dialogues.split import split_of
from retrieval.types import Reject

log = logging.getLogger(__name__)

TRAINING_FORMATS = (*DIALOGUE_FORMATS, "feedback")  # a feedback DB trains too


@dataclass
class DialogueData:
    """Recommender turns of one input, with what was skipped and a hash of the bytes read."""

    path: Path
    fmt: str
    turns: list[RecTurn]
    rejects: list[Reject] = field(default_factory=list)
    sha256: str = ""


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_turns(path: str | os.PathLike[str], fmt: str, workdir: Path) -> DialogueData:
    """Recommender turns of `path`. `feedback`: a FeedbackStore DB, exported to JSONL first."""
    if fmt not in TRAINING_FORMATS:
        raise InputError(
            f"unknown dialogue format {fmt!r}: use one of {', '.join(TRAINING_FORMATS)}"
        )
    source, read_as = Path(path), fmt
    if not source.is_file():
        raise InputError(f"dialogue file {source} not found: pass --dialogues PATH")
    if fmt == "feedback":
        from chatbot.serving.feedback import FeedbackStore

        exported = workdir / "feedback_dialogues.jsonl"
        with FeedbackStore(source) as store:
            n = store.export_dialogues(exported)
        log.info("exported %d feedback dialogue(s) from %s", n, source)
        source, read_as = exported, "jsonl"
    turns, rejects = load_rec_turns(source, read_as)  # type: ignore[arg-type]
    if rejects:
        log.warning("%s: skipped %d unreadable line(s)", source, len(rejects))
    return DialogueData(Path(path), fmt, turns, rejects, file_sha256(source))


def split_by_dialogue(turns: list[RecTurn], seed: int) -> dict[str, list[RecTurn]]:
    """{"train": [...], "dev": [...]} by `split_of(dialog_id, seed)`; test turns are dropped."""
    out: dict[str, list[RecTurn]] = {"train": [], "dev": []}
    for turn in turns:
        split = split_of(turn.dialog_id, seed)
        if split in out:
            out[split].append(turn)
    return out
