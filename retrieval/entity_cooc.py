"""Entity co-occurrence from dialogue logs: what was recommended after people, genres and titles.

    counts = learn_entity_cooc(train_turns, EntityLinker(items), title_to_id)
    signals = CollabSignals.from_turns(train_turns, title_to_id).with_entities(counts)
    signals.entity_related(["person:natalie portman", "item:m042"], k=10)

For each training turn, every entity named in its context (people and genres linked by
`EntityLinker` in the utterances; titles the turn mentions, keyed `item:<id>`) is counted once
against each gold item of the turn. Serving links the same entities in the live dialogue
(`chatbot.understanding`), so the keys learned here are the keys looked up there: the dataset's
own entity annotations are never needed. Learn from the train split only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from retrieval.entity_links import EntityLinker


class ContextTurn(Protocol):
    """What `learn_entity_cooc` reads of a `dialogues.schema.RecTurn`."""

    @property
    def context(self) -> Sequence[str]: ...

    @property
    def mentioned(self) -> Sequence[str]: ...

    @property
    def gold(self) -> Sequence[str]: ...


def item_key(item_id: str) -> str:
    return f"item:{item_id}"


def learn_entity_cooc(
    turns: Iterable[ContextTurn],
    linker: EntityLinker,
    title_to_id: Mapping[str, str],
    *,
    window: int = 0,
) -> dict[str, dict[str, float]]:
    """`counts[entity key][gold item id]`; `window` > 0 links only the last `window`
    utterances of each context (0: all of them)."""
    counts: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    for turn in turns:
        gold = [title_to_id[t] for t in dict.fromkeys(turn.gold) if t in title_to_id]
        if not gold:
            continue
        context = list(turn.context)[-window:] if window > 0 else list(turn.context)
        keys = {link.key for utterance in context for link in linker.find(utterance)}
        keys |= {item_key(title_to_id[t]) for t in turn.mentioned if t in title_to_id}
        for key in keys:
            for item_id in gold:
                if key != item_key(item_id):
                    counts[key][item_id] += 1.0
    return {key: dict(row) for key, row in counts.items()}


def entity_related(
    counts: Mapping[str, Mapping[str, float]], keys: Iterable[str]
) -> dict[str, float]:
    """Items recommended after the entities `keys`: sum over keys of count / the key's total
    (a key named before every recommendation says little about any one of them)."""
    scores: defaultdict[str, float] = defaultdict(float)
    for key in dict.fromkeys(keys):
        row = counts.get(key, {})
        total = sum(row.values())
        for item_id, count in row.items():
            scores[item_id] += count / total
    return dict(scores)
