"""Reply fine-tuning examples: ReDial's real recommender responses under the served reply prompt.

A reply example is one recommender turn: the prompt is `chatbot.reply.reply_prompt.reply_prompt`
(the function serving renders `prompts/reply.txt` with) over the turn's context, the items the
turn recommended (`rec`) as its picks, the titles the seeker named as the user's titles and no
answer facts (ReDial turns carry none); `ask` comes from the same `should_ask` rule serving uses.
The completion is the recommender's actual response (`resp`).

Responses serving could never produce are skipped, and counted: ones naming a catalog title
that is neither a pick nor the user's (the reply writer may not), ones longer than the served
token budget, and turns whose picks are not all in the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chatbot.reply.reply_prompt import ReplyInput, logged_reply_input, reply_prompt
from chatbot.understanding.mentions import MentionFinder
from dialogues.schema import RecTurn
from finetune.examples import Catalog, Example

log = logging.getLogger(__name__)

MAX_RESPONSE_WORDS = 30  # ~40 tokens: the served reply budget (writer.MAX_NEW_TOKENS)


@dataclass
class ReplyExampleStats:
    turns: int = 0
    examples: int = 0
    picks_not_in_catalog: int = 0
    names_other_title: int = 0  # the response names a title that is neither a pick nor the user's
    too_long: int = 0
    empty: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def reply_input_of(turn: RecTurn, catalog: Catalog, index: MentionFinder) -> ReplyInput | None:
    """The served reply input of a logged turn, or None when a pick is not in the catalog."""
    picks = [catalog.find(title) for title in turn.gold]
    if any(p is None for p in picks):
        return None
    return logged_reply_input(turn.context, [p for p in picks if p is not None], index)


def usable_reply(
    turn: RecTurn, catalog: Catalog, index: MentionFinder, stats: ReplyExampleStats
) -> tuple[ReplyInput, str] | None:
    """The served reply input of `turn` and its logged response, or None (counted in `stats`)
    when serving could not have written that response."""
    inp = reply_input_of(turn, catalog, index)
    if inp is None:
        stats.picks_not_in_catalog += 1
        return None
    response = " ".join(turn.response.split())
    if not response:
        stats.empty += 1
        return None
    if len(response.split()) > MAX_RESPONSE_WORDS:
        stats.too_long += 1
        return None
    allowed = set(inp.allowed_titles)
    if any(m.title not in allowed for m in index.find(response)):
        stats.names_other_title += 1
        return None
    return inp, response


def reply_example(
    turn: RecTurn, catalog: Catalog, index: MentionFinder, formatter: Any, stats: ReplyExampleStats
) -> Example | None:
    """One example for `turn` (`formatter.chat_prompt` renders the chat template), or None."""
    usable = usable_reply(turn, catalog, index, stats)
    if usable is None:
        return None
    inp, response = usable
    return Example(
        prompt=reply_prompt(formatter, inp),
        completion=response,
        dialog_id=turn.dialog_id,
        turn_id=turn.turn_id,
        kind="reply",
    )


def build_reply_examples(
    turns: Sequence[RecTurn], catalog: Catalog, index: MentionFinder, formatter: Any
) -> tuple[list[Example], ReplyExampleStats]:
    stats = ReplyExampleStats(turns=len(turns))
    out = [
        ex
        for turn in turns
        if (ex := reply_example(turn, catalog, index, formatter, stats)) is not None
    ]
    stats.examples = len(out)
    return out, stats
