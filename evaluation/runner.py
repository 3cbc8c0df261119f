"""Replay recommender turns through systems and score them under both protocols."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from evaluation import metrics
from evaluation.protocol import PROTOCOLS, EvalTurn
from evaluation.system_adapters import System, SystemOutput

log = logging.getLogger(__name__)

K_EVAL = 50  # ranking depth asked from every system (Recall@50 is the deepest metric)
LIST_K = 10  # a turn's "recommended list" for coverage, long tail and diversity
RECALL_KS = (1, 10, 50)
CHUNK = 8  # turns handed to a system at once (lets the naive LLM batch its generation)

# (reason, item_id, context) -> does the reason state an unsupported fact?
ReasonCheck = Callable[[str, str, EvalTurn], bool]  # (reason, item id, turn) -> unsupported


@dataclass
class TurnRecord:
    """What one system did on one turn; `ranked` per protocol, as returned (uncut)."""

    ranked: dict[str, list[str]]
    out: SystemOutput
    unsupported_reasons: int = 0


@dataclass
class SystemRun:
    name: str
    records: list[TurnRecord] = field(default_factory=list)


def replay(
    systems: Sequence[System],
    turns: Sequence[EvalTurn],
    *,
    check_reason: ReasonCheck | None = None,
    progress: bool = False,
) -> list[SystemRun]:
    """Ask every system for a ranking at every turn (novel pass, plus raw pass if it differs)."""
    runs = []
    for system in systems:
        run = SystemRun(system.name)
        bar = tqdm(total=len(turns), desc=f"eval {system.name}", disable=not progress)
        for start in range(0, len(turns), CHUNK):
            chunk = turns[start : start + CHUNK]
            contexts = [t.turn.context for t in chunk]
            novel = system.rank_many(contexts, exclude_mentioned=True)
            if system.excludes_mentioned:
                raw = system.rank_many(contexts, exclude_mentioned=False)
            else:
                raw = novel
            for t, n_out, r_out in zip(chunk, novel, raw, strict=True):
                bad = 0
                if check_reason is not None:
                    bad = sum(check_reason(text, i, t) for i, text in n_out.reasons)
                run.records.append(
                    TurnRecord({"novel": n_out.ranked, "raw": r_out.ranked}, n_out, bad)
                )
            bar.update(len(chunk))
        bar.close()
        runs.append(run)
    return runs


def _ranking_metrics(run: SystemRun, turns: Sequence[EvalTurn], protocol: str) -> dict[str, float]:
    golds = [t.gold_for(protocol) for t in turns]
    ranks = [
        t.ranking_for(protocol, rec.ranked[protocol], K_EVAL)
        for t, rec in zip(turns, run.records, strict=True)
    ]
    out = {f"recall@{k}": metrics.recall_at_k(ranks, golds, k) for k in RECALL_KS}
    out["ndcg@10"] = metrics.mean_per_turn(metrics.ndcg_at_k, ranks, golds, 10)
    out["mrr@10"] = metrics.mean_per_turn(metrics.mrr_at_k, ranks, golds, 10)
    return out


def score(
    run: SystemRun,
    turns: Sequence[EvalTurn],
    *,
    catalog_size: int,
    head: frozenset[str] | None,
    vectors: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The report entry of one system (see `evaluation.report` for the shape)."""
    result: dict[str, Any] = {p: _ranking_metrics(run, turns, p) for p in PROTOCOLS}
    outs = [r.out for r in run.records]
    n_rec = sum(o.n_recommended for o in outs)
    result["out_of_catalog_rate"] = sum(o.out_of_catalog for o in outs) / n_rec if n_rec else 0.0
    n_reasons = sum(len(o.reasons) for o in outs)
    bad = sum(r.unsupported_reasons for r in run.records)
    result["reason_unsupported_rate"] = bad / n_reasons if n_reasons else None
    # The list a user would see: the novel (product) ranking's top LIST_K.
    lists = [
        t.ranking_for("novel", rec.ranked["novel"], LIST_K)
        for t, rec in zip(turns, run.records, strict=True)
    ]
    result["coverage"] = metrics.coverage(lists, catalog_size)
    result["long_tail_share"] = metrics.long_tail_share(lists, head) if head else None
    if vectors:
        arrays = [np.array([vectors[i] for i in items if i in vectors]) for items in lists]
        result["intra_list_diversity"] = metrics.intra_list_diversity(arrays)
    else:
        result["intra_list_diversity"] = None
    result["latency_ms"] = metrics.percentiles([o.latency_ms for o in outs])
    result["n_turns"] = len(turns)
    result["n_gold"] = sum(len(t.gold) for t in turns)
    return result


def listed_ids(runs: Sequence[SystemRun], turns: Sequence[EvalTurn]) -> set[str]:
    """Every item id that appears in some system's scored top-LIST_K list."""
    ids: set[str] = set()
    for run in runs:
        for t, rec in zip(turns, run.records, strict=True):
            ids.update(t.ranking_for("novel", rec.ranked["novel"], LIST_K))
    return ids


def counters(run: SystemRun) -> dict[str, int]:
    total: dict[str, int] = {}
    for rec in run.records:
        for key, value in rec.out.counters.items():
            total[key] = total.get(key, 0) + int(value)
    return total


def stage_medians(run: SystemRun) -> dict[str, float]:
    """Median milliseconds of each timed stage the system reports (retrieval, rerank, ...)."""
    stages: dict[str, list[float]] = {}
    for rec in run.records:
        for key, value in rec.out.timings_ms.items():
            stages.setdefault(key, []).append(float(value))
    return {k: float(np.median(v)) for k, v in stages.items()}
