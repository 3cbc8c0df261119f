"""The reasons of a turn's shown cards: extractive card reasons (the item's own description,
facts and true link, `chatbot.reply.card_reasons`), or the plain template naming a true link.

A link is the item's strongest true connection (shared director/star, co-recommendation,
genres) to what the user liked or mentioned (`chatbot.reply.credit_links`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatbot.reply.card_reasons import card_reasons
from chatbot.reply.credit_links import Link, find_link, seed_order
from chatbot.reply.reasons import template_reasons
from chatbot.reply.turn_result import Recommendation
from chatbot.timing import StageClock
from chatbot.understanding.state import DialogueState
from retrieval.types import Item

MAX_LINK_SEEDS = 10  # the user's most recent liked/mentioned items a reason may link to


def links_of(
    store: Any, collab: Any, state: DialogueState, items: Sequence[Item]
) -> list[Link | None]:
    """Each item's strongest true link to what the user liked or mentioned (or None)."""
    ids = seed_order(state.liked, state.mentioned, state.rejected)[:MAX_LINK_SEEDS]
    found = {it.item_id: it for it in store.get(ids)} if ids else {}
    seeds = [found[i] for i in ids if i in found]
    return [find_link(item, seeds, collab) for item in items]


def write_reasons(
    settings: Any,
    llm: Any,
    links: list[Link | None],
    user_words: str,
    items: Sequence[Item],
    recs: Sequence[Recommendation],
    counters: dict[str, int],
    clock: StageClock,
) -> None:
    """Fill `recs[i].reason` for `items[i]`: card reasons when `settings.reasons` is on (no
    model time: the reply carries the conversation), else the facts-and-link template."""
    directory = settings.prompts.dir
    out: Sequence[Any]
    if settings.reasons:
        out = card_reasons(items, user_words, links, directory=directory)
    else:
        out = template_reasons(items, user_words, directory=directory, links=links)
    for rec, reason in zip(recs, out, strict=True):
        rec.reason = reason.text
    counters["reason_fallback"] = sum(r.fallback for r in out)
    counters["reason_link"] = sum(r.link is not None for r in out)
    clock.lap("reasons")
