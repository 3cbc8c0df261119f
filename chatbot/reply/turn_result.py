"""What a turn returns: the recommendation cards and the reply sentence around them.

`TurnResult.to_dict` is the `/recommend` API and `recochat ask --json` shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retrieval.types import Candidate


@dataclass
class Recommendation:
    item_id: str
    title: str
    reason: str
    score: float
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "reason": self.reason,
            "score": round(self.score, 4),
        }


@dataclass
class TurnResult:
    reply: str
    recommendations: list[Recommendation]
    timings_ms: dict[str, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    stage: str = "done"  # "ranked" (cards shown), "reply" (the reply streaming) or "done"
    filters: list[str] = field(default_factory=list)
    act: str = ""  # the user message's dialogue act (chatbot.understanding.acts.ACTS)
    answer: dict[str, Any] | None = None  # the record facts that answered an item question

    def to_dict(self) -> dict[str, Any]:
        out = {
            "reply": self.reply,
            "recommendations": [r.to_dict() for r in self.recommendations],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
            "filters": list(self.filters),  # the session's active filters, as the UI shows them
            "act": self.act,
        }
        if self.answer is not None:
            out["answer"] = self.answer
        return out


def card(c: Candidate, rank: int) -> Recommendation:
    """The card of the candidate shown at `rank` (0-based); its reason is written later."""
    facts = {k: v for k, v in c.item.metadata.items() if k != "description"}
    return Recommendation(
        item_id=c.item.item_id,
        title=c.item.title,
        reason="",
        score=1.0 / (rank + 1),
        facts=facts,
    )


def no_match_reply(filters: list[str]) -> str:
    if filters:
        return (
            "Nothing in the catalog matches all of: "
            + ", ".join(filters)
            + ". Try removing one of these filters."
        )
    return "I have nothing new to suggest: everything that fits was already shown."
