"""Which items a message refers to: "the second one", "the last one", "that one", "it", a title.

    refs = resolve_references("who directed the second one?", shown=state.last_shown,
                              mentioned=state.mentioned, index=title_index)
    refs[0]   # Reference(item_id=state.last_shown[1], how="ordinal", words="second one")

Resolution order: titles named in the message (the title matcher), then ordinals and "last"
against the items shown last turn, then plural pronouns ("them", "both") and singular ones
("it", "that one") against the item in focus (the one the previous turn talked about), else the
only item shown, else the first shown or most recently mentioned item, flagged `ambiguous`.
Nothing here reads the catalog or the store; the caller passes the ids from `DialogueState`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

ORDINALS: dict[str, int] = {
    "first": 0,
    "1st": 0,
    "top": 0,
    "second": 1,
    "2nd": 1,
    "third": 2,
    "3rd": 2,
    "fourth": 3,
    "4th": 3,
    "fifth": 4,
    "5th": 4,
    "sixth": 5,
    "6th": 5,
    "seventh": 6,
    "eighth": 7,
    "ninth": 8,
    "tenth": 9,
    "last": -1,
    "final": -1,
    "bottom": -1,
}
_NOUN = r"(?:one|ones|pick|option|choice|movie|film|title|item|suggestion|recommendation)"
_ORDINAL = re.compile(
    r"\b(?:the\s+)?(?P<ord>" + "|".join(ORDINALS) + r")(?:\s+" + _NOUN + r")?\b"
    r"(?!\s+(?:time|times|night|day|week|weekend|year|month|thing|place|step|minute|half|part))"
    r"|\b(?:number|no\.?|#)\s*(?P<num>[1-9])\b"
)
# "the first" needs a noun or "the" not to be an adverb ("first, I want ..."); "last" needs one
# too ("last night", "the last time" are not references).
_ORDINAL_OK = re.compile(
    r"^(?:the\s+\w+(?:\s+" + _NOUN + r")?|\w+\s+" + _NOUN + r"|number.*|no.*|#.*)$"
)
_PLURAL = re.compile(r"\b(them|those|these|both|all of them|all three|the two)\b")
_SINGULAR = re.compile(
    r"\b(it|that one|this one|that movie|this movie|that film|this film|the one|that|this)\b"
)
_NOT_PRONOUN = re.compile(  # "that" / "this" as determiners of something else, "it" in idioms
    r"\b(?:that|this)\s+(?:kind|type|sort|genre|time|year|week|night|weekend|is what|was what)\b"
    r"|\bit(?:'s| is)\s+(?:ok|okay|fine|alright) if\b"
)


class TitleFinder(Protocol):
    def find(self, text: str) -> Sequence[object]: ...  # Mentions with .item_id


@dataclass(frozen=True)
class Reference:
    item_id: str
    how: str  # "title" | "ordinal" | "plural" | "pronoun"
    words: str  # the words that referred
    ambiguous: bool = False  # a pronoun with several candidates: the first was taken


def resolve_references(
    text: str,
    *,
    shown: Sequence[str] = (),
    mentioned: Sequence[str] = (),
    focus: str | None = None,
    index: TitleFinder | None = None,
) -> list[Reference]:
    """The items `text` refers to, in the order above; [] when it refers to none.

    `shown`: the items shown last turn, in display order (`DialogueState.last_shown`);
    `mentioned`: items talked about, oldest first; `focus`: the item the previous turn was
    about (an answered question), if any; `index`: the title matcher (`MentionFinder`).
    """
    lowered = text.lower()
    refs: list[Reference] = []
    if index is not None:
        for m in index.find(text):
            item_id = m.item_id
            if all(r.item_id != item_id for r in refs):
                refs.append(Reference(item_id, "title", getattr(m, "title", "")))
    for m in _ORDINAL.finditer(lowered):
        words = m.group(0).strip()
        if m.group("num"):
            pos = int(m.group("num")) - 1
        else:
            if not _ORDINAL_OK.match(words):
                continue
            pos = ORDINALS[m.group("ord")]
        if shown and -len(shown) <= pos < len(shown):
            item_id = shown[pos]
            if all(r.item_id != item_id for r in refs):
                refs.append(Reference(item_id, "ordinal", words))
    if refs:
        return refs
    cleaned = _NOT_PRONOUN.sub(" ", lowered)
    plural = _PLURAL.search(cleaned)
    if plural and shown:
        n = 2 if plural.group(1) in ("both", "the two") else len(shown)
        return [Reference(i, "plural", plural.group(1)) for i in shown[:n]]
    single = _SINGULAR.search(cleaned)
    if single:
        target, ambiguous = _salient(shown, mentioned, focus)
        if target is not None:
            return [Reference(target, "pronoun", single.group(1), ambiguous)]
    return []


def _salient(
    shown: Sequence[str], mentioned: Sequence[str], focus: str | None
) -> tuple[str | None, bool]:
    if focus:
        return focus, False
    if len(shown) == 1:
        return shown[0], False
    if shown:
        return shown[0], True
    if mentioned:
        return mentioned[-1], len(mentioned) > 1
    return None, False
