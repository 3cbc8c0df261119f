"""Choose the OpenDialKG query window and fusion weights on a dev part of its TRAIN file.

    nice -n 10 python benchmarks/tune_opendialkg.py --data-dir ../shared/data \
        --json runs/tune/opendialkg.json

The train file is split by dialogue (`dialogues.split.split_of` on dialog_id): its dev bucket
is replayed, the other buckets feed the collaborative and entity signals. The valid file (what
`recochat eval --dataset opendialkg` reports) is never read. Each dev turn is replayed once
into a `DialogueState` (people, genres and titles linked by the product), every signal is
ranked once per query window, then the weights are chosen by coordinate ascent on novel R@10
(ties: R@50). Writes every tried row and the chosen one as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

from evaluation.datasets import DATASETS, DEFAULT_DATA_DIR
from evaluation.metrics import recall_at_k
from evaluation.protocol import resolve_turn
from retrieval.candidates import FusionWeights, SignalRankings, fuse, rank_signals

log = logging.getLogger("tune_opendialkg")

WINDOWS = (0, 2, 3, 4, 6)  # 0: the last three user utterances (the default)
GRID = (0.0, 0.5, 1.0, 2.0, 4.0)
DEPTH = 100


class FrozenStore:
    """The store, its catalog read once (nothing is indexed while tuning)."""

    def __init__(self, store) -> None:
        self.store = store
        self.items = store.all_items()

    def all_items(self):
        return self.items

    def __getattr__(self, name):
        return getattr(self.store, name)


def main() -> None:
    from recochat.env import set_env_defaults

    set_env_defaults()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--windows", default=",".join(map(str, WINDOWS)))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from chatbot.config import load_settings
    from chatbot.indexing import field_map, open_store
    from chatbot.turn import Recommender
    from dialogues.importers import load_rec_turns
    from dialogues.split import split_of
    from evaluation.cli import catalog_key, holds
    from retrieval.catalog import load_catalog
    from retrieval.collab import CollabSignals
    from retrieval.entity_cooc import learn_entity_cooc
    from retrieval.entity_links import EntityLinker
    from retrieval.titles import TitleIndex, catalog_popularity

    ds = DATASETS["opendialkg"]
    catalog_path = args.data_dir / ds.catalog
    base = load_settings()
    fmap = field_map(base)
    collection = catalog_key(catalog_path, ds.catalog_format, fmap, base.retrieval.embedder)
    settings = load_settings({"retrieval.collection": collection})
    items = load_catalog(catalog_path, ds.catalog_format, fmap).items
    titles = TitleIndex(items, catalog_popularity(items))
    turns, _ = load_rec_turns(args.data_dir / ds.train, ds.format)
    dev = [t for t in turns if split_of(str(t.dialog_id), 0) == "dev"]
    train = [t for t in turns if split_of(str(t.dialog_id), 0) != "dev"]
    names = {n for t in train for n in (*t.gold, *t.mentioned)}
    title_to_id = {n: i for n in names if (i := titles.lookup(n)) is not None}
    t0 = time.perf_counter()
    collab = CollabSignals.from_turns(train, title_to_id)
    collab = collab.with_entities(learn_entity_cooc(train, EntityLinker(items), title_to_id))
    fit_s = time.perf_counter() - t0
    log.info("signals from %d train turns (%.1fs); %d dev turns", len(train), fit_s, len(dev))
    store = open_store(settings)
    if not holds(store, items):
        store.sync(items, progress=True)
    rec = Recommender(settings, store, None, collab)
    _, schema = rec.catalog()

    evals = [resolve_turn(t, titles) for t in dev]
    states = [rec.state_from_context(list(t.context)) for t in dev]
    windows = [int(w) for w in args.windows.split(",")]
    frozen = FrozenStore(store)
    # Every signal once (window 0); other windows change the dense query only.
    ranked = {0: [rank_signals(frozen, collab, s.to_query(schema), depth=DEPTH) for s in states]}
    print(f"all signals ranked ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    dense_only = FusionWeights(liked=0, cooc=0, popularity=0, credits=0, entities=0)
    for w in (w for w in windows if w != 0):
        ranked[w] = []
        for s, full in zip(states, ranked[0], strict=True):
            query = s.to_query(schema, window=w)
            dense = rank_signals(frozen, collab, query, depth=DEPTH, weights=dense_only)
            ranked[w].append(SignalRankings({**full.ranked, **dense.ranked}))
        print(f"window {w} ranked ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    golds = [e.novel_gold for e in evals]

    def score(window: int, weights: FusionWeights) -> dict[str, float]:
        lists = []
        for e, r in zip(evals, ranked[window], strict=True):
            fused = [c.item.item_id for c in fuse(r, weights, depth=DEPTH)]
            lists.append(e.ranking_for("novel", fused, 50))
        return {
            "r10": recall_at_k(lists, golds, 10),
            "r50": recall_at_k(lists, golds, 50),
        }

    rows = []

    def trial(window: int, weights: FusionWeights) -> tuple[float, float]:
        s = score(window, weights)
        rows.append({"window": window, **dataclasses.asdict(weights), **s})
        return s["r10"], s["r50"]

    default = FusionWeights()
    baseline = {"window": 0, **dataclasses.asdict(default), **score(0, default)}
    best_w, best = 0, dataclasses.replace(default, entities=1.0)
    best_s = trial(best_w, best)
    for w in windows:  # the window first, at the starting weights
        s = trial(w, best)
        if s > best_s:
            best_w, best_s = w, s
    for _ in range(1):  # one pass of coordinate ascent over the weights
        for name in dataclasses.asdict(best):
            for value in GRID:
                cand = dataclasses.replace(best, **{name: value})
                s = trial(best_w, cand)
                if s > best_s:
                    best, best_s = cand, s
        for w in windows:
            s = trial(w, best)
            if s > best_s:
                best_w, best_s = w, s
    chosen = {"window": best_w, **dataclasses.asdict(best), "r10": best_s[0], "r50": best_s[1]}
    ablations = {
        name: {"window": best_w, **score(best_w, dataclasses.replace(best, **{name: 0.0}))}
        for name in dataclasses.asdict(best)
        if getattr(best, name)
    }
    ablations["window 0"] = score(0, best)
    out = {
        "dev_turns": len(dev),
        "dev_novel_turns": sum(1 for g in golds if g),
        "train_turns": len(train),
        "signals_fit_s": fit_s,
        "code_defaults": baseline,
        "chosen": chosen,
        "without": ablations,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(json.dumps({k: out[k] for k in out if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
