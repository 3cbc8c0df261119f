"""Card reasons worth reading, without the LLM: the item's own words, its facts, its true link.

    reasons = card_reasons(items, user_words, links)  # one CardReason per card, in order
    reasons[0].text  # 'A meticulous professional thief and his crew plan one last big score in
                     #  Los Angeles while an obsessive police lieutenant closes in. Directed by
                     #  Michael Mann, as was Heat.'

Extractive: the description sentence that shares the most words with what the user said (the
first on ties), trimmed at a clause boundary; the facts come from the record (genres, year,
director/star, tags) and the link from `chatbot.reply.credit_links.find_link` (a shared director or star, a
pair recommended together in logged dialogues, or shared genres). Each card takes the first
shape of `prompts/card_reasons.toml` its item has the facts for and that no earlier card of the
turn took, so a turn's reasons never share one shape. Deterministic; no model time (the reply
writer carries the conversation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from chatbot.reply.credit_links import Link
from chatbot.reply.reasons import stop_words
from prompts.errors import PromptError
from prompts.loader import load_link_phrases, load_toml, prompt_path
from retrieval.types import Item

MAX_PLOT_WORDS = 22  # one card line or two; longer sentences are cut at a clause boundary
MIN_CLAUSE_WORDS = 6  # a cut keeps at least this many words
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
# Where a long sentence may end early and still read whole: before a relative or a following
# clause, never inside a noun phrase ("a teenage boy and his friends").
_CLAUSE_BREAK = re.compile(
    r"(?:,\s(?=(?:who|which|while|but|only|as|where|when|until|after|before)\s)|;\s|"
    r"\s(?=(?:while|but|only to|until|before|after|when|because)\s))"
)
# A sentence opening with these is subordinate up to its first comma: cutting there leaves a
# fragment ("In Ancient Polynesia, when a curse ... reaches Moana's island."), so it is not cut.
_SUBORDINATE_START = re.compile(
    r"^(?:in|when|after|before|despite|while|as|following|during|since|although|though|if|"
    r"with|on|at|set|unable|having|upon|from|to|for|by|once|until)\b",
    re.I,
)
_ABBREVIATION = re.compile(
    r"\b(?:[A-Z]\.|Prof|Dr|Mr|Mrs|Ms|St|Jr|Sr|Lt|Sgt|Capt|Gen|Col|vs|Mt|No)\.$"
)
_DANGLING = frozenset(
    [
        "and",
        "or",
        "but",
        "the",
        "a",
        "an",
        "to",
        "of",
        "in",
        "on",
        "at",
        "with",
        "by",
        "for",
        "from",
        "his",
        "her",
        "their",
        "its",
        "who",
        "that",
        "which",
        "is",
        "are",
        "was",
        "were",
        "be",
        "as",
        "into",
    ]
)
_WORD = re.compile(r"[a-z0-9']+")
SHAPE_VARIABLES = frozenset(
    {"plot", "plot_lc", "kind", "Kind", "year", "people", "link", "Link", "wanted", "tags"}
)


@dataclass(frozen=True)
class CardReason:
    text: str
    shape: str  # the `card_reasons.toml` key it was built from
    link: Link | None = None  # the link it names, if its shape names one
    fallback: bool = False  # never: every card reason is built from the record


def card_reasons(
    items: Sequence[Item],
    user_words: str,
    links: Sequence[Link | None] | None = None,
    *,
    directory: Path | None = None,
) -> list[CardReason]:
    """One reason per item, in order; no two share a shape while unused shapes fit."""
    links = list(links) if links is not None else [None] * len(items)
    shapes = reason_shapes(directory)
    used: set[str] = set()
    out: list[CardReason] = []
    for item, link in zip(items, links, strict=True):
        values = reason_values(item, user_words, link, directory)
        fitting = [name for name, (_, needs) in shapes.items() if needs <= values.keys()]
        fresh = [name for name in fitting if name not in used]
        if not fitting:
            raise PromptError("card_reasons.toml needs a last shape without variables")
        name = (fresh or fitting)[0]
        used.add(name)
        text = shapes[name][0].format(**values)
        named = link if {"link", "Link"} & shapes[name][1] else None
        out.append(CardReason(_tidy(text), name, named))
    return out


def reason_values(
    item: Item, user_words: str, link: Link | None, directory: Path | None = None
) -> dict[str, str]:
    """The shape variables `item` has (a missing fact leaves its variable out)."""
    values: dict[str, str] = {}
    plot = relevant_sentence(item.metadata.get("description"), user_words)
    if plot:
        values["plot"] = plot
        values["plot_lc"] = _lower_first(plot).rstrip(".!?")
    genres = genre_names(item)[:2]
    if genres:
        kind = f"{' and '.join(genres)} film"
        values["kind"] = f"{_article(kind)} {kind}"
        values["Kind"] = values["kind"][0].upper() + values["kind"][1:]
    if item.year:
        values["year"] = str(item.year)
    people = _people(item)
    if people:
        values["people"] = people
    if link is not None:
        phrase = _link_text(link, directory)
        values["link"] = phrase
        values["Link"] = phrase[0].upper() + phrase[1:]
    wanted = requested(item, user_words)
    if wanted:
        values["wanted"] = wanted
    tags = item.metadata.get("tags")
    if isinstance(tags, list) and tags:
        values["tags"] = _and(tags[:3])
    return values


def relevant_sentence(description: object, user_words: str, max_words: int = MAX_PLOT_WORDS) -> str:
    """The description sentence sharing the most content words with `user_words` (the first
    on ties), trimmed to `max_words` at a clause boundary; '' without a description."""
    if not isinstance(description, str) or not description.strip():
        return ""
    sentences = _sentences(description)
    wanted = _content(user_words)
    best = max(enumerate(sentences), key=lambda p: (len(_content(p[1]) & wanted), -p[0]))[1]
    return trim(best, max_words)


def trim(sentence: str, max_words: int = MAX_PLOT_WORDS) -> str:
    """`sentence` ending in a stop; over `max_words` words it is cut at the last clause break
    that keeps at least MIN_CLAUSE_WORDS words, else after `max_words` words with an ellipsis."""
    sentence = " ".join(sentence.split())
    if len(sentence.split()) <= max_words:
        return sentence if sentence.endswith((".", "!", "?")) else sentence + "."
    head = " ".join(sentence.split()[:max_words])
    cuts = [m.start() for m in _CLAUSE_BREAK.finditer(head)]
    cuts = [c for c in cuts if len(head[:c].split()) >= MIN_CLAUSE_WORDS]
    if cuts and not _SUBORDINATE_START.match(head):
        return head[: cuts[-1]].rstrip(" ,;") + "."
    words = head.split()
    while len(words) > MIN_CLAUSE_WORDS and words[-1].lower().strip(",;") in _DANGLING:
        words.pop()  # "... in one night, and…" -> "... in one night…"
    return " ".join(words).rstrip(" ,;") + "…"


def _sentences(text: str) -> list[str]:
    """Sentences of `text`; a split after an abbreviation ("Prof.", "D.C.") is undone."""
    out: list[str] = []
    for part in (p.strip() for p in _SENTENCE.split(text.strip())):
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {part}"
        elif part:
            out.append(part)
    return out


def genre_names(item: Item) -> list[str]:
    """The record's genres as words, deduplicated: "Action Film" and "Action" -> "action"."""
    names = [
        re.sub(r"\s+(?:film|movie)s?$", "", g.strip(), flags=re.I).lower() for g in item.genres
    ]
    return list(dict.fromkeys(n for n in names if n))


def requested(item: Item, user_words: str) -> str:
    """A genre or tag of the item the user's words name ("heist"), genres first; else ''."""
    words = set(user_words.lower().replace("-", " ").split())
    tags = item.metadata.get("tags")
    for value in [*item.genres, *(tags if isinstance(tags, list) else [])]:
        parts = set(value.lower().replace("-", " ").split())
        if parts and parts <= words:
            return re.sub(r"^for\s+", "", value)
    return ""


@lru_cache(maxsize=8)
def reason_shapes(directory: Path | None = None) -> dict[str, tuple[str, frozenset[str]]]:
    """`card_reasons.toml`: shape name -> (template text, the variables it needs), in order."""
    table = load_toml("card_reasons.toml", directory)
    path = prompt_path("card_reasons.toml", directory)
    shapes: dict[str, tuple[str, frozenset[str]]] = {}
    for name, text in table.items():
        needs = frozenset(re.findall(r"\{(\w+)\}", text)) if isinstance(text, str) else None
        if needs is None or not needs <= SHAPE_VARIABLES:
            raise PromptError(
                f"prompt file {path}: shape {name!r} must be text using only "
                f"{sorted(SHAPE_VARIABLES)}: edit the file"
            )
        shapes[name] = (text, needs)
    return shapes


def _link_text(link: Link, directory: Path | None) -> str:
    """The link phrase of `reason_links.toml` without its leading '; '."""
    template = load_link_phrases(directory)[link.kind]
    values = {"seed": link.seed_title, "name": link.name}
    phrase = template.format(**{k: v for k, v in values.items() if k in template.input_variables})
    return phrase.lstrip("; ").strip()


def _people(item: Item) -> str:
    for key, word in (("director", "directed by"), ("star", "with"), ("actor", "with")):
        value = item.metadata.get(key)
        if isinstance(value, list) and value:
            return f"{word} {_and(value[:2] if word == 'with' else value[:1])}"
    return ""


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in stop_words()}


def _and(values: Sequence[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def _lower_first(text: str) -> str:
    """Lower-case a leading article or common word, never a name ("A thief" -> "a thief",
    "Batman joins" stays)."""
    first, _, rest = text.partition(" ")
    if first in ("A", "An", "The", "In", "On", "When", "After", "Two", "One", "This", "As"):
        return first.lower() + " " + rest
    return text


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    return re.sub(r"([.!?…])\.", r"\1", text)
