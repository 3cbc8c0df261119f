"""Training examples that are exactly the serving task (no train/serve skew).

A rerank example is one recommender turn replayed through the product: the recommender's own
`prepare_context` gives the conversation text and the candidates retrieval returns at serving
time, and its `rerank_prompt` renders them with the same prompt files and chat template. The
completion is `rerank_target(gold positions)`: its first token is the letter the logits
reranker reads. Gold items retrieval missed are swapped in for the last candidate at a seeded
random position; the other candidates are the hard negatives. Gold items the serving path
excludes (already mentioned, shown or rejected) are never targets.

A score example (pointwise mode) asks one yes/no question per retrieved candidate with the
served `score_prompt` (which shows the candidate's retrieval evidence): "yes" for each usable
gold item retrieval found, "no" for items the user turned down and for `negatives` candidates
drawn (seeded) from the same top k. Gold items retrieval missed give no example: serving never
shows the reranker an item without retrieval evidence.

A reason example (optional, a minority) is the served reason prompt followed by a sentence
built only from the item's facts, which the served reason checker accepts.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from chatbot.ranking.rerank import LABELS, rerank_target, score_target
from dialogues.schema import RecTurn
from retrieval.titles import TitleIndex
from retrieval.types import Candidate, Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    prompt: str  # chat-formatted, ends where the model starts answering
    completion: str
    dialog_id: str
    turn_id: int
    kind: Literal["rerank", "score", "reason", "reply"] = "rerank"
    n_candidates: int = 0  # lettered candidates in a rerank prompt


@dataclass
class ExampleStats:
    turns: int = 0
    examples: int = 0
    reasons: int = 0
    no_gold_in_catalog: int = 0  # gold titles not found in the catalog
    gold_excluded: int = 0  # gold already mentioned/shown/rejected: never a served candidate
    gold_retrieved: int = 0  # gold items retrieval found on its own
    gold_inserted: int = 0  # gold items swapped in for a missed retrieval
    gold_not_retrieved: int = 0  # pointwise: gold outside the retrieved top k (no example)
    rejected_only: int = 0  # feedback turns where every item was rejected
    skipped: int = 0  # turns without a usable gold item

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Prepared(Protocol):
    conversation: str
    candidates: list[Candidate]


class Recommender(Protocol):
    """What examples need from `chatbot.turn.Recommender` (its serving path)."""

    def prepare_context(
        self, context: Sequence[str], *, exclude_mentioned: bool = True, k: int | None = None
    ) -> Any: ...

    def rerank_prompt(self, conversation: str, items: Sequence[Item]) -> str: ...

    def score_prompt(self, conversation: str, candidate: Candidate) -> str: ...


ReasonPrompt = Callable[[Item, str], str]


class Catalog:
    """Find the catalog item of a gold title: by id when known, else through THE title matcher
    (`retrieval.titles.TitleIndex`: exact, then normalized title)."""

    def __init__(self, items: Iterable[Item]):
        items = list(items)
        self.by_id: dict[str, Item] = {}
        for it in items:
            self.by_id.setdefault(it.item_id, it)
        self.titles = TitleIndex(items)

    def __len__(self) -> int:
        return len(self.by_id)

    def find(self, title: str, item_id: str | None = None) -> Item | None:
        if item_id and item_id in self.by_id:
            return self.by_id[item_id]
        found = self.titles.lookup(title)
        return self.by_id.get(found) if found is not None else None


def labelled_items(turn: RecTurn, catalog: Catalog) -> list[tuple[Item | None, bool | None]]:
    """(catalog item or None, accepted) for each item of the turn; accepted is None in logs
    without feedback."""
    ids = turn.gold_ids or (None,) * len(turn.gold)
    return [
        (catalog.find(title, item_id), accepted)
        for title, item_id, accepted in zip(turn.gold, ids, turn.accepted, strict=True)
    ]


def gold_items(turn: RecTurn, catalog: Catalog, stats: ExampleStats) -> list[Item]:
    """The turn's gold items in the catalog; feedback turns keep accepted items only."""
    out: list[Item] = []
    for item, accepted in labelled_items(turn, catalog):
        if accepted is False:
            continue
        if item is None:
            stats.no_gold_in_catalog += 1
        elif item not in out:
            out.append(item)
    if not out and turn.accepted and all(a is False for a in turn.accepted):
        stats.rejected_only += 1
    return out


def excluded_ids(prep: Any) -> set[str]:
    """Ids the serving path never shows for this context (rejected, shown, mentioned)."""
    state = getattr(prep, "state", None)
    if state is None:
        return set()
    return {*state.rejected, *state.shown, *state.mentioned}


def place_gold(
    candidates: Sequence[Item], golds: Sequence[Item], k: int, rng: random.Random
) -> tuple[list[Item], list[int], int]:
    """Candidates with every gold item present, their positions (gold order), and #inserted.

    Missing gold items replace the last non-gold candidate (or extend a short list up to `k`)
    and move to a random position, so position carries no hint.
    """
    items = list(candidates[:k])
    gold_ids = {g.item_id for g in golds}
    inserted = 0
    for gold in golds:
        if any(it.item_id == gold.item_id for it in items):
            continue
        if len(items) >= k:
            drop = max(i for i, it in enumerate(items) if it.item_id not in gold_ids)
            items.pop(drop)
        items.insert(rng.randrange(len(items) + 1), gold)
        inserted += 1
    where = {it.item_id: i for i, it in enumerate(items)}
    return items, [where[g.item_id] for g in golds], inserted


def usable_golds(
    turn: RecTurn, rec: Recommender, catalog: Catalog, stats: ExampleStats, *, k: int
) -> tuple[Any, list[Item]]:
    """The served preparation of `turn` and its gold items serving could show (at most k)."""
    golds = gold_items(turn, catalog, stats)
    if not golds:
        return None, []
    prep = rec.prepare_context(turn.context, exclude_mentioned=True, k=k)
    excluded = excluded_ids(prep) | {
        it.item_id for t in turn.mentioned if (it := catalog.by_title.get(t)) is not None
    }
    usable = [g for g in golds if g.item_id not in excluded]
    stats.gold_excluded += len(golds) - len(usable)
    return prep, usable[:k]


def rejected_items(turn: RecTurn, catalog: Catalog) -> list[Item]:
    """Catalog items the user turned down in this turn (feedback 👎)."""
    out: list[Item] = []
    for item, accepted in labelled_items(turn, catalog):
        if accepted is False and item is not None and item not in out:
            out.append(item)
    return out


def score_examples(
    turn: RecTurn,
    rec: Recommender,
    catalog: Catalog,
    stats: ExampleStats,
    *,
    k: int,
    seed: int,
    negatives: int,
) -> tuple[list[Example], Any, list[Item]]:
    """Pointwise yes/no examples for `turn`, the prep and golds, over the served top k only
    (a candidate's prompt shows its retrieval evidence, which only retrieved items have): "yes"
    for retrieved golds, "no" for retrieved items the user rejected (feedback 👎) and for
    `negatives` other retrieved candidates."""
    prep, usable = usable_golds(turn, rec, catalog, stats, k=k)
    rejected = rejected_items(turn, catalog)
    if not usable and not rejected:
        return [], prep, []
    if prep is None:
        prep = rec.prepare_context(turn.context, exclude_mentioned=True, k=k)
    served = {c.item.item_id: c for c in prep.candidates[:k]}
    found = [served[g.item_id] for g in usable if g.item_id in served]
    stats.gold_retrieved += len(found)
    stats.gold_not_retrieved += len(usable) - len(found)
    turned_down = [served[r.item_id] for r in rejected if r.item_id in served]
    labelled_ids = {g.item_id for g in usable} | {r.item_id for r in rejected}
    pool = [c for i, c in served.items() if i not in labelled_ids]
    rng = random.Random(f"{seed}:{turn.dialog_id}:{turn.turn_id}")
    chosen = rng.sample(pool, min(negatives, len(pool))) if found else []
    labelled = [(c, True) for c in found] + [(c, False) for c in [*turned_down, *chosen]]
    examples = [
        Example(
            prompt=rec.score_prompt(prep.conversation, candidate),
            completion=score_target(good),
            dialog_id=turn.dialog_id,
            turn_id=turn.turn_id,
            kind="score",
        )
        for candidate, good in labelled
    ]
    return examples, prep, usable


def rerank_example(
    turn: RecTurn,
    rec: Recommender,
    catalog: Catalog,
    stats: ExampleStats,
    *,
    k: int,
    seed: int,
) -> tuple[Example | None, Any, list[Item]]:
    """One rerank example for `turn` (None when it has no usable gold), the prep and golds."""
    prep, usable = usable_golds(turn, rec, catalog, stats, k=k)
    if not usable:
        return None, prep, []
    retrieved = [c.item for c in prep.candidates]
    rng = random.Random(f"{seed}:{turn.dialog_id}:{turn.turn_id}")
    items, positions, inserted = place_gold(retrieved, usable, k, rng)
    stats.gold_inserted += inserted
    stats.gold_retrieved += len(usable) - inserted
    if len(items) > len(LABELS):
        raise ValueError(f"{len(items)} candidates: the reranker labels at most {len(LABELS)}")
    example = Example(
        prompt=rec.rerank_prompt(prep.conversation, items),
        completion=rerank_target(positions),
        dialog_id=turn.dialog_id,
        turn_id=turn.turn_id,
        n_candidates=len(items),
    )
    return example, prep, usable


def fact_reason(item: Item, max_words: int = 16) -> str:
    """A short reason made only of the item's facts and plain function words.

    'A 1995 crime and thriller pick by Michael Mann, with Al Pacino and Robert De Niro.' or
    'A 1995 crime and thriller pick about heist, los angeles and cat and mouse.' Words come from the item record or
    `prompts/reason_words.txt`, which the served generation allows and the served checker
    accepts; short enough for the served reason token budget.
    """
    genres = " and ".join(item.genres[:2])
    year = str(item.year) if item.year else ""
    head = " ".join(x for x in (year, genres, "pick") if x)
    article = "An" if head[:1].lower() in "aeiou" or head.startswith("18") else "A"
    text = f"{article} {head}"
    where = _first_sentence(item.metadata.get("description"), max_words)
    if where:
        return f"{text} where {where}."
    for key, word in (("director", "by"), ("star", "with"), ("actor", "with"), ("tags", "about")):
        value = item.metadata.get(key)
        if isinstance(value, list) and value and not (word == "with" and "with" in text):
            text += f"{',' if word == 'with' else ''} {word} {_and(value[:3] if word == 'about' else value[:2])}"
    return text + "."


def _and(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _first_sentence(description: object, max_words: int) -> str:
    """The description's first sentence when it is short, article lower-cased; else ''."""
    if not isinstance(description, str):
        return ""
    sentence = re.split(r"(?<=[.!?])\s", description.strip(), maxsplit=1)[0].rstrip(".!?")
    words = sentence.split()
    if not words or len(words) > max_words:
        return ""
    if words[0] in ("A", "An", "The"):
        words[0] = words[0].lower()
    return " ".join(words)


def reason_example(
    turn: RecTurn, item: Item, user_words: str, reason_prompt: ReasonPrompt
) -> Example | None:
    from chatbot.reply.reasons import check_reason

    if not item.genres and not item.year:
        return None
    text = fact_reason(item)
    if check_reason(text, item, user_words, []).unsupported:
        return None
    return Example(
        prompt=reason_prompt(item, user_words),
        completion=text,
        dialog_id=turn.dialog_id,
        turn_id=turn.turn_id,
        kind="reason",
    )
