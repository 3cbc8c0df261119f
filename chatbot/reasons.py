"""One short reason per recommended item: LLM-written, checked, or a truthful template."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.factcheck import unsupported_claims
from chatbot.templates import bundled_prompt_dir, render
from retrieval.types import Item


@dataclass
class Reason:
    text: str
    fallback: bool = False
    unsupported: list[str] = field(default_factory=list)


def reason_prompt(
    llm, item: Item, user_words: str, *, filename: str | None = None, directory: Path | None = None
) -> str:
    user_text = render(
        "reason", filename, directory, user_words=user_words[-400:], facts=item.facts_text()
    )
    return llm.chat_prompt(user_text, system=render("system", None, directory))


def template_reason(item: Item, user_words: str, directory: Path | None = None) -> str:
    """A reason built only from the item's own facts and the user's words."""
    words = set(user_words.lower().replace("-", " ").split())
    genres = item.genres[:2]
    tags = item.metadata.get("tags")
    tags = tags if isinstance(tags, list) else []
    overlap = [
        x for x in [*item.genres, *tags] if set(x.lower().replace("-", " ").split()) <= words
    ]
    match = f", matching your request for {overlap[0]}" if overlap else ""
    year = f" from {item.year}" if item.year and str(item.year) not in item.title else ""
    return render(
        "reason_fallback",
        None,
        directory,
        title=item.title,
        genres=(" and ".join(genres) + " title") if genres else "catalog pick",
        year_phrase=year,
        match_phrase=match,
    )


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
    `vocabulary` of allowed words is given) and reasons that say nothing about the item."""
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
    return Reason(text=text, fallback=False, unsupported=claims)


def reason_sources(item: Item, user_words: str, directory: Path | None = None) -> list[str]:
    """Texts a reason may draw words from: the item's facts, the user's words, function words."""
    glue = (directory or bundled_prompt_dir()) / "reason_words.txt"
    words = glue.read_text(encoding="utf-8") if glue.is_file() else ""
    return [item.facts_text(max_list=50), user_words, words, ".,;-'"]


def generate_reasons(
    llm,
    items: Sequence[Item],
    user_words: str,
    *,
    max_new_tokens: int = 32,
    directory: Path | None = None,
) -> list[Reason]:
    """Batched generation for `items`; unsupported or empty reasons fall back to the template."""
    if not items:
        return []
    prompts = [reason_prompt(llm, it, user_words, directory=directory) for it in items]
    sources = [reason_sources(it, user_words, directory) for it in items]
    allowed = [llm.vocabulary_of(src) for src in sources]
    texts = [
        _first_sentence(t)
        for t in llm.generate(prompts, max_new_tokens, allowed_tokens=allowed, one_sentence=True)
    ]
    out: list[Reason] = []
    titles = [it.title for it in items]
    for item, text, src in zip(items, texts, sources, strict=True):
        others = [t for t in titles if t != item.title]
        vocabulary = set(_ALPHA.findall(" ".join(src).lower()))
        checked = check_reason(text, item, user_words, others, vocabulary)
        if checked.unsupported:
            out.append(
                Reason(template_reason(item, user_words, directory), True, checked.unsupported)
            )
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
