"""What the runner replays turns through: one `SystemOutput` per turn and system.

A system ranks catalog ids for a dialogue context. `excludes_mentioned` says whether the
system itself honours `exclude_mentioned` (the product does); for the others the runner asks
once and the novel protocol filters the ranking.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SystemOutput:
    ranked: list[str]  # catalog item ids, best first
    latency_ms: float
    n_recommended: int = 0  # titles the system recommended (for out_of_catalog_rate)
    out_of_catalog: int = 0  # of those, titles that are not in the catalog
    reasons: list[tuple[str, str]] = field(default_factory=list)  # (item_id, reason)
    timings_ms: dict[str, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    raw_text: str = ""  # the LLM's output, for systems that generate text


class System(Protocol):
    name: str
    excludes_mentioned: bool

    def rank_many(
        self, contexts: Sequence[Sequence[str]], *, exclude_mentioned: bool
    ) -> list[SystemOutput]: ...


class RecommenderSystem:
    """The product (`full`) or its retrieval stage alone (`retrieval`) via `rank_context`."""

    excludes_mentioned = True

    def __init__(self, name: str, recommender: Any, *, use_llm: bool, k: int) -> None:
        self.name = name
        self.rec = recommender
        self.use_llm = use_llm
        self.k = k

    def rank_many(
        self, contexts: Sequence[Sequence[str]], *, exclude_mentioned: bool
    ) -> list[SystemOutput]:
        outs = []
        for context in contexts:
            t0 = time.perf_counter()
            result = self.rec.rank_context(
                list(context),
                k=self.k,
                use_llm=self.use_llm,
                # Reasons do not change the ranking: generate them on the scored (novel) pass only.
                reasons=self.use_llm and exclude_mentioned and self.rec.settings.reasons,
                exclude_mentioned=exclude_mentioned,
            )
            wall = (time.perf_counter() - t0) * 1000
            recs = result.recommendations
            outs.append(
                SystemOutput(
                    ranked=[r.item_id for r in recs],
                    latency_ms=wall,
                    n_recommended=len(recs),
                    reasons=[(r.item_id, r.reason) for r in recs if r.reason],
                    timings_ms=dict(result.timings_ms),
                    counters=dict(result.counters),
                )
            )
        return outs
