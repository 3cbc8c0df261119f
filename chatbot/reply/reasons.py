"""One short reason per recommended item: LLM-written, checked, or a truthful template."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from chatbot.reply.credit_links import Link
from chatbot.reply.reason_checks import unsupported_claims
from prompts.loader import bundled_prompt_dir, load_link_phrases, render
from retrieval.types import Item


@dataclass
class Reason:
    text: str
    fallback: bool = False
    unsupported: list[str] = field(default_factory=list)
    link: Link | None = None  # the link a template reason names


def reason_prompt(
    llm, item: Item, user_words: str, *, filename: str | None = None, directory: Path | None = None
) -> str:
    user_text = render(
        "reason", filename, directory, user_words=user_words[-400:], facts=item.facts_text()
    )
    return llm.chat_prompt(user_text, system=render("system", None, directory))


def template_reason(
    item: Item, user_words: str, directory: Path | None = None, link: Link | None = None
) -> str:
    """A reason built only from the item's own facts, the user's words and a true `link`.

    'Collateral is a crime and thriller title from 2004, matching your request for crime;
    directed by Michael Mann, as was Heat (1995).'
    """
    words = set(user_words.lower().replace("-", " ").split())
    tags = item.metadata.get("tags")
    tags = tags if isinstance(tags, list) else []
    overlap = [
        x for x in [*item.genres, *tags] if set(x.lower().replace("-", " ").split()) <= words
    ]
    # A genre the user asked for leads, so the match phrase names a genre the card shows.
    genres = list(dict.fromkeys([*(g for g in overlap if g in item.genres), *item.genres]))[:2]
    wanted = re.sub(r"^for\s+", "", overlap[0]) if overlap else ""  # tag "for kids"
    match = f", matching your request for {wanted}" if overlap else ""
    year = f" from {item.year}" if item.year and str(item.year) not in item.title else ""
    kind = (" and ".join(genres) + " title") if genres else "catalog pick"
    return render(
        "reason_fallback",
        None,
        directory,
        title=item.title,
        genres=f"{_article(kind)} {kind}",
        year_phrase=year,
        match_phrase=match,
        link_phrase=_link_phrase(link, directory),
    )


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def _link_phrase(link: Link | None, directory: Path | None) -> str:
    if link is None:
        return ""
    template = load_link_phrases(directory)[link.kind]
    values = {"seed": link.seed_title, "name": link.name}
    return template.format(**{k: v for k, v in values.items() if k in template.input_variables})


_CONTENT = re.compile(r"[a-z]{4,}")
_ALPHA = re.compile(r"[a-z]+")
_META = re.compile(r"\b(user|item|candidate|criteria|requirements?|request|facts?|reason)\b", re.I)


def check_reason(
    text: str,
    item: Item,
    user_words: str,
    other_titles: Sequence[str],
    vocabulary: set[str] | None = None,
) -> Reason:
    """Flag unsupported claims, other items' titles, meta-talk, made-up words (when a
    `vocabulary` of allowed words is given), reasons that say nothing about the item, and
    incoherent ones (unbacked negations, repetition loops, coined compounds)."""
    claims = unsupported_claims(text, item, user_words)
    if vocabulary is not None:
        claims += [
            f"<unknown word {w}>" for w in _ALPHA.findall(text.lower()) if w not in vocabulary
        ]
    lowered = text.lower()
    claims += [t for t in other_titles if len(t) > 3 and t.lower() in lowered]
    if _META.search(text):
        claims.append("<talks about the prompt>")
    item_words = set(_CONTENT.findall(item.facts_text(max_list=50).lower()))
    if len(set(_CONTENT.findall(lowered)) & item_words) < 2:
        claims.append("<says nothing about the item>")
    claims += _incoherent(lowered, " ".join([item.facts_text(max_list=50), user_words]).lower())
    return Reason(text=text, fallback=False, unsupported=claims)


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """scikit-learn's English stop words. Importing them takes ~0.8 s, so the recommender
    loads them at startup (`Recommender.cache_prompt_heads`), not on a user's first turn."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


_NEGATION = re.compile(r"\b(?:not|no|never|nor|neither|without)\b|n't\b")
_COMPOUND = re.compile(r"[a-z]+(?:-[a-z]+)+")


def _incoherent(text: str, support: str) -> list[str]:
    """Ways a small model's sentence goes wrong that the word checks above let through:
    negations ("a superhero who is not in the Marvel films"), which no record can back unless
    it or the user negates too; loops ("a robot who is not a robot but a robot"); and hyphenated
    coinages ("light-on-the-chef") built from allowed words."""
    out = []
    if _NEGATION.search(text) and not _NEGATION.search(support):
        out.append("<negation the record does not back>")
    words = _ALPHA.findall(text)
    counts = Counter(w for w in words if w not in stop_words())
    adjacent = any(a == b for a, b in zip(words, words[1:], strict=False))
    backed = Counter(_ALPHA.findall(support))  # a word the record itself repeats may repeat
    if adjacent or any(n >= 3 and backed[w] < n for w, n in counts.items()):
        out.append("<repeats itself>")
    out += [f"<coined word {c}>" for c in _COMPOUND.findall(text) if c not in support]
    return out


def reason_sources(item: Item, directory: Path | None = None) -> list[str]:
    """Texts a reason may draw words from: the item's facts and function words. Not the user's
    words: a small model turns them into claims about the item ("a French film" because the
    user asked for one), which no check can tell from a true match."""
    glue = (directory or bundled_prompt_dir()) / "reason_words.txt"
    words = glue.read_text(encoding="utf-8") if glue.is_file() else ""
    return [item.facts_text(max_list=50), words, ".,;-'"]


def template_reasons(
    items: Sequence[Item],
    user_words: str,
    *,
    directory: Path | None = None,
    links: Sequence[Link | None] | None = None,
) -> list[Reason]:
    """Template reasons only (no LLM time): each names the item's facts and its true link."""
    links = list(links) if links is not None else [None] * len(items)
    return [
        Reason(template_reason(item, user_words, directory, link), True, [], link)
        for item, link in zip(items, links, strict=True)
    ]


def generate_reasons(
    llm,
    items: Sequence[Item],
    user_words: str,
    *,
    max_new_tokens: int = 32,
    directory: Path | None = None,
    links: Sequence[Link | None] | None = None,
) -> list[Reason]:
    """Batched generation for `items`; unsupported, empty or incoherent reasons fall back to
    the template, which names the item's `links[i]` (its true link to the user's items)."""
    if not items:
        return []
    links = list(links) if links is not None else [None] * len(items)
    prompts = [reason_prompt(llm, it, user_words, directory=directory) for it in items]
    sources = [reason_sources(it, directory) for it in items]
    allowed = [llm.vocabulary_of(src) for src in sources]
    texts = [
        _first_sentence(t)
        for t in llm.generate(prompts, max_new_tokens, allowed_tokens=allowed, one_sentence=True)
    ]
    out: list[Reason] = []
    titles = [it.title for it in items]
    for item, text, src, link in zip(items, texts, sources, links, strict=True):
        others = [t for t in titles if t != item.title]
        vocabulary = set(_ALPHA.findall(" ".join(src).lower()))
        checked = check_reason(text, item, user_words, others, vocabulary)
        if checked.unsupported:
            fallback = template_reason(item, user_words, directory, link)
            out.append(Reason(fallback, True, checked.unsupported, link))
        else:
            out.append(checked)
    return out


def _first_sentence(text: str) -> str:
    """Cut at the first sentence end; an unfinished sentence is cut at its last comma."""
    text = text.strip().strip('"')
    m = re.search(r"[.!?](\s|$)", text)
    if m:
        return text[: m.end()].strip()
    head = text.rsplit(",", 1)[0] if "," in text else text
    return head.rstrip(" ,;-") + "."
