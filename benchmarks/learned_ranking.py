"""Interaction CF and the learned ranker against today's retrieval, on ReDial (dev or test).

    RECOCHAT_HOME=/tmp/cf/home RECOCHAT_CONFIG=configs/redial.toml nice -n 10 \
        python benchmarks/learned_ranking.py --redial ../shared/data/redial \
        --movielens ../shared/data/movielens --split dev --json runs/learned_ranking-dev.json
    # the reported test run (once, after every choice was made on dev: depth 100, EASE)
    RECOCHAT_HOME=/tmp/cf/home RECOCHAT_CONFIG=configs/redial.toml nice -n 10 \
        python benchmarks/learned_ranking.py --redial ../shared/data/redial \
        --movielens ../shared/data/movielens --split test --depth 100 --cf-methods ease \
        --cache /tmp/cf/prepared-test-d100.pkl --json runs/learned_ranking-test-d100.json

One run prints (and writes as JSON) the novel R@10 / R@50 / NDCG@10 of
- today's retrieval: weighted RRF of the five signals with the configured weights;
- + interaction CF: the same RRF plus `interactions` (item-item CF from MovieLens ratings,
  seeded by the dialogue's titles) and `rated` (rating counts, a popularity prior); every CF
  method (`--cf-methods`) is fitted and its two weights are chosen on DEV, the best kept;
- + learned ranker: LightGBM lambdarank over the union of every signal's top `--depth`,
  trained on train-split turns (collab signals from the other train dialogues, 5 folds) and
  early-stopped on DEV; also without its CF features, as an ablation.
Each row carries a paired bootstrap 95% interval (10,000 draws, whole dialogues) of its
difference from today's retrieval. Also: the CF method comparison, the cold-start turns (no
title yet) with and without the ratings prior, fit seconds, the added latency per turn and the
ranker's feature importances. Every choice is made on dev: `--split test` only changes the
turns that are scored (run it once, at the end). Dialogues are split by `split_of` (seed 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation import metrics
from evaluation.paired import mean_diff_ci, recall_diff_ci
from evaluation.protocol import resolve_turn
from finetune.ranker_fit import RankerData, fit_ranker
from retrieval.interaction_cf import CF_METHODS, CFParams, fit_cf
from retrieval.learned_ranker import rank_pool
from retrieval.ranking_features import rrf_order, weighted_rrf

CF_WEIGHTS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # grid for the `interactions` signal
RATED_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)  # grid for the `rated` prior
K = 50


def setup(opts: argparse.Namespace) -> dict[str, Any]:
    """Catalog index, title matcher, replaying recommender, turns of train/dev(/test)."""
    from chatbot.config import load_settings
    from chatbot.indexing import field_map, open_store
    from chatbot.turn import Recommender
    from dialogues.importers import load_rec_turns
    from dialogues.split import split_of
    from evaluation.cli import catalog_key
    from retrieval.catalog import load_catalog
    from retrieval.titles import TitleIndex, catalog_popularity

    catalog_path = opts.redial / "id2info.json"
    base = load_settings()
    fmap = field_map(base)
    collection = catalog_key(catalog_path, "redial", fmap, base.retrieval.embedder)
    settings = load_settings({"retrieval.collection": collection})
    items = load_catalog(catalog_path, "redial", fmap).items
    titles = TitleIndex(items, catalog_popularity(items))
    store = open_store(settings)
    if store.count() != len({it.item_id for it in items}):
        store.sync(items, progress=True)
    turns, _ = load_rec_turns(opts.redial / "valid_data_processed.jsonl", "redial")
    wanted = {"train", "dev", opts.split}
    split = {t.dialog_id: split_of(t.dialog_id, 0) for t in turns}
    turns = [t for t in turns if split[t.dialog_id] in wanted]  # test only with --split test
    if opts.limit:
        keep = {"train": opts.limit * 3, "dev": opts.limit, "test": opts.limit}
        seen: dict[str, int] = {}
        chosen = []
        for t in turns:
            s = split[t.dialog_id]
            if seen.get(s, 0) < keep[s]:
                chosen.append(t)
                seen[s] = seen.get(s, 0) + 1
        turns = chosen
    names = {n for t in turns for n in (*t.gold, *t.mentioned)}
    title_ids = {n: i for n in names if (i := titles.lookup(n)) is not None}
    r = settings.retrieval
    weights = {
        "dense": r.dense_weight,
        "liked": r.liked_weight,
        "cooc": r.cooc_weight,
        "popularity": r.popularity_weight,
        "credits": r.credits_weight,
    }
    rec = Recommender(settings, store, None, None)
    return {
        "items": items,
        "titles": titles,
        "store": store,
        "turns": turns,
        "split": split,
        "title_ids": title_ids,
        "weights": weights,
        "k_retrieve": r.k_retrieve,
        "rec": rec,
    }


def movielens_interactions(opts: argparse.Namespace, items, titles) -> Any:
    from retrieval.interactions import ItemKeys, load_movielens

    # The ReDial reader keeps imdb_id in the metadata; links.csv maps movieId to it.
    keys = ItemKeys.from_items(items, field="imdb_id", title_lookup=titles.lookup)
    ml = opts.movielens
    return load_movielens(ml / "ratings.csv", ml / "links.csv", keys, movies=ml / "movies.csv")


class Scorer:
    """Per-turn hits@10/@50, gold count and NDCG@10 under the novel protocol."""

    def __init__(self, data: RankerData, setup_: dict[str, Any], split: str) -> None:
        turns, titles = setup_["turns"], setup_["titles"]  # data.turns is in this order
        self.rows = [n for n, t in enumerate(data.turns) if t.split == split]
        self.eval_turns = [resolve_turn(turns[n], titles) for n in self.rows]
        self.dialogs = [data.turns[n].dialog_id for n in self.rows]

    def score(self, rankings: list[list[str]]) -> dict[str, np.ndarray]:
        out: dict[str, list[float]] = {"h10": [], "h50": [], "gold": [], "ndcg": []}
        for et, ranked in zip(self.eval_turns, rankings, strict=True):
            gold = et.gold_for("novel")
            top = et.ranking_for("novel", ranked, K)
            out["h10"].append(metrics.hits_at_k(top, gold, 10))
            out["h50"].append(metrics.hits_at_k(top, gold, 50))
            out["gold"].append(len(set(gold)))
            out["ndcg"].append(metrics.ndcg_at_k(top, gold, 10))
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}

    @staticmethod
    def summary(s: dict[str, np.ndarray]) -> dict[str, float]:
        gold = s["gold"].sum()
        has = s["gold"] > 0
        return {
            "R@10": float(s["h10"].sum() / gold) if gold else 0.0,
            "R@50": float(s["h50"].sum() / gold) if gold else 0.0,
            "NDCG@10": float(s["ndcg"][has].mean()) if has.any() else 0.0,
        }

    def versus(self, a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, Any]:
        has = a["gold"] > 0
        dialogs = [d for d, h in zip(self.dialogs, has, strict=True) if h]
        return {
            "R@10_diff_ci95": recall_diff_ci(a["h10"], b["h10"], a["gold"], self.dialogs),
            "R@50_diff_ci95": recall_diff_ci(a["h50"], b["h50"], a["gold"], self.dialogs),
            "NDCG@10_diff_ci95": mean_diff_ci(a["ndcg"][has], b["ndcg"][has], dialogs),
        }


def rrf_rankings(data: RankerData, rows: list[int], weights: dict[str, float], depth: int):
    return [rrf_order(weighted_rrf(data.turns[n].signals.ranked, weights, depth)) for n in rows]


def choose_cf_weights(data, dev: Scorer, weights, depth) -> tuple[dict[str, float], dict]:
    """The (interactions, rated) weights with the best dev R@10 + R@50."""
    best, best_score, best_summary = None, -1.0, {}
    for w_cf in CF_WEIGHTS:
        for w_rated in RATED_WEIGHTS:
            config = {**weights, "interactions": w_cf, "rated": w_rated}
            summary = dev.summary(dev.score(rrf_rankings(data, dev.rows, config, depth)))
            if summary["R@10"] + summary["R@50"] > best_score + 1e-12:
                best, best_score, best_summary = config, summary["R@10"] + summary["R@50"], summary
    return best, best_summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redial", type=Path, default=Path("../shared/data/redial"))
    ap.add_argument("--movielens", type=Path, default=Path("../shared/data/movielens"))
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--depth", type=int, default=100, help="each signal's top N in the pool")
    ap.add_argument("--cf-methods", nargs="+", default=list(CF_METHODS), choices=CF_METHODS)
    ap.add_argument("--min-rating", type=float, default=CFParams.min_rating)
    ap.add_argument("--limit", type=int, default=0, help="dev/test turns (train: 3x); 0 = all")
    ap.add_argument(
        "--cache", type=Path, help="pickle of the prepared signals: reused when it exists"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the embedder")
    ap.add_argument("--ranker-out", type=Path, help="also save the fitted ranker here")
    ap.add_argument("--json", type=Path, help="write every figure here")
    opts = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for folder in (opts.redial, opts.movielens):
        if not folder.is_dir():
            print(f"error: {folder} not found: pass --redial / --movielens to the shared data")
            return 2

    import torch

    torch.set_num_threads(opts.threads)  # the embedder; the machine is shared
    s = setup(opts)
    depth = opts.depth
    t0 = time.perf_counter()
    data = load_cache(opts.cache, s["turns"], depth)
    if data is None:
        data = RankerData.build(
            s["rec"],
            s["store"],
            s["turns"],
            s["split"],
            title_ids=s["title_ids"],
            depth=max(depth, s["k_retrieve"]),
            progress_every=200,
        )
        if opts.cache:
            opts.cache.write_bytes(pickle.dumps((len(s["turns"]), data)))
    data.depth = depth  # signals prepared deeper are cut to `depth` wherever they are read
    prepare_s = time.perf_counter() - t0
    dev, target = Scorer(data, s, "dev"), Scorer(data, s, opts.split)
    base_w, k_retrieve = s["weights"], s["k_retrieve"]
    base = target.score(rrf_rankings(data, target.rows, base_w, k_retrieve))

    load = movielens_interactions(opts, s["items"], s["titles"])
    cf_rows, fitted = [], {}
    for method in opts.cf_methods:
        params = CFParams(method=method, min_rating=opts.min_rating)
        t1 = time.perf_counter()
        cf = fit_cf(load.interactions, params)
        fit_s = time.perf_counter() - t1
        data.with_cf(cf)
        config, dev_summary = choose_cf_weights(data, dev, base_w, k_retrieve)
        fitted[method] = (cf, config, dev_summary)
        cf_rows.append(
            {
                "method": method,
                "fit_seconds": round(fit_s, 2),
                "interactions_weight": config["interactions"],
                "rated_weight": config["rated"],
                **{f"dev {k}": v for k, v in dev_summary.items()},
            }
        )
    best_method = max(fitted, key=lambda m: fitted[m][2]["R@10"] + fitted[m][2]["R@50"])
    cf, cf_weights, _ = fitted[best_method]
    data.with_cf(cf)
    with_cf = target.score(rrf_rankings(data, target.rows, cf_weights, k_retrieve))

    # Latency added per turn by CF signals + features + model (the log signals exist today).
    ranker, report = fit_ranker(
        data.groups("train", cf_weights, positives_only=True),
        data.groups("dev", cf_weights, positives_only=True),
        depth=depth,
        weights=cf_weights,
    )
    if opts.ranker_out:
        ranker.save(opts.ranker_out)
    added_ms, ranked = [], []
    for n in target.rows:
        t = data.turns[n]
        t1 = time.perf_counter()
        from retrieval.ranking_features import add_cf_signals

        add_cf_signals(t.signals, cf, t.query, depth=depth, facts=data.facts)
        ranked.append(rank_pool(ranker, t.signals, data.facts, t.conversation, weights=cf_weights))
        added_ms.append((time.perf_counter() - t1) * 1000)
    learned = target.score(ranked)

    data.with_cf(None)
    plain_w = {k: v for k, v in cf_weights.items() if k not in ("interactions", "rated")}
    ranker_nocf, report_nocf = fit_ranker(
        data.groups("train", plain_w, positives_only=True),
        data.groups("dev", plain_w, positives_only=True),
        depth=depth,
        weights=plain_w,
    )
    learned_nocf = target.score(
        [
            rank_pool(
                ranker_nocf,
                data.turns[n].signals,
                data.facts,
                data.turns[n].conversation,
                weights=plain_w,
            )
            for n in target.rows
        ]
    )

    # Cold start: turns with no title yet (no seeds), with and without the ratings prior.
    data.with_cf(cf)
    cold = [i for i, n in enumerate(target.rows) if not data.turns[n].signals.seeds]
    cold_rows = []
    for name, w in (
        ("today's retrieval (dialogue popularity)", base_w),
        ("+ ratings prior (rated)", {**base_w, "rated": cf_weights["rated"] or 1.0}),
        ("no dialogue logs: dense only", {"dense": 1.0}),
        ("no dialogue logs: dense + ratings prior", {"dense": 1.0, "rated": 1.0}),
    ):
        sc = target.score(rrf_rankings(data, target.rows, w, k_retrieve))
        sub = {k: v[cold] for k, v in sc.items()}
        cold_rows.append({"system": name, **target.summary(sub)})

    rows = []
    for name, sc in (
        ("today's retrieval (configured RRF)", base),
        (f"+ interaction CF ({best_method}, RRF)", with_cf),
        ("+ learned ranker (LightGBM, with CF)", learned),
        ("learned ranker without CF features", learned_nocf),
    ):
        row = {"system": name, **target.summary(sc)}
        if sc is not base:
            row.update(target.versus(sc, base))
        rows.append(row)
    figures = {
        "split": opts.split,
        "turns": len(target.rows),
        "novel_gold": int(base["gold"].sum()),
        "depth": depth,
        "rows": rows,
        "cf_methods": cf_rows,
        "cf_chosen": {"method": best_method, "weights": cf_weights, "params": cf.params},
        "interactions": dict(load.counts),
        "cold_start": {"turns": len(cold), "rows": cold_rows},
        "ranker": report,
        "ranker_without_cf": report_nocf,
        "importances": ranker.importances(),
        "seconds": {"prepare_signals": round(prepare_s, 1), "ranker_fit": report["fit_seconds"]},
        "added_latency_ms": {
            "median": statistics.median(added_ms),
            "p95": float(np.percentile(added_ms, 95)),
        },
        "pool_gold_share": pool_share(data, target),
    }
    print_tables(figures)
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(figures, indent=2))
    return 0


def load_cache(path: Path | None, turns: list, depth: int) -> RankerData | None:
    """Prepared signals of an earlier run over the same turns, at least `depth` deep."""
    if path is None or not path.is_file():
        return None
    n_turns, data = pickle.loads(path.read_bytes())
    if n_turns != len(turns) or data.depth < depth:
        return None
    return data


def pool_share(data: RankerData, target: Scorer) -> float:
    """Share of novel gold inside the widened pool (the ranker's ceiling)."""
    from retrieval.ranking_features import pool_of

    hit = total = 0
    for n, et in zip(target.rows, target.eval_turns, strict=True):
        pool = set(pool_of(data.turns[n].signals, data.depth))
        gold = set(et.gold_for("novel"))
        hit += len(gold & pool)
        total += len(gold)
    return round(hit / total, 3) if total else 0.0


def print_tables(f: dict[str, Any]) -> None:
    print(
        f"{f['split']}: {f['turns']} turns, {f['novel_gold']} novel gold; pool = union of "
        f"top {f['depth']} per signal, holds {f['pool_gold_share']:.3f} of gold\n"
    )
    print(
        "| system | novel R@10 | novel R@50 | novel NDCG@10 | ΔR@10 95% CI | ΔR@50 95% CI |"
        " ΔNDCG@10 95% CI |\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for r in f["rows"]:
        cis = [r.get(f"{m}_diff_ci95") for m in ("R@10", "R@50", "NDCG@10")]
        cells = [f"[{c[0]:+.3f}, {c[1]:+.3f}]" if c else "—" for c in cis]
        print(
            f"| {r['system']} | {r['R@10']:.3f} | {r['R@50']:.3f} | {r['NDCG@10']:.3f} | "
            + " | ".join(cells)
            + " |"
        )
    print("\n| CF method (dev) | fit s | w interactions | w rated | R@10 | R@50 | NDCG@10 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in f["cf_methods"]:
        print(
            f"| {r['method']} | {r['fit_seconds']:.1f} | {r['interactions_weight']:g} | "
            f"{r['rated_weight']:g} | {r['dev R@10']:.3f} | {r['dev R@50']:.3f} | "
            f"{r['dev NDCG@10']:.3f} |"
        )
    print(f"\ncold start ({f['cold_start']['turns']} turns without a title):")
    print("| system | R@10 | R@50 | NDCG@10 |\n|---|---:|---:|---:|")
    for r in f["cold_start"]["rows"]:
        print(f"| {r['system']} | {r['R@10']:.3f} | {r['R@50']:.3f} | {r['NDCG@10']:.3f} |")
    rk = f["ranker"]
    print(
        f"\nranker: {rk['rounds']} rounds, fit {rk['fit_seconds']:.1f}s on {rk['train_rows']} "
        f"rows; added latency per turn p50 {f['added_latency_ms']['median']:.1f} ms, "
        f"p95 {f['added_latency_ms']['p95']:.1f} ms; signals prepared in "
        f"{f['seconds']['prepare_signals']:.0f}s"
    )
    top = list(f["importances"].items())[:12]
    total = sum(f["importances"].values()) or 1.0
    print("importances (gain share): " + ", ".join(f"{k} {v / total:.2f}" for k, v in top))


if __name__ == "__main__":
    raise SystemExit(main())
