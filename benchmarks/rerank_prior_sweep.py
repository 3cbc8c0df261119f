"""Sweep the pointwise reranker's retrieval prior on the ReDial DEV split, scoring each model once.

    RECOCHAT_CONFIG=configs/redial.toml python benchmarks/rerank_prior_sweep.py \
        --adapter runs/finetune/redial-ev3 --json runs/prior_sweep.json

The served pointwise score of a candidate is log P(yes) - prior * log(1 + retrieval rank)
(`chatbot.ranking.rerank.fuse`). `finetune_compare.py` evaluates one prior per run; this scores every
dev turn's top `k_candidates` once with the untuned model and once with `--adapter` (the same
prompts, prefix cache and model loading as serving), then ranks under each prior of the grid
offline. Candidates below the window keep their retrieval order, as served. A prior of
infinity is the retrieval order itself. Choose the prior here, then report on test with
`finetune_compare.py --rerank-prior`. Same data path as `tune_retrieval.py`: collaborative
signals from the train split, the test split never loaded.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from evaluation import metrics
from evaluation.dev_split import (
    data_ready,
    dev_options,
    setup,
)
from evaluation.protocol import resolve_turn
from evaluation.runner import K_EVAL
from recochat.env import set_env_defaults

PRIORS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, math.inf)  # inf: the retrieval order


def score_turns(dev, adapter: Path | None) -> list[tuple[list[str], list[float]]]:
    """Per dev turn: candidate ids in retrieval order (K_EVAL of them) and the model's
    log P(yes) for the top k_candidates."""
    from chatbot.ranking.rerank import SCORE_LABELS
    from chatbot.turn import Recommender
    from inference.llm import load_llm

    llm_settings = dev.settings.llm.model_copy(update={"adapter": adapter})
    settings = dev.settings.model_copy(update={"llm": llm_settings})
    llm = load_llm(llm_settings, settings.model_cache)
    rec = Recommender(settings, dev.store, llm, dev.collab)
    rec.cache_prompt_heads()
    window = settings.retrieval.k_candidates
    out = []
    t0 = time.perf_counter()
    for n, turn in enumerate(dev.dev, 1):
        prep = rec.prepare_context(list(turn.context), k=max(K_EVAL, window))
        head = prep.candidates[:window]
        rows = llm.label_logprobs_rows(
            [rec.score_prompt(prep.conversation, c) for c in head], list(SCORE_LABELS)
        )
        out.append(([c.item.item_id for c in prep.candidates], [row[0] for row in rows]))
        if n % 50 == 0:
            print(
                f"  scored {n}/{len(dev.dev)} turns ({time.perf_counter() - t0:.0f}s)", flush=True
            )
    return out


def ranked(ids: list[str], logprobs: list[float], prior: float) -> list[str]:
    """The served order: the window reranked by log P(yes) - prior * log(1 + rank)."""
    if math.isinf(prior):
        return ids
    scores = [lp - prior * math.log1p(rank) for rank, lp in enumerate(logprobs)]
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return [ids[i] for i in order] + ids[len(scores) :]


def evaluate(eval_turns, scored, prior: float) -> dict[str, float]:
    ranks, golds = [], []
    for t, (ids, logprobs) in zip(eval_turns, scored, strict=True):
        ranks.append(t.ranking_for("novel", ranked(ids, logprobs, prior), K_EVAL))
        golds.append(t.gold_for("novel"))
    return {
        "R@1": metrics.recall_at_k(ranks, golds, 1),
        "R@10": metrics.recall_at_k(ranks, golds, 10),
        "R@50": metrics.recall_at_k(ranks, golds, 50),
        "NDCG@10": metrics.mean_per_turn(metrics.ndcg_at_k, ranks, golds, 10),
        "MRR@10": metrics.mean_per_turn(metrics.mrr_at_k, ranks, golds, 10),
    }


def main() -> int:
    set_env_defaults()  # before anything loads torch or Chroma
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", type=Path, required=True, help="adapter dir to compare")
    opts = dev_options(ap, "also write the rows here")
    if not data_ready(opts.data_dir):
        return 2
    dev = setup(opts.data_dir, opts.limit or None, opts.seed)
    dev.settings = dev.settings.model_copy(
        update={"llm": dev.settings.llm.model_copy(update={"rerank_mode": "pointwise"})}
    )
    eval_turns = [resolve_turn(t, dev.titles) for t in dev.dev]
    n_gold = sum(len(t.novel_gold) for t in eval_turns)
    print(f"dev: {len(eval_turns)} turns, {n_gold} novel gold items (novel protocol)")
    models = {"untuned": None, "fine-tuned": opts.adapter}
    scored = {name: score_turns(dev, adapter) for name, adapter in models.items()}
    rows = [{"system": "retrieval order", **evaluate(eval_turns, scored["untuned"], math.inf)}]
    for name in models:
        for prior in PRIORS[:-1]:
            label = f"{name}, prior {prior:g}"
            rows.append({"system": label, **evaluate(eval_turns, scored[name], prior)})
    cols = ("R@1", "R@10", "R@50", "NDCG@10", "MRR@10")
    print("| system | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for r in rows:
        print(f"| {r['system']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    if opts.json:
        opts.json.write_text(json.dumps({"adapter": str(opts.adapter), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
