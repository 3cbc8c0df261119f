"""The reasons of a turn's shown cards: LLM-written and checked, or a template naming a true link.

A link is the item's strongest true connection (shared director/star, co-recommendation,
genres) to what the user liked or mentioned (`chatbot.reply.credit_links`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatbot.reply.credit_links import Link, find_link, seed_order
from chatbot.reply.reasons import Reason, generate_reasons, template_reasons
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
    """Fill `recs[i].reason` for `items[i]`: LLM-written and checked when `settings.reasons`
    is on, else (or when a check fails) a template naming the item's true link to the user."""
    directory = settings.prompts.dir
    out: list[Reason]
    if settings.reasons:
        out = generate_reasons(
            llm,
            items,
            user_words,
            max_new_tokens=settings.llm.max_reason_tokens,
            directory=directory,
            links=links,
        )
    else:
        out = template_reasons(items, user_words, directory=directory, links=links)
    for rec, reason in zip(recs, out, strict=True):
        rec.reason = reason.text
    counters["reason_fallback"] = sum(r.fallback for r in out)
    counters["reason_link"] = sum(r.link is not None for r in out)
    clock.lap("reasons")
