"""Find checkable claims in a reason that neither the item record nor the user's words support.

Checked claim kinds: years and other numbers, genre words, and capitalised multi-word names
(people, places, other titles). A reason passes when every such claim appears in the item's
facts or in what the user said. Used to guard served reasons and to score them in eval.
"""

from __future__ import annotations

import re

from retrieval.types import Item

GENRE_WORDS = frozenset(
    [
        "action",
        "adventure",
        "animated",
        "animation",
        "biography",
        "biopic",
        "comedy",
        "crime",
        "documentary",
        "drama",
        "family",
        "fantasy",
        "history",
        "historical",
        "horror",
        "musical",
        "music",
        "mystery",
        "noir",
        "romance",
        "romantic",
        "sci-fi",
        "thriller",
        "war",
        "western",
        "sports",
        "superhero",
        "heist",
        "spy",
        "zombie",
        "vampire",
        "western",
    ]
)
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)?\b")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_NAME = re.compile(
    r"\b([A-Z][a-z'-]+(?:\s+(?:[A-Z][a-z'-]+|of|the|de|van|von)){0,3}\s+[A-Z][a-z'-]+)"
)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def unsupported_claims(reason: str, item: Item, user_text: str) -> list[str]:
    """Claims in `reason` not found in `item` (title, text, metadata) or `user_text`."""
    support_raw = " ".join([item.title, item.text, item.facts_text(max_list=50), user_text])
    support = _norm(support_raw)
    support_words = set(support.split())
    padded = f" {support} "
    claims: list[str] = []
    # A claim is normalised as the support is: "1,600" and "sci-fi" are phrases of it.
    for num in _NUMBER.findall(reason):
        if f" {_norm(num)} " not in padded:
            claims.append(num)
    for word in _WORD.findall(reason):
        w = word.lower()
        if (
            w in GENRE_WORDS
            and f" {_norm(w)} " not in padded
            and not _genre_supported(w, support_words)
        ):
            claims.append(word)
    title_norm = _norm(item.title)
    for name in _NAME.findall(reason):
        n = _norm(name)
        if n and n not in support and n not in title_norm:
            claims.append(name)
    return list(dict.fromkeys(claims))


_GENRE_FAMILY = {
    "animated": "animation",
    "animation": "animated",
    "romantic": "romance",
    "romance": "romantic",
    "historical": "history",
    "history": "historical",
    "musical": "music",
    "music": "musical",
    "biopic": "biography",
    "biography": "biopic",
}


def _genre_supported(word: str, support_words: set[str]) -> bool:
    alt = _GENRE_FAMILY.get(word)
    return bool(alt and alt in support_words) or word.rstrip("s") in support_words
