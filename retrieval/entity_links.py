"""People and genres of a catalog, linked in free text (the gazetteer beside `titles.py`).

    linker = EntityLinker(items)
    linker.find("anything else by Fincher? I love dark thrillers")
    # [EntityLink("person:david fincher", ...), EntityLink("genre:thriller", ...)]

The gazetteer reads the people fields (`PERSON_FIELDS`: actor, star, director, writer) and the
genre fields (`GENRE_FIELDS`) of any catalog's item metadata. Keys are `person:<name>` and
`genre:<name>`, with names normalised (lowercase, accents and punctuation dropped; a genre's
"(Film genre) #395" tail and trailing " film" dropped, so "Action Film" and "Action" are one
genre). Matching is case-insensitive on whole words, longest match first. Guards against
common words:
- a one-word name ("Madonna") or a surname standing for a full name ("Fincher") counts only
  written capitalised, not as a common word, and a surname only when one catalog person has it;
  a name made of common words only ("Will Grant") counts only written capitalised;
- a genre that is also an everyday word ("family", "war", "love") counts only next to a media
  noun ("family movie", "war films", "history books"); a bare "film" or "novel" never counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from retrieval.types import Item

PERSON_FIELDS = ("actor", "star", "director", "writer", "author")
GENRE_FIELDS = ("genres", "genre")
MAX_ENTITY_WORDS = 6  # longer names are never scanned for
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_GENRE_TAIL = re.compile(r"\(.*?\)|#\d+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that never stand for a person on their own, however capitalised ("Will", "Wood").
COMMON_WORDS = _words(
    """a an the i you he she it we they me my your his her our their up go in on out is was be
    do did yes no not one two love like big home him us them this that there here what why how
    who when where okay ok hi hello thanks please good great fine best more now then so just also
    about after before again soon today will may can lee king young black white brown green grant
    bell wood stone rose hill little long hall ford day star rich wise moore love hunt price cash
    page lane gray grey north west sharp hope faith joy chase mark ray frank major judge bishop
    cook baker miller carpenter taylor hunter fisher park penn john james paul david michael
    jack tom chris robert mary anne ben sam"""
)
# Genres that are also everyday words: they need a media noun next to them.
AMBIGUOUS_GENRES = _words(
    """family music history war novel literature classics fiction crime sports sport short
    action adventure mystery suspense western classic children"""
)
MEDIA_WORDS = _words(
    """movie movies film films flick flicks book books novel novels story stories show shows
    genre genres series stuff ones one kind type fan fans"""
)


@dataclass(frozen=True)
class EntityLink:
    key: str  # "person:tom hanks" | "genre:comedy"
    name: str  # as the catalog writes it
    start: int  # character offsets in the linked text
    end: int

    @property
    def kind(self) -> str:
        return self.key.split(":", 1)[0]


def normalize_name(name: str) -> str:
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(_WORD.findall(text.replace("&", " and ")))


def genre_name(genre: str) -> str:
    """'Family (Film genre) #395' -> 'family'; 'Action Film' -> 'action'."""
    name = normalize_name(_GENRE_TAIL.sub(" ", genre))
    return name[: -len(" film")] if name.endswith(" film") else name


def _values(item: Item, fields: Iterable[str]) -> list[str]:
    out: list[str] = []
    for f in fields:
        value = item.metadata.get(f)
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        out.extend(v for v in values if isinstance(v, str) and v.strip())
    return out


def _plurals(words: tuple[str, ...]) -> list[tuple[str, ...]]:
    last = words[-1]
    forms = [last + "s", last[:-1] + "ies" if last.endswith("y") else last + "es"]
    return [(*words[:-1], f) for f in forms]


class EntityLinker:
    """The people and genres of `items`, found in free text."""

    def __init__(self, items: Iterable[Item]):
        self._keys: dict[tuple[str, ...], tuple[str, str]] = {}  # words -> (key, display name)
        self._surnames: dict[str, tuple[str, str]] = {}
        credits: Counter[str] = Counter()
        display: dict[str, str] = {}
        for item in items:
            for person in _values(item, PERSON_FIELDS):
                name = normalize_name(person)
                if name:
                    credits[name] += 1
                    display.setdefault(name, person.strip())
            for genre in _values(item, GENRE_FIELDS):
                name = genre_name(genre)
                words = tuple(name.split())
                if words and len(words) <= MAX_ENTITY_WORDS:
                    entry = (f"genre:{name}", name)
                    self._keys.setdefault(words, entry)
                    for plural in _plurals(words):
                        self._keys.setdefault(plural, entry)
        by_surname: dict[str, list[str]] = {}
        for name in credits:
            words = tuple(name.split())
            if len(words) > MAX_ENTITY_WORDS:
                continue
            self._keys[words] = (f"person:{name}", display[name])  # a person wins over a genre
            if len(words) > 1:
                by_surname.setdefault(words[-1], []).append(name)
        for surname, names in by_surname.items():
            if len(names) == 1 and (surname,) not in self._keys and len(surname) > 2:
                self._surnames[surname] = (f"person:{names[0]}", display[names[0]])
        self.max_words = max((len(k) for k in self._keys), default=0)

    def __len__(self) -> int:
        return len({key for key, _ in self._keys.values()})

    def find(self, text: str) -> list[EntityLink]:
        """People and genres named in `text`, in order of appearance (longest match first)."""
        spans = [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text.lower())]
        words = [w[:-2] if w.endswith("'s") else w for w, _, _ in spans]
        used = [False] * len(words)
        found: list[EntityLink] = []
        for n in range(min(self.max_words, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                if any(used[i : i + n]):
                    continue
                entry = self._match(text, spans, words, i, n)
                if entry is None:
                    continue
                for j in range(i, i + n):
                    used[j] = True
                found.append(EntityLink(entry[0], entry[1], spans[i][1], spans[i + n - 1][2]))
        return sorted(found, key=lambda link: link.start)

    def _match(
        self, text: str, spans: list[tuple[str, int, int]], words: list[str], i: int, n: int
    ) -> tuple[str, str] | None:
        key = tuple(words[i : i + n])
        entry = self._keys.get(key)
        if n == 1 and entry is None:
            entry = self._surnames.get(key[0])
        if entry is None:
            return None
        if entry[0].startswith("person:"):
            capitalised = all(text[s[1]].isupper() for s in spans[i : i + n])
            if n > 1:  # "will grant you" is not Will Grant: all-common names need capitals
                return entry if capitalised or not set(key) <= COMMON_WORDS else None
            ok = capitalised and key[0] not in COMMON_WORDS and len(key[0]) > 2
            return entry if ok else None
        word = singular(key[0])
        if n == 1 and word in MEDIA_WORDS:  # "Film", "Novel" as a genre: says nothing
            return None
        if n == 1 and (word in AMBIGUOUS_GENRES or word in COMMON_WORDS):
            near = words[max(i - 1, 0) : i] + words[i + 1 : i + 3]
            return entry if any(w in MEDIA_WORDS for w in near) else None
        return entry


def singular(word: str) -> str:
    """The singular of a plural word ("comedies" -> "comedy", "films" -> "film"), as the
    genre and media word lists hold them."""
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word
