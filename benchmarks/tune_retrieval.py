"""Tune the candidate fusion weights and k_retrieve on the ReDial DEV split (never test).

    RECOCHAT_HOME=/tmp/tune/home python benchmarks/tune_retrieval.py            # 414 dev turns
    RECOCHAT_HOME=/tmp/tune/home python benchmarks/tune_retrieval.py --limit 200 --json out.json

Same data, catalog index and protocol as `recochat eval --dataset redial --split dev
--systems retrieval`: collaborative signals come from the train split of `valid_data_processed.jsonl`
(as `--train-split`), metrics are the novel protocol on the dev split. Test turns are dropped
right after loading and never looked at. The catalog collection is named by
`evaluation.cli.catalog_key` (setup: `evaluation.dev_split`), so a home where the eval already indexed ReDial is reused.

Each dev turn is replayed into a `DialogueState` once and every signal is ranked once
(`retrieval.candidates.rank_signals`, at the largest k_retrieve); each config is then only a
`fuse` of those rankings, exactly what `generate_candidates` does (no MMR: diversity 0).

Search: one pass of coordinate ascent from the code defaults (FusionWeights(), k_retrieve 100)
over popularity, cooc, liked, dense, then k_retrieve; a value replaces the current one only
when it raises R@10 + R@50. Dense is kept >= 0.25: it is the only signal that reads free-text
requests ("a funny heist movie"), which a title-heavy log like ReDial under-rewards.
The first row re-creates the previous query (item-similarity/co-occurrence seeded by liked
titles only), to show what passing every mentioned title as a seed does. The last row scores the weights
the current settings hold (`RECOCHAT_CONFIG`), so a config file's claim can be checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from evaluation import metrics
from evaluation.dev_split import (
    RankedTurn,
    configured_weights,
    data_ready,
    dev_options,
    rank_dev_turns,
    setup,
)
from evaluation.runner import K_EVAL
from recochat.env import set_env_defaults
from retrieval.candidates import FusionWeights, fuse

GRID: list[tuple[str, tuple[float, ...]]] = [
    ("popularity", (0.3, 0.6, 1.0, 1.5, 2.0)),
    ("cooc", (0.5, 1.0, 2.0, 3.0)),
    ("liked", (0.5, 1.0, 1.5, 2.0)),
    ("dense", (0.25, 0.5, 1.0)),
    ("credits", (0.0, 0.5, 1.0, 2.0)),
    ("k_retrieve", (50, 100, 200, 400)),  # 400: evaluation.dev_split.DEPTH ranks this deep
]
START: dict[str, float] = {**dataclasses.asdict(FusionWeights()), "k_retrieve": 100}


def evaluate(turns: list[RankedTurn], config: dict[str, float], *, previous: bool = False) -> dict:
    weights = FusionWeights(**{k: v for k, v in config.items() if k != "k_retrieve"})
    depth = int(config["k_retrieve"])
    golds, ranks = [], []
    for t in turns:
        rankings = t.previous if previous else t.rankings
        cands = fuse(rankings, weights, depth=max(depth, K_EVAL), avoid_terms=t.avoid)[:K_EVAL]
        ranks.append(t.eval_turn.ranking_for("novel", [c.item.item_id for c in cands], K_EVAL))
        golds.append(t.eval_turn.gold_for("novel"))
    return {
        "R@1": metrics.recall_at_k(ranks, golds, 1),
        "R@10": metrics.recall_at_k(ranks, golds, 10),
        "R@50": metrics.recall_at_k(ranks, golds, 50),
        "NDCG@10": metrics.mean_per_turn(metrics.ndcg_at_k, ranks, golds, 10),
    }


def objective(scores: dict) -> float:
    return scores["R@10"] + scores["R@50"]


def search(turns: list[RankedTurn]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    rows: list[dict[str, Any]] = [
        {"step": "previous query", **START, **evaluate(turns, START, previous=True)},
        {"step": "defaults", **START, **evaluate(turns, START)},
    ]
    best, best_scores = dict(START), evaluate(turns, START)
    seen = {tuple(sorted(best.items()))}
    for name, values in GRID:
        for value in values:
            config = {**best, name: value}
            key = tuple(sorted(config.items()))
            if key in seen:
                continue
            seen.add(key)
            scores = evaluate(turns, config)
            rows.append({"step": f"{name}={value:g}", **config, **scores})
            if objective(scores) > objective(best_scores) + 1e-12:
                best, best_scores = config, scores
    rows.append({"step": "chosen", **best, **best_scores})
    return rows, best


def table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "dense",
        "liked",
        "cooc",
        "popularity",
        "credits",
        "k_retrieve",
        "R@1",
        "R@10",
        "R@50",
        "NDCG@10",
    ]
    lines = ["| step | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for r in rows:
        cells = [f"{r[c]:g}" if c in START else f"{r[c]:.3f}" for c in cols]
        lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    set_env_defaults()  # before anything loads torch or Chroma
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    opts = dev_options(ap, "also write the rows and the chosen config here")
    if not data_ready(opts.data_dir):
        return 2
    turns = rank_dev_turns(setup(opts.data_dir, opts.limit or None, opts.seed))
    n_gold = sum(len(t.eval_turn.novel_gold) for t in turns)
    print(f"dev: {len(turns)} turns, {n_gold} novel gold items (novel protocol, k_eval {K_EVAL})")
    rows, best = search(turns)
    configured = configured_weights()
    rows.append(
        {"step": "configured (RECOCHAT_CONFIG)", **configured, **evaluate(turns, configured)}
    )
    print(table(rows))
    print("\n[retrieval]")
    for name in ("dense", "liked", "cooc", "popularity", "credits"):
        print(f"{name}_weight = {best[name]:g}")
    print(f"k_retrieve = {int(best['k_retrieve'])}")
    if opts.json:
        opts.json.write_text(json.dumps({"rows": rows, "chosen": best}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
