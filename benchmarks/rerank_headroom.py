"""How much could a reranker of the served candidates gain from features it can read? (DEV only)

    RECOCHAT_CONFIG=configs/redial.toml python benchmarks/rerank_headroom.py --json runs/headroom.json

The LLM reranker reorders the retriever's top `--window` candidates. This asks what a
*learned* reranker over that window reaches when it sees what the pointwise prompt shows,
as numbers instead of text: every retrieval signal's RRF score and whether it fired, the fused
score and rank, the release year (recent / mid-2010s / pre-2000 / unknown), and how many of the
candidate's genres the conversation names. A logistic regression (scikit-learn) is trained on
dev turns and scored on held-out dev dialogues, 5 folds split by dialogue with a fixed seed.
Rows: the retrieval order, the learned order, and the oracle (every retrieved gold first).

The test split is never loaded (same data path as `benchmarks/tune_retrieval.py`). If the
learned row barely beats retrieval, a reranker needs knowledge the features lack (what the
films are like), which is the LLM's job and the part a 135M model is weakest at.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from evaluation import metrics
from evaluation.dev_split import (
    configured_weights,
    data_ready,
    dev_options,
    rank_dev_turns,
    setup,
)
from recochat.env import set_env_defaults
from retrieval.candidates import SIGNALS, FusionWeights, fuse
from retrieval.types import Candidate

FOLDS = 5


def features(conversation: str, rank: int, cand: Candidate) -> list[float]:
    """What the score prompt shows about one candidate, as numbers."""
    year = cand.item.metadata.get("year") or 0
    genres = [str(g).lower() for g in cand.item.metadata.get("genres") or []]
    named = sum(1 for g in genres if g and g in conversation)
    row = [math.log1p(rank), cand.score * 100]
    for name in SIGNALS:
        value = cand.signals.get(name, 0.0)
        row += [value * 100, float(value > 0)]
    row += [float(year >= 2017), float(year in (2015, 2016)), float(0 < year < 2000)]
    return [*row, float(year == 0), float(named), float(named > 0)]


def build(turns, weights: FusionWeights, depth: int, window: int):
    """Per-candidate features, labels and turn index over each turn's top `window`, and
    each turn's candidate ids in retrieval order."""
    rows, labels, owner, ids = [], [], [], {}
    for index, turn in enumerate(turns):
        cands = fuse(turn.rankings, weights, depth=depth, avoid_terms=turn.avoid)[:window]
        ids[index] = [c.item.item_id for c in cands]
        context = turn.eval_turn.turn.context
        conversation = " ".join(str(u) for u in context).lower()
        gold = set(turn.eval_turn.gold_for("novel"))
        for rank, cand in enumerate(cands):
            rows.append(features(conversation, rank, cand))
            labels.append(int(cand.item.item_id in gold))
            owner.append(index)
    return np.array(rows), np.array(labels), np.array(owner), ids


def scores_by_turn(turns, owner, ids_by_turn, score, chosen):
    """Recall@1/10 and NDCG@10 (novel) of ordering each chosen turn's window by `score`."""
    ranks, golds = [], []
    for index in chosen:
        mask = owner == index
        order = np.argsort(-score[mask], kind="stable")
        ranks.append([ids_by_turn[index][i] for i in order])
        golds.append(turns[index].eval_turn.gold_for("novel"))
    return {
        "R@1": metrics.recall_at_k(ranks, golds, 1),
        "R@10": metrics.recall_at_k(ranks, golds, 10),
        "NDCG@10": metrics.mean_per_turn(metrics.ndcg_at_k, ranks, golds, 10),
    }


def main() -> int:
    set_env_defaults()  # before anything loads torch or Chroma
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, nargs="+", default=[20, 50])
    opts = dev_options(ap, "also write the rows here")
    if not data_ready(opts.data_dir):
        return 2
    from sklearn.linear_model import LogisticRegression

    config = configured_weights()
    depth = int(config.pop("k_retrieve"))
    weights = FusionWeights(**config)
    turns = rank_dev_turns(setup(opts.data_dir, opts.limit or None, opts.seed))
    dialogues = sorted({t.eval_turn.turn.dialog_id for t in turns})
    np.random.default_rng(opts.seed).shuffle(dialogues)
    fold_of = {d: i % FOLDS for i, d in enumerate(dialogues)}
    rows = []
    for window in opts.window:
        x, y, owner, ids = build(turns, weights, depth, window)
        learned = np.zeros(len(y))
        for fold in range(FOLDS):
            held = np.array([fold_of[turns[i].eval_turn.turn.dialog_id] == fold for i in owner])
            model = LogisticRegression(max_iter=2000).fit(x[~held], y[~held])
            learned[held] = model.decision_function(x[held])
        everyone = range(len(turns))
        for name, score in (
            ("retrieval order", -x[:, 0]),
            ("learned (logistic regression)", learned),
            ("oracle", y - x[:, 0] * 1e-3),
        ):
            row = {"window": window, "system": name}
            row.update(scores_by_turn(turns, owner, ids, score, everyone))
            rows.append(row)
    n_gold = sum(len(t.eval_turn.gold_for("novel")) for t in turns)
    print(f"dev: {len(turns)} turns, {n_gold} novel gold items, {FOLDS}-fold by dialogue\n")
    print("| window | system | novel R@1 | novel R@10 | novel NDCG@10 |")
    print("|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['window']} | {r['system']} | {r['R@1']:.3f} | {r['R@10']:.3f} | {r['NDCG@10']:.3f} |"
        )
    if opts.json:
        opts.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
