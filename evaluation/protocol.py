"""Evaluation protocols over replayed turns: which gold items count and what may be ranked.

- raw: every gold item of the turn counts; the ranking is scored as returned.
- novel: gold items already mentioned before the turn (in the file's `mentioned`/`entity` list,
  or written verbatim in the context) are dropped, and mentioned items are removed from the
  ranking before scoring. Repeating what the seeker just said is not a recommendation.

Gold titles that are not in the catalog stay in the gold set as unmatchable placeholders, so
they count as misses instead of silently raising recall.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dialogues.schema import RecTurn
from retrieval.titles import TitleIndex
from retrieval.types import Item

PROTOCOLS = ("novel", "raw")
MIN_VERBATIM_CHARS = 4  # shorter titles ("Up", "It") match ordinary words in the context
UNMAPPED = "<not-in-catalog>"


@dataclass(frozen=True)
class EvalTurn:
    """A recommender turn with its gold and mentioned items resolved to catalog ids."""

    turn: RecTurn
    gold: tuple[str, ...]  # raw gold ids, deduplicated; unmapped titles as placeholders
    mentioned: frozenset[str]  # catalog ids mentioned before the turn
    n_unmapped: int

    @property
    def novel_gold(self) -> tuple[str, ...]:
        return tuple(g for g in self.gold if g not in self.mentioned)

    def gold_for(self, protocol: str) -> tuple[str, ...]:
        return self.novel_gold if protocol == "novel" else self.gold

    def reason_support(self, records: Mapping[str, Item]) -> str:
        """What a served reason may draw on besides its own item's record: the seeker's words
        and the records of the items the dialogue mentioned (a reason may name its link to
        one, e.g. "directed by Michael Mann, as was Heat")."""
        seeds = [records[i].facts_text(max_list=50) for i in sorted(self.mentioned) if i in records]
        return "\n".join([user_words(self.turn.context), *seeds])

    def ranking_for(self, protocol: str, ranked: Sequence[str], k: int) -> list[str]:
        """The ranking as scored under `protocol`, cut to k."""
        if protocol == "novel":
            return [i for i in ranked if i not in self.mentioned][:k]
        return list(ranked[:k])


def _verbatim(title: str, text: str) -> bool:
    if len(title) < MIN_VERBATIM_CHARS:
        return False
    return re.search(rf"(?<!\w){re.escape(title)}(?!\w)", text) is not None


def resolve_turn(turn: RecTurn, titles: TitleIndex) -> EvalTurn:
    ids = turn.gold_ids or (None,) * len(turn.gold)
    gold: list[str] = []
    mentioned = {i for i in (titles.lookup(m) for m in turn.mentioned) if i is not None}
    context = "\n".join(turn.context)
    n_unmapped = 0
    for item_id, title in zip(ids, turn.gold, strict=True):
        resolved = titles.lookup_id_or_title(item_id, title)
        if resolved is None:
            n_unmapped += 1
            resolved = f"{UNMAPPED}:{title}"
        elif _verbatim(title, context):
            mentioned.add(resolved)
        if resolved not in gold:
            gold.append(resolved)
    return EvalTurn(turn, tuple(gold), frozenset(mentioned), n_unmapped)


def sample_by_dialogue(turns: Sequence[RecTurn], limit: int | None, seed: int) -> list[RecTurn]:
    """`limit` turns taken from whole dialogues in a seeded random order (file order kept)."""
    if limit is None or limit >= len(turns):
        return list(turns)
    ids = sorted({t.dialog_id for t in turns})
    random.Random(seed).shuffle(ids)
    by_dialog: dict[str, list[int]] = {}
    for i, t in enumerate(turns):
        by_dialog.setdefault(t.dialog_id, []).append(i)
    chosen: list[int] = []
    for dialog_id in ids:
        chosen.extend(by_dialog[dialog_id])
        if len(chosen) >= limit:
            break
    return [turns[i] for i in sorted(chosen[:limit])]


def user_words(context: Sequence[str]) -> str:
    """The seeker's utterances: the last context line is the seeker's, roles alternate back."""
    n = len(context)
    return "\n".join(u for i, u in enumerate(context) if (n - 1 - i) % 2 == 0)
