"""Tune the candidate fusion weights and k_retrieve on the ReDial DEV split (never test).

    RECOCHAT_HOME=/tmp/tune/home python benchmarks/tune_retrieval.py            # 414 dev turns
    RECOCHAT_HOME=/tmp/tune/home python benchmarks/tune_retrieval.py --limit 200 --json out.json

Same data, catalog index and protocol as `benchmarks/eval_redial.py --split dev --systems
retrieval`: collaborative signals come from the train split of `valid_data_processed.jsonl`
(as `--train-split`), metrics are the novel protocol on the dev split. Test turns are dropped
right after loading and never looked at. The catalog collection is named by
`evaluation.cli.catalog_key`, so a home where the eval already indexed ReDial is reused.

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
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "redial"

from evaluation import metrics  # noqa: E402
from evaluation.protocol import EvalTurn, resolve_turn, sample_by_dialogue  # noqa: E402
from evaluation.runner import K_EVAL  # noqa: E402
from retrieval.candidates import FusionWeights, SignalRankings, fuse, rank_signals  # noqa: E402

GRID: list[tuple[str, tuple[float, ...]]] = [
    ("popularity", (0.3, 0.6, 1.0, 1.5, 2.0)),
    ("cooc", (0.5, 1.0, 2.0, 3.0)),
    ("liked", (0.5, 1.0, 1.5, 2.0)),
    ("dense", (0.25, 0.5, 1.0)),
    ("credits", (0.0, 0.5, 1.0, 2.0)),
    ("k_retrieve", (50, 100, 200, 400)),
]
START: dict[str, float] = {**dataclasses.asdict(FusionWeights()), "k_retrieve": 100}


@dataclasses.dataclass
class Turn:
    eval_turn: EvalTurn
    rankings: SignalRankings  # the current query
    previous: SignalRankings  # liked-only seeds (the query before mentioned titles seeded)
    avoid: tuple[str, ...]


@dataclasses.dataclass
class DevSetup:
    settings: Any  # the current settings, pointed at the ReDial catalog's collection
    store: Any
    collab: Any  # learnt from the train split only
    titles: Any
    dev: list  # dev RecTurns (the sample asked for)


def setup(limit: int | None, seed: int) -> DevSetup:
    """The ReDial catalog index, train-split collaborative signals and the dev turns."""
    from chatbot.config import load_settings
    from chatbot.indexing import field_map, open_store
    from dialogues.importers import load_rec_turns
    from dialogues.split import split_of
    from evaluation.cli import catalog_key
    from retrieval.catalog import load_catalog
    from retrieval.collab import CollabSignals
    from retrieval.titles import TitleIndex, catalog_popularity

    catalog_path, dialogues = DATA / "id2info.json", DATA / "valid_data_processed.jsonl"
    base = load_settings()
    fmap = field_map(base)
    collection = catalog_key(catalog_path, "redial", fmap, base.retrieval.embedder)
    settings = load_settings({"retrieval.collection": collection})
    items = load_catalog(catalog_path, "redial", fmap).items
    titles = TitleIndex(items, catalog_popularity(items))

    all_turns, _ = load_rec_turns(dialogues, "redial")
    split = {t.dialog_id: split_of(t.dialog_id, 0) for t in all_turns}
    train = [t for t in all_turns if split[t.dialog_id] == "train"]
    dev = [t for t in all_turns if split[t.dialog_id] == "dev"]
    del all_turns  # the test split is never used below
    chosen = sample_by_dialogue(dev, limit, seed)

    names = {n for t in train for n in (*t.gold, *t.mentioned)}
    title_to_id = {n: i for n in names if (i := titles.lookup(n)) is not None}
    collab = CollabSignals.from_turns(train, title_to_id)
    store = open_store(settings)
    if store.count() != len({it.item_id for it in items}):
        store.sync(items, progress=True)
    return DevSetup(settings, store, collab, titles, chosen)


def load(limit: int | None, seed: int, dev: DevSetup | None = None) -> list[Turn]:
    """Dev turns with their signal rankings; collaborative signals from the train split
    (`dev`: an existing `setup(limit, seed)`, to reuse)."""
    from chatbot.turn import Recommender

    dev = dev or setup(limit, seed)
    store, collab, titles, chosen = dev.store, dev.collab, dev.titles, dev.dev
    rec = Recommender(dev.settings, store, None, collab)
    _, schema = rec.catalog()

    depth = max(max(values) for name, values in GRID if name == "k_retrieve")
    no_dense_pop = FusionWeights(dense=0.0, popularity=0.0, credits=0.0)
    out = []
    t0 = time.perf_counter()
    for n, turn in enumerate(chosen, 1):
        query = rec.state_from_context(list(turn.context)).to_query(schema)
        rankings = rank_signals(store, collab, query, depth=depth)
        old_query = dataclasses.replace(query, mentioned_ids=())
        old = rank_signals(store, collab, old_query, depth=depth, weights=no_dense_pop)
        previous = SignalRankings(
            {k: v for k, v in rankings.ranked.items() if k not in ("liked", "cooc", "credits")}
            | old.ranked
        )
        out.append(Turn(resolve_turn(turn, titles), rankings, previous, query.avoid_terms))
        if n % 50 == 0:
            print(f"  ranked {n}/{len(chosen)} turns ({time.perf_counter() - t0:.0f}s)", flush=True)
    return out


def evaluate(turns: list[Turn], config: dict[str, float], *, previous: bool = False) -> dict:
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


def search(turns: list[Turn]) -> tuple[list[dict[str, Any]], dict[str, float]]:
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


def configured_weights() -> dict[str, float]:
    """The fusion weights and k_retrieve of the current settings (e.g. configs/redial.toml)."""
    from chatbot.config import load_settings

    r = load_settings().retrieval
    return {
        "dense": r.dense_weight,
        "liked": r.liked_weight,
        "cooc": r.cooc_weight,
        "popularity": r.popularity_weight,
        "credits": r.credits_weight,
        "k_retrieve": r.k_retrieve,
    }


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


def dev_options(ap: argparse.ArgumentParser, json_help: str) -> argparse.Namespace:
    """Parse the options every dev-split benchmark shares (after the script's own)."""
    ap.add_argument("--limit", type=int, default=0, help="dev turns sampled by dialogue; 0 = all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help=json_help)
    return ap.parse_args()


def data_ready() -> bool:
    """Quiet logging, and whether the shared ReDial data is there (an error line if not)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not DATA.is_dir():
        print(f"error: {DATA} not found: the benchmarks read the shared datasets")
    return DATA.is_dir()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    opts = dev_options(ap, "also write the rows and the chosen config here")
    if not data_ready():
        return 2
    turns = load(opts.limit or None, opts.seed)
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
