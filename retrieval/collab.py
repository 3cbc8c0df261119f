"""Collaborative signals from dialogue logs: item popularity and item co-occurrence.

    turns = [t for t in load_rec_turns(path) if split_of(t.dialog_id) == "train"]
    signals = CollabSignals.from_turns(turns, {it.title: it.item_id for it in items})
    signals.related(["m0042"], k=10)      # items recommended alongside m0042
    signals.save(Path(".recochat/collab.json"))

Build it from the train split only: signals learned from dev/test turns leak their answers.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from retrieval.entity_cooc import entity_related
from retrieval.errors import RetrievalError
from retrieval.types import Item


class TurnLike(Protocol):
    """What `from_turns` reads of a `dialogues.schema.RecTurn`."""

    @property
    def mentioned(self) -> Sequence[str]: ...

    @property
    def gold(self) -> Sequence[str]: ...

    # Optional: `dialog_id` groups turns into dialogues (read with getattr).


def _ranked(scores: Mapping[str, float], k: int, exclude: Iterable[str]) -> list[tuple[str, float]]:
    skip = set(exclude)
    ranked = sorted((item for item in scores.items() if item[0] not in skip), key=_order)
    return ranked[: max(k, 0)]


def _order(pair: tuple[str, float]) -> tuple[float, str]:
    return (-pair[1], pair[0])


@dataclass
class CollabSignals:
    """`popularity[item]` and symmetric `cooc[a][b]` counts (floats so that merges can weight);
    `entities[key][item]`: items recommended after an entity was named (`entity_cooc.py`)."""

    popularity: dict[str, float] = field(default_factory=dict)
    cooc: dict[str, dict[str, float]] = field(default_factory=dict)
    entities: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_turns(cls, turns: Iterable[TurnLike], title_to_id: Mapping[str, str]) -> CollabSignals:
        """Count gold recommendations, each (mentioned item, gold item) pair of a turn, and
        each pair of items recommended in the same dialogue (any turns, grouped by `dialog_id`).

        Co-recommended pairs raised dev novel R@10 0.145 -> 0.155 and NDCG@10 0.076 -> 0.082
        on ReDial (retrieval only). Titles not in `title_to_id` (unknown items, or entities
        such as "horror") are ignored; a turn's `gold_ids` (when it has them) take precedence
        over mapping gold titles. Turns without a `dialog_id` are each their own dialogue.
        """
        popularity: defaultdict[str, float] = defaultdict(float)
        cooc: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
        recommended: defaultdict[object, list[str]] = defaultdict(list)
        for index, turn in enumerate(turns):
            gold = _gold_ids(turn, title_to_id)
            mentioned = _ids(turn.mentioned, title_to_id)
            dialogue = recommended[getattr(turn, "dialog_id", None) or index]
            dialogue.extend(rec for rec in gold if rec not in dialogue)
            for rec in gold:
                popularity[rec] += 1.0
                for seen in mentioned:
                    if seen != rec:
                        cooc[seen][rec] += 1.0
                        cooc[rec][seen] += 1.0
        for items in recommended.values():
            for a in items:
                for b in items:
                    if a != b:
                        cooc[a][b] += 1.0
        return cls(dict(popularity), {a: dict(row) for a, row in cooc.items()})

    @classmethod
    def from_catalog(cls, items: Iterable[Item], field: str = "popularity") -> CollabSignals:
        """Cold start: popularity from a numeric catalog field, no co-occurrence."""
        popularity = {}
        for item in items:
            value = item.metadata.get(field)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and math.isfinite(value):
                popularity[item.item_id] = float(value)
        return cls(popularity=popularity)

    def with_entities(self, counts: Mapping[str, Mapping[str, float]]) -> CollabSignals:
        """A new CollabSignals with the entity co-occurrence `counts` added."""
        return self.merge(CollabSignals(entities={k: dict(r) for k, r in counts.items()}))

    def merge(self, other: CollabSignals) -> CollabSignals:
        """A new CollabSignals with both sets of counts summed."""
        popularity = dict(self.popularity)
        for item_id, value in other.popularity.items():
            popularity[item_id] = popularity.get(item_id, 0.0) + value
        return CollabSignals(
            popularity, _merged(self.cooc, other.cooc), _merged(self.entities, other.entities)
        )

    def popular(self, k: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The k most popular items (ties by item id)."""
        return _ranked(self.popularity, k, exclude)

    def related(
        self, seed_ids: Iterable[str], k: int, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """Items co-occurring with the seeds: sum over seeds of count / the seed's row total."""
        seeds = list(dict.fromkeys(seed_ids))
        scores: defaultdict[str, float] = defaultdict(float)
        for seed in seeds:
            row = self.cooc.get(seed, {})
            total = sum(row.values())
            if total <= 0:
                continue
            for other, count in row.items():
                scores[other] += count / total
        return _ranked(scores, k, [*exclude, *seeds])

    def entity_related(
        self, keys: Iterable[str], k: int, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """Items recommended after the entities `keys` ("person:…", "genre:…", "item:<id>")."""
        return _ranked(entity_related(self.entities, keys), k, exclude)

    def save(self, path: Path) -> None:
        """Write as JSON (atomically: a crash never leaves a half-written file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        payload = {"popularity": self.popularity, "cooc": self.cooc, "entities": self.entities}
        tmp.write_text(json.dumps(payload, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> CollabSignals:
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            popularity = {str(k): float(v) for k, v in payload["popularity"].items()}
            cooc = {
                str(a): {str(b): float(v) for b, v in row.items()}
                for a, row in payload["cooc"].items()
            }
            entities = {  # absent in files written before the entity signal
                str(a): {str(b): float(v) for b, v in row.items()}
                for a, row in payload.get("entities", {}).items()
            }
        except FileNotFoundError as e:
            raise RetrievalError(
                f"collab signals file {path} not found: build it from dialogues or leave it unset"
            ) from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise RetrievalError(
                f"collab signals file {path} is unreadable ({e}): delete it and rebuild it"
            ) from e
        return cls(popularity, cooc, entities)


def _merged(
    a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]]
) -> dict[str, dict[str, float]]:
    out = {key: dict(row) for key, row in a.items()}
    for key, row in b.items():
        target = out.setdefault(key, {})
        for other, value in row.items():
            target[other] = target.get(other, 0.0) + value
    return out


def _ids(titles: Iterable[str], title_to_id: Mapping[str, str]) -> list[str]:
    return list(dict.fromkeys(title_to_id[t] for t in titles if t in title_to_id))


def _gold_ids(turn: TurnLike, title_to_id: Mapping[str, str]) -> list[str]:
    known: Sequence[str | None] = getattr(turn, "gold_ids", ()) or ()
    ids = []
    for index, title in enumerate(turn.gold):
        item_id = known[index] if index < len(known) else None
        item_id = item_id or title_to_id.get(title)
        if item_id and item_id not in ids:
            ids.append(item_id)
    return ids
