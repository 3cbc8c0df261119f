"""Constraints stated in words ("no horror", "after 2000", "for kids", "under 2 hours").

Hard constraints become a Chroma metadata filter; soft ones ("less violent") become avoid
terms that down-weight matching items. Parsing is rule-based: fast, predictable and testable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from retrieval.entity_links import COMMON_WORDS, MEDIA_WORDS, singular
from retrieval.types import Item

GENRE_SYNONYMS = {
    "scary": "horror",
    "horrors": "horror",
    "funny": "comedy",
    "comedies": "comedy",
    "romantic": "romance",
    "rom com": "romance",
    "romcom": "romance",
    "animated": "animation",
    "cartoon": "animation",
    "cartoons": "animation",
    "anime": "animation",
    "science fiction": "sci-fi",
    "scifi": "sci-fi",
    "sci fi": "sci-fi",
    "documentaries": "documentary",
    "docs": "documentary",
    "musicals": "music",
    "musical": "music",
    "westerns": "western",
    "thrillers": "thriller",
    "dramas": "drama",
    "mysteries": "mystery",
    "whodunit": "mystery",
    "biopic": "biography",
    "biopics": "biography",
    "war movies": "war",
    "sport": "sports",
    "historical": "history",
    "fantasy": "fantasy",
}
NEGATORS = re.compile(
    r"\b(no|not|nothing|without|never|hate|hates|dislike|avoid|except|skip|don'?t want|"
    r"do not want|not into|anything but|tired of|sick of|no more)\b[\w\s-]{0,20}$"
)
KIDS = re.compile(
    r"\b(for (my )?(kids?|children|child|son|daughter|family)|kid[- ]friendly|family[- ]friendly"
    r"|\d{1,2}[- ]year[- ]olds?|suitable for kids|with the kids|with my kids|toddler)\b"
)
SOFT_AVOID = {
    "violent": (
        "violent",
        "violence",
        "brutal",
        "gory",
        "gore",
        "bloody",
        "war",
        "horror",
        "revenge",
        "hitman",
        "assassin",
        "assassins",
        "shootout",
        "gangster",
        "killer",
        "massacre",
        "gun fu",
    ),
    "scary": ("scary", "horror", "terrifying", "disturbing"),
    "sad": ("sad", "tearjerker", "tragic", "grief"),
    "dark": ("dark", "bleak", "grim"),
    "long": ("epic",),
}
SOFT_PATTERN = re.compile(
    r"\b(?:less|not (?:too|so|that|very)|nothing (?:too )?|without (?:the )?|no)\s*(?P<what>"
    + "|".join(SOFT_AVOID)
    + r")\b"
)
# Genre words said alone that mean the genre ("something funny", "a comedy", "I like action").
# Any other catalog genre is a hard filter only next to a media noun ("war movies", "dystopia
# novels"): catalogs with rich genre lists (OpenDialKG's has "love", "film", "car", "death")
# would otherwise filter on everyday words ("I love Tom Hanks"), and a genre word inside a
# title the user named ("Star Wars") is masked before parsing (`DialogueState.add_user`). The
# entity linker still reads those genres as soft preferences.
STANDALONE_GENRES = frozenset(
    """action adventure animation biography comedy crime documentary drama family fantasy horror
    musical music mystery romance sci-fi thriller western film-noir""".split()  # noqa: SIM905
)
_CONNECTOR = re.compile(r"^[\s,]*(or|and|nor|,)?\s*(even\s+)?(any\s+)?$")
_DECADE = re.compile(r"\b(?:(19|20)(\d)0s|'?(\d)0s)\b")
_AFTER = re.compile(
    r"\b(after|since|from|newer than|post[- ]?)\s*(?:the year\s*)?((?:19|20)\d\d)\b"
)
_BEFORE = re.compile(r"\b(before|until|older than|pre[- ]?)\s*((?:19|20)\d\d)\b")
_OR_LATER = re.compile(r"\b((?:19|20)\d\d)\s*(or|and)\s*(later|newer|after)\b")
_BETWEEN = re.compile(r"\bbetween\s*((?:19|20)\d\d)\s*and\s*((?:19|20)\d\d)\b")
_DURATION = re.compile(
    r"\b(under|less than|shorter than|at most|no longer than|max(?:imum)?)\s*"
    r"(\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m)\b"
)
_PRICE = re.compile(r"\b(under|less than|cheaper than|at most|below)\s*\$\s?(\d+(?:\.\d+)?)")


@dataclass
class Constraints:
    include_genres: list[str] = field(default_factory=list)
    exclude_genres: list[str] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    max_values: dict[str, float] = field(default_factory=dict)
    kids: bool = False
    avoid: list[str] = field(default_factory=list)

    def labels(self) -> list[str]:
        """Human-readable active filters; each can be passed to `remove`."""
        out = [f"only {g}" for g in self.include_genres]
        out += [f"no {g}" for g in self.exclude_genres]
        if self.year_min is not None:
            out.append(f"from {self.year_min}")
        if self.year_max is not None:
            out.append(f"up to {self.year_max}")
        out += [f"{k} <= {v:g}" for k, v in self.max_values.items()]
        if self.kids:
            out.append("for kids")
        out += [f"less {a}" for a in self.avoid]
        return out

    def remove(self, label: str) -> bool:
        before = self.labels()
        if label not in before:
            return False
        kind, _, value = label.partition(" ")
        if kind == "only":
            self.include_genres.remove(value)
        elif kind == "no":
            self.exclude_genres.remove(value)
        elif kind == "from":
            self.year_min = None
        elif kind == "up":
            self.year_max = None
        elif label == "for kids":
            self.kids = False
        elif kind == "less":
            self.avoid.remove(value)
        else:
            self.max_values.pop(kind, None)
        return True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Constraints:
        return cls(**data)

    def avoid_terms(self) -> tuple[str, ...]:
        terms: list[str] = []
        for a in self.avoid:
            terms.extend(SOFT_AVOID.get(a, (a,)))
        return tuple(dict.fromkeys(terms))


@dataclass(frozen=True)
class CatalogSchema:
    """What the indexed catalog can filter on (learned from its items)."""

    genres: frozenset[str] = frozenset()
    genre_field: str = "genres"
    year_field: str = "year"
    rating_field: str | None = None
    numeric_fields: frozenset[str] = frozenset()


def schema_of(items: Sequence[Item], cat: Any) -> CatalogSchema:
    """What `items` can filter on; `cat`: the `CatalogSettings` naming the genre/year fields."""
    genres: set[str] = set()
    numeric: set[str] = set()
    has_rating = False
    for it in items:
        g = it.metadata.get(cat.genre_field)
        if isinstance(g, list):
            genres.update(x.lower() for x in g)
        for key, value in it.metadata.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                numeric.add(key)
        has_rating = has_rating or "rating" in it.metadata
    return CatalogSchema(
        genres=frozenset(genres),
        genre_field=cat.genre_field,
        year_field=cat.year_field,
        rating_field="rating" if has_rating else None,
        numeric_fields=frozenset(numeric),
    )


@functools.lru_cache(maxsize=8)
def _genre_vocab(genres: frozenset[str]) -> list[tuple[str, str, re.Pattern[str]]]:
    """(word, canonical genre, its pattern), longest word first; compiled once per catalog
    (OpenDialKG has hundreds of genres: more patterns than the `re` module caches)."""
    vocab = {g: g for g in genres}
    vocab.update({s: g for s, g in GENRE_SYNONYMS.items() if g in genres})
    vocab.update({g + "s": g for g in genres if not g.endswith("s")})
    return [
        (w, vocab[w], re.compile(rf"(?<![\w-]){re.escape(w)}(?![\w-])"))
        for w in sorted(vocab, key=len, reverse=True)
    ]


def _genre_mentions(text: str, schema: CatalogSchema) -> list[tuple[str, int]]:
    """(canonical genre, position) for each genre word in lowercased `text` said as a genre."""
    found: list[tuple[str, int, str]] = []
    for word, genre, pattern in _genre_vocab(frozenset(schema.genres)):
        if word not in text:
            continue
        for m in pattern.finditer(text):
            if not any(p <= m.start() < p + len(w) for w, p, _ in found):
                found.append((word, m.start(), genre))
    return [
        (g, p) for w, p, g in sorted(found, key=lambda x: x[1]) if _said_as_genre(text, w, p, g)
    ]


_TOKEN = re.compile(r"[a-z0-9]+")


def _said_as_genre(text: str, word: str, pos: int, genre: str) -> bool:
    """Whether the genre word `word` at `pos` asks for the genre (see STANDALONE_GENRES)."""
    if " " in word or word in GENRE_SYNONYMS:  # "science fiction", "funny", "westerns"
        return True
    single = singular(word)
    if single in MEDIA_WORDS:  # a genre named "Film" or "Novel" says nothing
        return False
    if genre in STANDALONE_GENRES and word == genre and single not in COMMON_WORDS:
        return True
    after = _TOKEN.findall(text[pos + len(word) : pos + len(word) + 30])[:2]
    if single in COMMON_WORDS:  # "love stories", never "I love that film"
        return bool(after) and after[0] in MEDIA_WORDS
    before = _TOKEN.findall(text[max(0, pos - 20) : pos])[-1:]
    return any(w in MEDIA_WORDS for w in (*before, *after))


def update_constraints(c: Constraints, message: str, schema: CatalogSchema) -> Constraints:
    """Apply what `message` says to `c` (in place) and return it."""
    text = message.lower()
    new_includes: list[str] = []
    negated_end = -1
    for genre, pos in _genre_mentions(text, schema):
        window = text[max(0, pos - 30) : pos]
        window = re.split(r"[.,;!?]| but | and | or ", window)[-1]
        chained = negated_end >= 0 and _CONNECTOR.match(_strip_word(text[negated_end:pos]))
        if NEGATORS.search(window) or chained:
            negated_end = pos + len(genre)
            if genre not in c.exclude_genres:
                c.exclude_genres.append(genre)
            if genre in c.include_genres:
                c.include_genres.remove(genre)
        elif genre not in c.exclude_genres and genre not in new_includes:
            new_includes.append(genre)
    if new_includes:
        c.include_genres = new_includes  # a new genre request replaces the previous one
    _years(c, text)
    _numbers(c, text, schema)
    if KIDS.search(text):
        c.kids = True
    for m in SOFT_PATTERN.finditer(text):
        if m.group("what") not in c.avoid:
            c.avoid.append(m.group("what"))
    return c


def _strip_word(gap: str) -> str:
    """Drop the rest of the previous genre word (e.g. the 's' of 'thrillers') and 'movies'."""
    return re.sub(r"^[\w-]*\s*(movies?|films?|stuff)?", "", gap)


def _years(c: Constraints, text: str) -> None:
    if m := _BETWEEN.search(text):
        lo, hi = sorted((int(m.group(1)), int(m.group(2))))
        c.year_min, c.year_max = lo, hi
        return
    if m := _AFTER.search(text):
        year = int(m.group(2))
        c.year_min = year + 1 if m.group(1) in ("after", "newer than") else year
    if m := _OR_LATER.search(text):
        c.year_min = int(m.group(1))
    if m := _BEFORE.search(text):
        year = int(m.group(2))
        c.year_max = year - 1 if not m.group(1).startswith("until") else year
    if m := _DECADE.search(text):
        if m.group(1):
            start = int(m.group(1) + m.group(2) + "0")
        else:
            d = int(m.group(3))
            start = (1900 if d >= 3 else 2000) + d * 10
        c.year_min, c.year_max = start, start + 9


def _numbers(c: Constraints, text: str, schema: CatalogSchema) -> None:
    runtime = next(
        (f for f in ("runtime_min", "runtime", "minutes") if f in schema.numeric_fields), None
    )
    if runtime and (m := _DURATION.search(text)):
        value = float(m.group(2))
        minutes = value * 60 if m.group(3).startswith("h") else value
        c.max_values[runtime] = minutes
    if "price" in schema.numeric_fields and (m := _PRICE.search(text)):
        c.max_values["price"] = float(m.group(2))


KID_RATINGS = ["G", "PG", "TV-Y", "TV-G", "TV-Y7"]


def to_where(c: Constraints, schema: CatalogSchema) -> dict[str, Any] | None:
    """Translate hard constraints into a Chroma `where` filter (None when unconstrained)."""
    g, y = schema.genre_field, schema.year_field
    clauses: list[dict[str, Any]] = []
    if c.include_genres:
        ors = [{g: {"$contains": x}} for x in c.include_genres]
        clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
    clauses += [{g: {"$not_contains": x}} for x in c.exclude_genres]
    if c.year_min is not None:
        clauses.append({y: {"$gte": c.year_min}})
    if c.year_max is not None:
        clauses.append({y: {"$lte": c.year_max}})
    clauses += [{k: {"$lte": v}} for k, v in c.max_values.items()]
    if c.kids:
        if schema.rating_field:
            clauses.append({schema.rating_field: {"$in": KID_RATINGS}})
        elif {"family", "animation"} & schema.genres:
            fam = [{g: {"$contains": x}} for x in ("family", "animation") if x in schema.genres]
            clauses.append(fam[0] if len(fam) == 1 else {"$or": fam})
        clauses.append({g: {"$not_contains": "horror"}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
