"""Feedback in words on shown items: "seen the second one", "too scary", "not that one".

    rejected = apply_word_feedback(state, "seen the second one", index)  # [that item's id]

"too X" (X a soft wish of `constraints.SOFT_AVOID`: violent, scary, sad, dark, long) becomes
the soft wish "less X", as if the user had said it. "Seen", "watched", "not that one" or "didn't
like" with a reference ("the second one", "it", a title; `references.resolve_references`)
rejects the referred items; without one, `state.REJECT_SHOWN` already covers "seen them".
"""

from __future__ import annotations

import re
from typing import Any

from chatbot.understanding.constraints import SOFT_AVOID
from chatbot.understanding.references import resolve_references

TOO = re.compile(
    r"\b(?:too|way too|a bit too|a little too|overly)\s+(?P<what>" + "|".join(SOFT_AVOID) + r")\b"
)
TURNED_DOWN = re.compile(
    r"\b(seen|watched|saw|not (?:that|this|the \w+) one|didn'?t (?:like|enjoy)|hated?)\b"
)


def apply_word_feedback(state: Any, text: str, index: Any = None) -> list[str]:
    """Apply `text`'s feedback to a DialogueState (after `add_user`); the ids it rejected."""
    lowered = text.lower()
    for m in TOO.finditer(lowered):
        if m.group("what") not in state.constraints.avoid:
            state.constraints.avoid.append(m.group("what"))
    if not TURNED_DOWN.search(lowered):
        return []
    refs = resolve_references(
        text, shown=state.last_shown, mentioned=(), focus=state.focus, index=index
    )
    ids = [r.item_id for r in refs if r.how != "plural" and not r.ambiguous]
    for item_id in ids:
        state.feedback(item_id, positive=False)
    return ids
