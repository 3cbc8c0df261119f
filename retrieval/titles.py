"""THE title matcher: map titles written in dialogues, by users or by an LLM onto catalog items.

`TitleIndex.lookup(title)` maps one written title. Order of attempts: the exact catalog
title; then the normalized title (lowercase, accents, punctuation, a leading/trailing article
and a "(YYYY)" year removed), preferring the item whose year matches a year written in the
query, then the more popular one; then, only when asked (`fuzzy=True`, the naive-LLM
baseline), a rapidfuzz ratio >= 90 on normalized titles.

`TitleIndex.entries(words)` serves free-text scanning (`chatbot.understanding.mentions`):
titles keyed by their word tuple (`title_words`: lowercase words, a leading article dropped),
each entry with its year and popularity. Serving, evaluation and fine-tuning all use this one
index, so a title that counts as "the same" in one counts so in all three.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from retrieval.types import Item

FUZZY_CUTOFF = 90.0
MAX_TITLE_WORDS = 12  # longer titles are never scanned for in free text
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")  # a word as free-text scanning sees it
_TRAILING_YEAR = re.compile(r"\((\d{4})\)\s*$")
ARTICLE_WORDS = frozenset({"the", "a", "an"})
_YEAR = re.compile(r"\(\s*(\d{4})\s*\)")
_NON_WORD = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")
_ARTICLES = ("the ", "a ", "an ")


def title_year(title: str) -> int | None:
    m = _YEAR.search(title)
    return int(m.group(1)) if m else None


def catalog_popularity(items: Iterable[Item], field: str = "popularity") -> dict[str, float]:
    """Numeric popularity per item from the catalog (0.0 where missing or not a number)."""
    out: dict[str, float] = {}
    for it in items:
        v = it.metadata.get(field)
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        out[it.item_id] = float(v) if ok else 0.0  # type: ignore[arg-type]
    return out


def words_of(text: str) -> list[str]:
    """Lowercase words of free text ('&' read as 'and'), as titles are scanned for."""
    return WORD.findall(text.lower().replace("&", " and "))


def title_words(title: str) -> tuple[tuple[str, ...], str | None]:
    """('The Shining (1980)') -> (('shining',), '1980'): the scan key and a written year."""
    year = _TRAILING_YEAR.search(title)
    words = words_of(_TRAILING_YEAR.sub("", title))
    if len(words) > 1 and words[0] in ARTICLE_WORDS:
        words = words[1:]
    return tuple(words), (year.group(1) if year else None)


@dataclass(frozen=True)
class TitleEntry:
    """One catalog item under a scan key."""

    item_id: str
    title: str
    year: str | None
    popularity: float


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
    """Exact, normalized and fuzzy title lookup over a catalog, and scan keys for free text.

    `popularity` breaks ties between items of the same title (default: the catalog's
    popularity field).
    """

    def __init__(self, items: Iterable[Item], popularity: Mapping[str, float] | None = None):
        items = list(items)
        pop = catalog_popularity(items) if popularity is None else popularity
        self._by_words: dict[tuple[str, ...], list[TitleEntry]] = {}
        self.max_words = 1
        for it in items:  # catalog order: the first of equally popular items wins a scan
            words, year = title_words(it.title)
            if not words:
                continue
            year = year or (str(it.year) if it.year else None)
            entry = TitleEntry(it.item_id, it.title, year, float(pop.get(it.item_id, 0.0)))
            self._by_words.setdefault(words, []).append(entry)
            self.max_words = max(self.max_words, len(words))
        self.max_words = min(self.max_words, MAX_TITLE_WORDS)
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

    def __len__(self) -> int:
        """Distinct scan keys (titles) in the index."""
        return len(self._by_words)

    def entries(self, words: tuple[str, ...]) -> list[TitleEntry]:
        """The items whose title has exactly these scan words (see `title_words`)."""
        return self._by_words.get(words, [])

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
