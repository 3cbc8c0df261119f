"""Is one system's lead real? Paired comparison of two `recochat eval` runs on the same turns.

    python benchmarks/paired_compare.py runs/eval/ft-test-redial-ev3-pointwise-tuned:full \
        runs/eval/ft-test-redial-ev3-pointwise-base:retrieval \
        runs/eval/ft-test-redial-ev3-pointwise-base:full

Each argument is `REPORT_DIR:SYSTEM` (a `turns.jsonl` written by `recochat eval`); the first is
the candidate, the rest are baselines. Per turn, the novel protocol's top 10 is scored against
the novel gold (gold minus the items mentioned before the turn). Printed per baseline: novel
R@10 and NDCG@10 of both, how many turns each wins on hits@10, a two-sided sign test over the
turns that differ (scipy), and a 95% bootstrap interval of the R@10 difference that resamples
whole dialogues (turns of one dialogue are not independent), 10,000 draws, seed 0.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from evaluation import metrics

K = 10
DRAWS = 10_000


def load(spec: str) -> dict[tuple[str, int], dict]:
    """Turn records of one system, keyed by (dialog id, turn id)."""
    folder, _, system = spec.rpartition(":")
    path = Path(folder) / "turns.jsonl"
    if not folder or not path.is_file():
        raise SystemExit(f"error: {spec!r}: expected REPORT_DIR:SYSTEM with REPORT_DIR/turns.jsonl")
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["system"] == system:
            out[(row["dialog_id"], row["turn_id"])] = row
    if not out:
        raise SystemExit(f"error: no turns of system {system!r} in {path}")
    return out


def per_turn(row: dict) -> tuple[int, int, float]:
    """(hits@10, novel gold count, NDCG@10) of one turn record."""
    gold = set(row["gold"]) - set(row["mentioned"])
    return metrics.hits_at_k(row["top"], gold, K), len(gold), metrics.ndcg_at_k(row["top"], gold, K)


def compare(a: dict, b: dict) -> dict:
    keys = sorted(a.keys() & b.keys())
    if len(keys) != len(a) or len(keys) != len(b):
        raise SystemExit("error: the two runs cover different turns: compare runs of one split")
    sa = np.array([per_turn(a[k]) for k in keys])
    sb = np.array([per_turn(b[k]) for k in keys])
    has_gold = sa[:, 1] > 0
    wins, losses = int((sa[:, 0] > sb[:, 0]).sum()), int((sa[:, 0] < sb[:, 0]).sum())
    from scipy.stats import binomtest

    p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    dialogues = sorted({k[0] for k in keys})
    rows = {d: [i for i, k in enumerate(keys) if k[0] == d] for d in dialogues}
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(DRAWS):
        picked = np.concatenate(
            [rows[dialogues[j]] for j in rng.integers(len(dialogues), size=len(dialogues))]
        )
        gold = sa[picked, 1].sum()
        if gold:
            diffs.append((sa[picked, 0].sum() - sb[picked, 0].sum()) / gold)
    low, high = np.percentile(diffs, [2.5, 97.5])
    n_gold = sa[:, 1].sum()
    return {
        "turns": len(keys),
        "dialogues": len(dialogues),
        "novel_gold": int(n_gold),
        "R@10": (sa[:, 0].sum() / n_gold, sb[:, 0].sum() / n_gold),
        "NDCG@10": (sa[has_gold, 2].mean(), sb[has_gold, 2].mean()),
        "wins_losses": (wins, losses),
        "sign_test_p": p,
        "R@10_diff_ci95": (float(low), float(high)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidate", help="REPORT_DIR:SYSTEM")
    ap.add_argument("baselines", nargs="+", help="REPORT_DIR:SYSTEM")
    opts = ap.parse_args()
    cand = load(opts.candidate)
    print(
        "| candidate vs baseline | novel R@10 | novel NDCG@10 | turns won / lost (hits@10) |"
        " sign test p | R@10 difference, 95% CI |\n|---|---:|---:|---:|---:|---:|"
    )
    for spec in opts.baselines:
        r = compare(cand, load(spec))
        print(
            f"| {opts.candidate} vs {spec} | {r['R@10'][0]:.3f} vs {r['R@10'][1]:.3f}"
            f" | {r['NDCG@10'][0]:.3f} vs {r['NDCG@10'][1]:.3f}"
            f" | {r['wins_losses'][0]} / {r['wins_losses'][1]} | {r['sign_test_p']:.2f}"
            f" | {r['R@10'][0] - r['R@10'][1]:+.3f} [{r['R@10_diff_ci95'][0]:+.3f},"
            f" {r['R@10_diff_ci95'][1]:+.3f}] |"
        )
    print(
        f"\n{r['turns']} turns from {r['dialogues']} dialogues, {r['novel_gold']} novel gold items"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
