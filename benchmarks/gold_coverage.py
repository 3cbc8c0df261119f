"""Where the held-out answers are: can any candidate signal reach the dev gold items? (DEV only)

    RECOCHAT_CONFIG=configs/redial.toml python benchmarks/gold_coverage.py --json runs/gold_coverage.json

For every novel gold item of the ReDial dev split (same data path and signals as
`benchmarks/tune_retrieval.py`; the test split is never loaded), this reports:
- whether it was ever a recommendation in the train split (popularity and co-occurrence can
  only know items the logs recommended);
- the share of gold items within each signal's top 20 / 50 / 400 (the served rerank window,
  R@50 and the deepest ranking tuned), and within the union of all signals' top N;
- the fused retrieval's recall at 20 and 50, with the configured weights.
A gold item outside every signal's top 400 is out of reach of any fusion weights or reranker.
"""

from __future__ import annotations

import argparse
import json

from evaluation.dev_split import (
    configured_weights,
    data_ready,
    dev_options,
    rank_dev_turns,
    setup,
)
from recochat.env import set_env_defaults
from retrieval.candidates import SIGNALS, FusionWeights, fuse

DEPTHS = (20, 50, 400)


def main() -> int:
    set_env_defaults()  # before anything loads torch or Chroma
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    opts = dev_options(ap, "also write the figures here")
    if not data_ready(opts.data_dir):
        return 2
    dev = setup(opts.data_dir, opts.limit or None, opts.seed)
    turns = rank_dev_turns(dev)
    config = configured_weights()
    weights = FusionWeights(**{k: v for k, v in config.items() if k != "k_retrieve"})
    depth = int(config["k_retrieve"])

    total = logged = 0
    within = {name: dict.fromkeys(DEPTHS, 0) for name in (*SIGNALS, "any signal")}
    fused = dict.fromkeys((20, 50), 0)
    for turn in turns:
        ids = {name: [it.item_id for it in items] for name, items in turn.rankings.ranked.items()}
        order = [c.item.item_id for c in fuse(turn.rankings, weights, depth=depth)]
        for gold in turn.eval_turn.gold_for("novel"):
            total += 1
            logged += dev.collab.popularity.get(gold, 0) > 0
            for n in DEPTHS:
                hits = {name for name, ranked in ids.items() if gold in ranked[:n]}
                for name in hits:
                    within[name][n] += 1
                within["any signal"][n] += bool(hits)
            for n in fused:
                fused[n] += gold in order[:n]

    def share(count: int) -> float:
        return round(count / total, 3) if total else 0.0

    figures = {
        "turns": len(turns),
        "novel_gold": total,
        "recommended_in_train": share(logged),
        "within_top": {name: {n: share(c) for n, c in row.items()} for name, row in within.items()},
        "fused_recall": {n: share(c) for n, c in fused.items()},
        "weights": config,
    }
    print(f"dev: {len(turns)} turns, {total} novel gold items")
    print(f"recommended at least once in the train split: {figures['recommended_in_train']:.3f}")
    print("| signal | " + " | ".join(f"top {n}" for n in DEPTHS) + " |")
    print("|---|" + "---:|" * len(DEPTHS))
    for name, row in figures["within_top"].items():
        print(f"| {name} | " + " | ".join(f"{row[n]:.3f}" for n in DEPTHS) + " |")
    recall = figures["fused_recall"]
    print(f"fused retrieval (configured weights): R@20 {recall[20]:.3f}, R@50 {recall[50]:.3f}")
    if opts.json:
        opts.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
