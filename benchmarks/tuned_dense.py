"""A dense retriever fine-tuned on the train split's dialogues, as one more signal, on ReDial.

    RECOCHAT_HOME=runs/home-redial RECOCHAT_CONFIG=configs/redial.toml PYTHONPATH=$PWD \
        python benchmarks/tuned_dense.py --redial ../shared/data/redial --split dev \
        --cache runs/prepared-test-d100.pkl --model-out runs/tuned-embedder --ranker \
        --json runs/tuned_dense-dev.json
    # the same figures from the saved model, without fitting again: add --reuse-model

The bundled MiniLM embeds item descriptions and the request; out of the box its top 20 holds
6.5% of dev gold (benchmarks/gold_coverage.py). Here a copy of it is fine-tuned with
sentence-transformers (MultipleNegativesRankingLoss, in-batch negatives, no duplicate items in a
batch) on (conversation, gold item text) pairs of the TRAIN split only. Its ranking over the
catalog (the turn's filters and mentioned items excluded, as the served dense signal) joins
today's weighted RRF as `tuned`, with a weight chosen on DEV; a second variant replaces the
untuned dense signal by it. `--query` picks the anchor text: the served query (`state`) or the
conversation's last `--last` utterances (`context`). `--ranker` also fits LightGBM lambdarank
(no CF features) without and with a `rank_tuned` feature. Rows carry a paired bootstrap 95% interval
by dialogue of the difference from today's retrieval. `--split test` scores test turns with the
dev choices (run it once, at the end). Dialogues split by `split_of` (seed 0), as everywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import pickle
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0)
FIT_RECORD = "tuned_dense_fit.json"  # beside the saved model: its fit time and options


def anchors(data: Any, turns: list, how: str, last: int) -> list[str]:
    """The text each prepared turn is embedded by (data.turns and turns share an order)."""
    out = []
    for prepared, turn in zip(data.turns, turns, strict=True):
        if how == "state":
            out.append(prepared.query.text)
        else:
            words = " ".join(turn.context[-last:]).split()
            out.append(" ".join(words[-160:]))  # keep the end: the model reads 256 tokens
    return out


def training_pairs(data: Any, texts: list[str], items: dict, seed: int) -> list[tuple[str, str]]:
    pairs = [
        (texts[n], items[g].text)
        for n, t in enumerate(data.turns)
        if t.split == "train" and texts[n].strip()
        for g in sorted(t.gold)
        if g in items
    ]
    random.Random(seed).shuffle(pairs)
    return pairs


def fine_tune(pairs, model_dir: Path, out: Path, opts: argparse.Namespace) -> tuple[Any, float]:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )
    from sentence_transformers.training_args import BatchSamplers

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    dataset = Dataset.from_dict(
        {"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=opts.epochs,
        per_device_train_batch_size=opts.batch_size,
        learning_rate=opts.lr,
        warmup_ratio=0.1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        logging_steps=20,
        report_to=[],
        seed=opts.seed,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    loss = losses.MultipleNegativesRankingLoss(model)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    model.save(str(out))
    return model, seconds


def tuned_rankings(model, data, texts, items: dict, depth: int) -> list[list[str]]:
    """Each turn's top `depth` by the model, filtered as the served dense signal is."""
    from retrieval.filters import matches_where

    ids = sorted(items)
    item_vecs = model.encode(
        [items[i].text for i in ids],
        batch_size=64,
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    query_vecs = model.encode(
        texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    )
    out = []
    for t, q in zip(data.turns, query_vecs, strict=True):
        blocked = set(t.query.exclude_ids) | set(t.query.liked_ids) | set(t.query.mentioned_ids)
        order = np.argsort(-(item_vecs @ q), kind="stable")
        ranked = []
        for j in order:
            item_id = ids[j]
            if item_id in blocked or not matches_where(items[item_id].metadata, t.query.where):
                continue
            ranked.append(item_id)
            if len(ranked) == depth:
                break
        out.append(ranked)
    return out


def choose(data, dev: Any, base_w: dict, depth: int) -> tuple[dict, dict, list[dict]]:
    """Best dev R@10 + R@50 over the grid, added to today's RRF or in place of `dense`."""
    from benchmarks.learned_ranking import rrf_rankings

    grid, best, best_key = [], None, -1.0
    for replace in (False, True):
        for w in WEIGHTS:
            config = {**base_w, "tuned": w, **({"dense": 0.0} if replace else {})}
            summary = dev.summary(dev.score(rrf_rankings(data, dev.rows, config, depth)))
            grid.append({"tuned_weight": w, "replaces_dense": replace, **summary})
            if summary["R@10"] + summary["R@50"] > best_key + 1e-12:
                best, best_key = config, summary["R@10"] + summary["R@50"]
    return best, dev.summary(dev.score(rrf_rankings(data, dev.rows, best, depth))), grid


@contextlib.contextmanager
def ranker_signals(extra: tuple[str, ...]):
    """The learned ranker's pool and features with `extra` signals as well (a rank column each).

    The served feature set (`retrieval.ranking_features.FEATURES`) is not changed by this
    probe; it widens the module's lists for the duration of one fit-and-score only.
    """
    import retrieval.ranking_features as rf

    saved = rf.ALL_SIGNALS, rf.FEATURES
    rf.ALL_SIGNALS = (*saved[0], *extra)
    # build_features reads ALL_SIGNALS's prefix as the rank columns: keep them first.
    rf.FEATURES = (
        *(f"rank_{s}" for s in rf.ALL_SIGNALS),
        *(f for f in saved[1] if not f.startswith("rank_")),
    )
    try:
        yield
    finally:
        rf.ALL_SIGNALS, rf.FEATURES = saved


def ranker_rows(data, target: Any, weights: dict, depth: int) -> dict[str, Any]:
    """LightGBM lambdarank (train split, early-stopped on dev) without and with `tuned`."""
    from finetune.ranker_fit import fit_ranker
    from retrieval.learned_ranker import rank_pool

    out = {}
    for name, extra in (("ranker", ()), ("ranker + tuned", ("tuned",))):
        with ranker_signals(extra):
            ranker, report = fit_ranker(
                data.groups("train", weights, positives_only=True),
                data.groups("dev", weights, positives_only=True),
                depth=depth,
                weights=weights,
            )
            ranked = [
                rank_pool(
                    ranker,
                    data.turns[n].signals,
                    data.facts,
                    data.turns[n].conversation,
                    weights=weights,
                )
                for n in target.rows
            ]
        booster = ranker.booster
        gains = booster.feature_importance(importance_type="gain")
        total = float(gains.sum()) or 1.0
        shares = sorted(
            zip(booster.feature_name(), gains / total, strict=True), key=lambda p: -p[1]
        )
        out[name] = (target.score(ranked), report, {f: round(float(g), 4) for f, g in shares[:12]})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redial", type=Path, default=Path("../shared/data/redial"))
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--cache", type=Path, help="prepared signals (benchmarks/learned_ranking.py)")
    ap.add_argument("--query", choices=("state", "context"), default="context")
    ap.add_argument("--last", type=int, default=3, help="utterances in a `context` anchor")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--model-out", type=Path, default=Path("runs/tuned-embedder"))
    ap.add_argument(
        "--reuse-model", action="store_true", help="load --model-out if it holds a model"
    )
    ap.add_argument(
        "--ranker", action="store_true", help="also fit LightGBM without and with `tuned`"
    )
    ap.add_argument("--json", type=Path)
    opts = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not opts.redial.is_dir():
        print(f"error: {opts.redial} not found: pass --redial to the shared ReDial data")
        return 2

    import torch

    from benchmarks.learned_ranking import Scorer, load_cache, rrf_rankings, setup
    from retrieval.embeddings import resolve_model_dir

    torch.manual_seed(opts.seed)
    torch.set_num_threads(opts.threads)
    # Test turns are prepared alongside (one cache for both runs) but scored only with --split test.
    opts_setup = argparse.Namespace(redial=opts.redial, split="test", limit=opts.limit)
    s = setup(opts_setup)
    from finetune.ranker_fit import RankerData

    t0 = time.perf_counter()
    data = load_cache(opts.cache, s["turns"], opts.depth)
    if data is None:
        data = RankerData.build(
            s["rec"],
            s["store"],
            s["turns"],
            s["split"],
            title_ids=s["title_ids"],
            depth=max(opts.depth, s["k_retrieve"]),
            progress_every=200,
        )
        if opts.cache:
            opts.cache.parent.mkdir(parents=True, exist_ok=True)
            opts.cache.write_bytes(pickle.dumps((len(s["turns"]), data)))
    data.depth = opts.depth
    prepare_s = time.perf_counter() - t0
    items = {it.item_id: it for it in s["items"]}
    texts = anchors(data, s["turns"], opts.query, opts.last)
    pairs = training_pairs(data, texts, items, opts.seed)
    model_dir = resolve_model_dir(s["rec"].settings.retrieval.embedder)
    if opts.reuse_model and (opts.model_out / "config.json").is_file():
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(opts.model_out), device="cpu", local_files_only=True)
        fit_s = float(json.loads((opts.model_out / FIT_RECORD).read_text())["seconds"])
    else:
        model, fit_s = fine_tune(pairs, model_dir, opts.model_out, opts)
        (opts.model_out / FIT_RECORD).write_text(
            json.dumps({"seconds": round(fit_s, 1), "pairs": len(pairs), **vars(opts)}, default=str)
        )
    t1 = time.perf_counter()
    tuned = tuned_rankings(model, data, texts, items, opts.depth)
    encode_s = time.perf_counter() - t1
    from sentence_transformers import SentenceTransformer

    untuned = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    same_anchor = tuned_rankings(untuned, data, texts, items, opts.depth)
    for t, ranked, plain in zip(data.turns, tuned, same_anchor, strict=True):
        t.signals.ranked["tuned"] = ranked
        t.signals.ranked["untuned_anchor"] = plain

    dev, target = Scorer(data, s, "dev"), Scorer(data, s, opts.split)
    base_w, k = s["weights"], s["k_retrieve"]
    config, dev_summary, grid = choose(data, dev, base_w, k)
    base = target.score(rrf_rankings(data, target.rows, base_w, k))
    rows = []
    for name, w in (
        ("today's retrieval (configured RRF)", base_w),
        ("untuned dense alone (the served query)", {"dense": 1.0}),
        ("untuned dense alone (the same anchor as tuned)", {"untuned_anchor": 1.0}),
        ("tuned dense alone", {"tuned": 1.0}),
        ("+ tuned dense (weights chosen on dev)", config),
    ):
        sc = target.score(rrf_rankings(data, target.rows, w, k))
        row = {"system": name, **target.summary(sc)}
        if w is not base_w:
            row.update(target.versus(sc, base))
        rows.append(row)
    rankers = ranker_rows(data, target, base_w, opts.depth) if opts.ranker else {}
    for name, (sc, report, _) in rankers.items():
        label = f"learned {name} (LightGBM, no CF; {report['rounds']} rounds)"
        rows.append({"system": label, **target.summary(sc), **target.versus(sc, base)})
    if len(rankers) == 2:
        with_t, without = rankers["ranker + tuned"][0], rankers["ranker"][0]
        rows[-1]["versus_ranker_without_tuned"] = target.versus(with_t, without)
    lat = []
    for text in texts[:200]:
        t2 = time.perf_counter()
        model.encode([text], normalize_embeddings=True)
        lat.append((time.perf_counter() - t2) * 1000)
    figures = {
        "split": opts.split,
        "turns": len(target.rows),
        "novel_gold": int(base["gold"].sum()),
        "query": opts.query,
        "last": opts.last,
        "train_pairs": len(pairs),
        "epochs": opts.epochs,
        "lr": opts.lr,
        "batch_size": opts.batch_size,
        "rows": rows,
        "dev_grid": grid,
        "dev_chosen": {"weights": config, **dev_summary},
        "seconds": {
            "prepare_signals": round(prepare_s, 1),
            "fine_tune": round(fit_s, 1),
            "encode_catalog_and_queries": round(encode_s, 1),
        },
        "query_encode_ms_p50": round(statistics.median(lat), 1),
        "ranker_importances": {name: imp for name, (_, _, imp) in rankers.items()},
    }
    print(f"{opts.split}: {len(target.rows)} turns; {len(pairs)} train pairs; fit {fit_s:.0f}s")
    print("| system | R@10 | R@50 | NDCG@10 | ΔR@10 95% CI | ΔR@50 95% CI | ΔNDCG@10 95% CI |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cis = [r.get(f"{m}_diff_ci95") for m in ("R@10", "R@50", "NDCG@10")]
        cells = [f"[{c[0]:+.3f}, {c[1]:+.3f}]" if c else "—" for c in cis]
        print(
            f"| {r['system']} | {r['R@10']:.3f} | {r['R@50']:.3f} | {r['NDCG@10']:.3f} | "
            + " | ".join(cells)
            + " |"
        )
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
