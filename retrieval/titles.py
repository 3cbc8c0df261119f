"""Map titles written in dialogues or by an LLM onto catalog items.

Order of attempts: the exact catalog title; then the normalized title (lowercase, accents,
punctuation, a leading/trailing article and a "(YYYY)" year removed), preferring the item
whose year matches a year written in the query, then the more popular one; then, only when
asked (`fuzzy=True`, the naive-LLM baseline), a rapidfuzz ratio >= 90 on normalized titles.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from rapidfuzz import fuzz, process

from retrieval.types import Item

FUZZY_CUTOFF = 90.0
_YEAR = re.compile(r"\(\s*(\d{4})\s*\)")
_NON_WORD = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")
_ARTICLES = ("the ", "a ", "an ")


def title_year(title: str) -> int | None:
    m = _YEAR.search(title)
    return int(m.group(1)) if m else None


def normalize_title(title: str) -> str:
    """'The Shining (1980)' -> 'shining'; 'Amélie' -> 'amelie'; 'Matrix, The' -> 'matrix'."""
    text = _YEAR.sub(" ", title)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("&", " and ")
    if text.rstrip().endswith(", the"):
        text = text.rstrip()[: -len(", the")]
    text = _SPACES.sub(" ", _NON_WORD.sub(" ", text)).strip()
    for article in _ARTICLES:
        if text.startswith(article) and len(text) > len(article):
            text = text[len(article) :]
            break
    return text


class TitleIndex:
    """Exact, normalized and fuzzy title lookup over a catalog."""

    def __init__(self, items: Iterable[Item], popularity: Mapping[str, float] | None = None):
        pop = popularity or {}
        ordered = sorted(items, key=lambda it: (-float(pop.get(it.item_id, 0.0)), it.item_id))
        self.exact: dict[str, str] = {}
        self.by_norm: dict[str, list[str]] = {}
        self.year: dict[str, int | None] = {}
        self.ids: frozenset[str] = frozenset(it.item_id for it in ordered)
        for it in ordered:  # most popular first, so it wins exact/normalized ties
            self.exact.setdefault(it.title, it.item_id)
            self.by_norm.setdefault(normalize_title(it.title), []).append(it.item_id)
            self.year[it.item_id] = it.year or title_year(it.title)
        self._norm_keys = list(self.by_norm)

    def lookup(self, title: str, *, fuzzy: bool = False) -> str | None:
        """The catalog id for `title`, or None when it is not in the catalog."""
        title = title.strip()
        if not title:
            return None
        if title in self.exact:
            return self.exact[title]
        norm = normalize_title(title)
        if not norm:
            return None
        ids = self.by_norm.get(norm)
        if ids is None and fuzzy:
            hit = process.extractOne(
                norm, self._norm_keys, scorer=fuzz.ratio, score_cutoff=FUZZY_CUTOFF
            )
            ids = self.by_norm[hit[0]] if hit else None
        if not ids:
            return None
        year = title_year(title)
        if year is not None:
            for item_id in ids:
                if self.year.get(item_id) == year:
                    return item_id
        return ids[0]

    def lookup_id_or_title(self, item_id: str | None, title: str) -> str | None:
        """Prefer a known catalog id (our JSONL carries them), else map the title."""
        if item_id is not None and item_id in self.ids:
            return item_id
        return self.lookup(title)
