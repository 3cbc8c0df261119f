"""One short reason per recommended item: LLM-written, checked, or a truthful template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.factcheck import unsupported_claims
from chatbot.templates import render
from retrieval.types import Item


@dataclass
class Reason:
    text: str
    fallback: bool = False
    unsupported: list[str] = field(default_factory=list)


def reason_prompt(llm, item: Item, user_words: str, *, filename: str | None = None,
                  directory: Path | None = None) -> str:
    user_text = render("reason", filename, directory, user_words=user_words[-400:],
                       facts=item.facts_text())
    return llm.chat_prompt(user_text, system=render("system", None, directory))


def template_reason(item: Item, user_words: str, directory: Path | None = None) -> str:
    """A reason built only from the item's own facts and the user's words."""
    words = set(user_words.lower().replace("-", " ").split())
    genres = item.genres[:2]
    tags = item.metadata.get("tags")
    tags = tags if isinstance(tags, list) else []
    overlap = [x for x in [*item.genres, *tags] if set(x.lower().replace("-", " ").split()) <= words]
    match = f", matching your request for {overlap[0]}" if overlap else ""
    year = f" from {item.year}" if item.year and str(item.year) not in item.title else ""
    return render(
        "reason_fallback", None, directory, title=item.title,
        genres=(" and ".join(genres) + " title") if genres else "catalog pick",
        year_phrase=year, match_phrase=match,
    )


def check_reason(text: str, item: Item, user_words: str, other_titles: Sequence[str]) -> Reason:
    claims = unsupported_claims(text, item, user_words)
    lowered = text.lower()
    claims += [t for t in other_titles if len(t) > 3 and t.lower() in lowered]
    if len(text.split()) < 4:
        claims.append("<too short>")
    return Reason(text=text, fallback=False, unsupported=claims)


def generate_reasons(
    llm, items: Sequence[Item], user_words: str, *, max_new_tokens: int = 32,
    directory: Path | None = None,
) -> list[Reason]:
    """Batched generation for `items`; unsupported or empty reasons fall back to the template."""
    if not items:
        return []
    prompts = [reason_prompt(llm, it, user_words, directory=directory) for it in items]
    texts = llm.generate(prompts, max_new_tokens)
    out: list[Reason] = []
    titles = [it.title for it in items]
    for item, text in zip(items, texts, strict=True):
        others = [t for t in titles if t != item.title]
        checked = check_reason(text, item, user_words, others)
        if checked.unsupported:
            out.append(Reason(template_reason(item, user_words, directory), True,
                              checked.unsupported))
        else:
            out.append(checked)
    return out
