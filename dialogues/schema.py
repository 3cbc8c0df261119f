"""Dialogue data as the package holds it: our JSONL schema, recommender turns, format names.

Our schema, one dialogue per line:

    {"dialog_id": "d1", "source": "redial",
     "turns": [{"role": "user", "text": "I loved Heat", "mentioned": ["Heat"]},
               {"role": "assistant", "text": "Try Collateral.",
                "recommended": [{"item_id": "m0042", "title": "Collateral", "accepted": true}]}]}

The public `*_processed.jsonl` files hold one *recommender turn* per line
(`{"dialog_id", "turn_id", "context", "entity", "rec", "resp"}`), read as `RecTurn`s
(`dialogues.importers`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DialogueFormat = Literal["jsonl", "redial", "opendialkg"]
Split = Literal["train", "dev", "test"]
FORMATS: tuple[str, ...] = ("jsonl", "redial", "opendialkg")  # THE list of dialogue formats
SPLITS: tuple[str, ...] = ("train", "dev", "test")


@dataclass
class RecItem:
    """An item recommended in an assistant turn; `accepted` is None when unknown."""

    title: str
    item_id: str | None = None
    accepted: bool | None = None


@dataclass
class Turn:
    role: Literal["user", "assistant"]
    text: str
    recommended: list[RecItem] = field(default_factory=list)
    mentioned: list[str] = field(default_factory=list)


@dataclass
class Dialogue:
    dialog_id: str
    source: str = ""
    turns: list[Turn] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        turns: list[dict[str, Any]] = []
        for t in self.turns:
            d: dict[str, Any] = {"role": t.role, "text": t.text}
            if t.recommended or t.role == "assistant":
                d["recommended"] = [
                    {"item_id": r.item_id, "title": r.title, "accepted": r.accepted}
                    for r in t.recommended
                ]
            if t.mentioned:
                d["mentioned"] = list(t.mentioned)
            turns.append(d)
        return {"dialog_id": self.dialog_id, "source": self.source, "turns": turns}


@dataclass(frozen=True)
class RecTurn:
    """One recommender turn to learn from or replay.

    `context`: utterances before the turn, oldest first (ReDial's leading "" placeholder
    dropped); `mentioned`: titles/entities mentioned before the turn; `gold`: titles
    recommended in the turn; `accepted`: per gold title, the seeker's verdict if known;
    `gold_ids`: per gold title, the catalog id when the source knows it (our JSONL), else ().
    """

    dialog_id: str
    turn_id: int
    context: tuple[str, ...]
    mentioned: tuple[str, ...]
    gold: tuple[str, ...]
    response: str
    accepted: tuple[bool | None, ...]
    gold_ids: tuple[str | None, ...] = ()
