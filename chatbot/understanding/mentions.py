"""Find catalog titles in free text and how the user feels about each one.

The titles come from THE title matcher (`retrieval.titles.TitleIndex`); this module holds the
rules of free-text mention detection on top of it. Titles are matched on normalised word
n-grams (lowercase, punctuation and a leading article dropped, an optional year), longest
first. One-word titles ("Heat", "Up") only count when
written capitalised and not as a common word, so "it was up to you" does not mention *Up*.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from retrieval.entity_links import EntityLinker
from retrieval.titles import ARTICLE_WORDS as _ARTICLES
from retrieval.titles import WORD as _WORD
from retrieval.titles import TitleEntry, TitleIndex
from retrieval.types import Item

_NEXT_WORD = re.compile(r"[ \t]+([A-Za-z][\w']*)")
COMMON_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "me",
        "my",
        "your",
        "up",
        "go",
        "in",
        "on",
        "out",
        "is",
        "was",
        "be",
        "do",
        "did",
        "done",
        "yes",
        "no",
        "not",
        "one",
        "two",
        "it's",
        "its",
        "love",
        "like",
        "big",
        "home",
        "her",
        "him",
        "us",
        "them",
        "this",
        "that",
        "there",
        "here",
        "what",
        "why",
        "how",
        "who",
        "when",
        "where",
        "okay",
        "ok",
        "hi",
        "hello",
        "thanks",
        "thank",
        "please",
        "good",
        "great",
        "fine",
        "best",
        "more",
        "now",
        "then",
        "so",
        "just",
        "also",
        "about",
        "after",
        "before",
        "again",
        "soon",
        "today",
        "tomorrow",
        "yesterday",
    ]
)
NEGATIVE_CUES = re.compile(
    r"\b(didn'?t (like|enjoy|love)|did not (like|enjoy)|don'?t (like|want)|do not (like|want)|"
    r"hated?|disliked?|not a (big )?fan|boring|awful|terrible|worst|overrated|not like|"
    r"other than|except|already (seen|watched)|seen (it|that)|watched (it|that)|no more|"
    r"nothing like|not into|couldn'?t stand|can'?t stand)\b"
)
_CUE_BEFORE = re.compile(r"\b(like|liked|loved|love|enjoyed|watched|seen|saw|about|than)$")
SEEN_AFTER = re.compile(
    r"^\W{0,3}(\(\d{4}\))?\W{0,3}(already|i'?ve seen|seen it|i saw|saw it|"
    r"was boring|was awful|was terrible|sucked)"
)


@dataclass(frozen=True)
class Mention:
    item_id: str
    title: str
    sentiment: str  # "liked" | "rejected" | "neutral"
    start: int
    end: int = -1  # where the matched words end in the text (-1: unknown)


def mask_spans(text: str, mentions: Iterable[Mention]) -> str:
    """`text` with each mention's words blanked (same length, so offsets still hold)."""
    chars = list(text)
    for m in mentions:
        if m.end > m.start:
            chars[m.start : m.end] = " " * (m.end - m.start)
    return "".join(chars)


@dataclass(frozen=True)
class EntityMention:
    key: str  # "person:tom hanks" | "genre:comedy" (`retrieval.entity_links`)
    name: str
    sentiment: str  # as for titles: "liked" | "rejected" | "neutral"
    start: int


class MentionFinder:
    """Mentions of the titles of one `TitleIndex` (and the people and genres of one
    `EntityLinker`) in free text."""

    def __init__(self, titles: TitleIndex, entities: EntityLinker | None = None):
        self.titles = titles
        self.entities = entities

    @classmethod
    def of(cls, items: Iterable[Item]) -> MentionFinder:
        items = list(items)
        return cls(TitleIndex(items), EntityLinker(items))

    def find_entities(self, text: str) -> list[EntityMention]:
        """People and genres named in `text`, with the same sentiment rules as titles."""
        if self.entities is None:
            return []
        return [
            EntityMention(link.key, link.name, _sentiment(text, link.start, link.end), link.start)
            for link in self.entities.find(text)
        ]

    def __len__(self) -> int:
        return len(self.titles)

    def find(self, text: str, prefer: Iterable[str] = ()) -> list[Mention]:
        """Titles mentioned in `text`, in order of appearance. A name several catalog titles
        share ("The Revenant" of 2009 and of 2015), said without its year, is the one in
        `prefer` (the titles in play) when there is one, else the most popular."""
        preferred = {t.lower() for t in prefer}
        spans = [(m.group(0), m.start()) for m in _WORD.finditer(text.lower())]
        words = [w for w, _ in spans]
        used = [False] * len(words)
        found: list[Mention] = []
        for n in range(min(self.titles.max_words, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                if any(used[i : i + n]):
                    continue
                key = tuple(words[i : i + n])
                start_key = key[1:] if n > 1 and key[0] in _ARTICLES else key
                entries = self.titles.entries(key) or self.titles.entries(start_key)
                if not entries:
                    continue
                start = spans[i][1]
                end_word = i + n
                year = (
                    words[end_word]
                    if end_word < len(words) and re.fullmatch(r"(19|20)\d\d", words[end_word])
                    else None
                )
                # A year backs a one-word title only when it is that title's year ("a 2017").
                dated = year if any(e.year == year for e in entries) else None
                if len(start_key) == 1 and not self._plausible_single(text, start, dated):
                    continue
                if not year and _generic_phrase(text, spans, words, i, end_word, key):
                    continue
                item_id, title = self._pick(entries, year, preferred)
                span_end = end_word + (1 if year else 0)
                for j in range(i, min(span_end, len(words))):
                    used[j] = True
                last = min(span_end, len(words)) - 1
                end = spans[last][1] + len(words[last])
                found.append(Mention(item_id, title, _sentiment(text, start, end), start, end))
        return sorted(found, key=lambda m: m.start)

    @staticmethod
    def _plausible_single(text: str, start: int, year: str | None) -> bool:
        if year:
            return True
        word = _WORD.match(text.lower(), start)
        original = text[start : start + len(word.group(0))] if word else ""
        before = text[:start].rstrip()
        if not original[:1].isupper():
            return False
        if original.lower() in COMMON_WORDS and not _CUE_BEFORE.search(before.lower()):
            return False
        sentence_start = not before or before[-1] in ".!?"
        # "Jack Black", "Bruce Willis", "Watch Later": the word opens a longer capitalised name.
        after = _NEXT_WORD.match(text, start + len(original))
        nxt = after.group(1) if after is not None else ""
        in_name = nxt[:1].isupper() and nxt != "I" and nxt.lower() not in _FILM_WORDS
        return not sentence_start and not in_name

    @staticmethod
    def _pick(
        entries: list[TitleEntry], year: str | None, preferred: set[str] = frozenset()
    ) -> tuple[str, str]:
        if year:
            for e in entries:
                if e.year == year:
                    return e.item_id, e.title
        in_play = [e for e in entries if e.title.lower() in preferred]
        best = max(in_play or entries, key=lambda e: e.popularity)
        return best.item_id, best.title


_DETERMINERS = frozenset({"a", "an", "some", "any", "another"})
_MEDIA = frozenset({"movie", "movies", "film", "films", "flick", "flicks", "show", "shows"})
_KINDS = frozenset(  # "old school comedies": a kind of film follows, so the words describe it
    {
        "comedy",
        "comedies",
        "horror",
        "horrors",
        "thriller",
        "thrillers",
        "drama",
        "dramas",
        "romance",
        "romances",
        "romcom",
        "romcoms",
        "documentary",
        "documentaries",
        "cartoon",
        "cartoons",
        "musical",
        "musicals",
        "western",
        "westerns",
        "action",
    }
)
_FILM_WORDS = _MEDIA | _KINDS
_CUES = frozenset({"like", "liked", "loved", "love", "enjoyed", "watched", "seen", "saw", "called"})


def _generic_phrase(
    text: str,
    spans: list[tuple[str, int]],
    words: list[str],
    i: int,
    end: int,
    key: tuple[str, ...],
) -> bool:  # words[i:end] matched `key` (a leading article included); spans: (word, offset)
    """Whether a lowercase, year-less multi-word match reads as a request, not a title:
    "a scary movie", "a love story" (after an indefinite determiner, so a lowercase "a quiet
    place" is lost too), "good superhero movie" (a two-word title ending in a media noun, with
    no cue like "loved" before it), "good kids movies" (followed by a media noun within two
    words) or by a kind of film ("old school comedies"), and a sentence-opening interjection
    ("Sure thing!"). A capital that only opens the sentence does not count. Written capitalised
    or with a year, or after a cue ("I loved scary movie", "seen the love story"), it stays a
    title."""
    first, last = spans[i][1], spans[end - 1][1] + len(words[end - 1])
    before_text = text[:first].rstrip()
    opens = not before_text or before_text[-1] in ".!?"  # its capital says nothing
    if any(c.isupper() for c in text[first + 1 if opens else first : last]):
        return False
    if opens and text[last:].lstrip()[:1] in ("!", ","):  # "Sure thing!", "Good night,"
        return True
    if key[0] in _DETERMINERS:  # "a love story", "like a superhero movie"
        return True
    before = words[i - 1] if i > 0 else ""
    if before in _CUES or (i > 1 and words[i - 2] in _CUES and before == "the"):
        return False
    if before in _DETERMINERS:  # "any scary movie"
        return True
    title = key[1:] if key[0] in _ARTICLES else key
    if len(title) == 2 and title[-1] in _MEDIA:
        return True
    return any(w in _FILM_WORDS for w in words[end : end + 2])


def _sentiment(text: str, start: int, end: int) -> str:
    lowered = text.lower()
    clause_start = max(lowered.rfind(sep, 0, start) for sep in (".", "!", "?", ";", " but "))
    clause = lowered[clause_start + 1 : start]
    after = lowered[end : end + 60].lstrip()
    if NEGATIVE_CUES.search(clause) or SEEN_AFTER.search(after):
        return "rejected"
    if re.search(r"\b(haven'?t seen|not seen|never seen)\b", clause):
        return "neutral"
    return "liked"
