"""The ReDial dev split the tuning benchmarks share: catalog index, train signals, dev turns.

`benchmarks/tune_retrieval.py`, `gold_coverage.py`, `rerank_headroom.py` and
`rerank_prior_sweep.py` choose settings on these turns. Same data, catalog index and
protocol as `recochat eval --dataset redial --split dev --systems retrieval`: collaborative
signals come from the train split of `valid_data_processed.jsonl`, metrics are the novel
protocol on the dev split. Test turns are dropped right after loading and never looked at.
The catalog collection is named by `evaluation.cli.catalog_key`, so a home where the eval
already indexed ReDial is reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from evaluation.datasets import DATASETS, DEFAULT_DATA_DIR
from evaluation.protocol import EvalTurn, resolve_turn, sample_by_dialogue
from retrieval.candidates import FusionWeights, SignalRankings, rank_signals

log = logging.getLogger(__name__)

DEPTH = 400  # items ranked per signal: the largest k_retrieve the tuning grid tries


@dataclasses.dataclass
class DevSetup:
    settings: Any  # the current settings, pointed at the ReDial catalog's collection
    store: Any
    collab: Any  # learnt from the train split only
    titles: Any
    dev: list  # dev RecTurns (the sample asked for)


@dataclasses.dataclass
class RankedTurn:
    eval_turn: EvalTurn
    rankings: SignalRankings  # the current query
    previous: SignalRankings  # liked-only seeds (the query before mentioned titles seeded)
    avoid: tuple[str, ...]


def dev_options(ap: argparse.ArgumentParser, json_help: str) -> argparse.Namespace:
    """Parse the options every dev-split benchmark shares (after the script's own)."""
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="shared datasets")
    ap.add_argument("--limit", type=int, default=0, help="dev turns sampled by dialogue; 0 = all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help=json_help)
    return ap.parse_args()


def data_ready(data_dir: Path) -> bool:
    """Quiet logging (progress of this module kept), and whether the shared ReDial data is there (an error line if not)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).setLevel(logging.INFO)  # progress of the dev-turn ranking
    found = (Path(data_dir) / "redial").is_dir()
    if not found:
        print(
            f"error: {Path(data_dir) / 'redial'} not found: pass --data-dir (the shared datasets)"
        )
    return found


def setup(data_dir: Path, limit: int | None, seed: int) -> DevSetup:
    """The ReDial catalog index, train-split collaborative signals and the dev turns."""
    from chatbot.config import load_settings
    from chatbot.indexing import field_map, open_store
    from dialogues.importers import load_rec_turns
    from dialogues.split import split_of
    from evaluation.cli import catalog_key
    from retrieval.catalog import load_catalog
    from retrieval.collab import CollabSignals
    from retrieval.titles import TitleIndex

    redial = DATASETS["redial"]
    catalog_path, dialogues = Path(data_dir) / redial.catalog, Path(data_dir) / redial.dialogues
    base = load_settings()
    fmap = field_map(base)
    collection = catalog_key(catalog_path, redial.catalog_format, fmap, base.retrieval.embedder)
    settings = load_settings({"retrieval.collection": collection})
    items = load_catalog(catalog_path, redial.catalog_format, fmap).items
    titles = TitleIndex(items)

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


def rank_dev_turns(dev: DevSetup, depth: int = DEPTH) -> list[RankedTurn]:
    """Each dev turn replayed into a `DialogueState` once, every signal ranked once (`depth`)."""
    from chatbot.turn import Recommender

    rec = Recommender(dev.settings, dev.store, None, dev.collab)
    _, schema = rec.catalog()
    no_dense_pop = FusionWeights(dense=0.0, popularity=0.0, credits=0.0)
    out = []
    t0 = time.perf_counter()
    for n, turn in enumerate(dev.dev, 1):
        query = rec.state_from_context(list(turn.context)).to_query(schema)
        rankings = rank_signals(dev.store, dev.collab, query, depth=depth)
        old_query = dataclasses.replace(query, mentioned_ids=())
        old = rank_signals(dev.store, dev.collab, old_query, depth=depth, weights=no_dense_pop)
        previous = SignalRankings(
            {k: v for k, v in rankings.ranked.items() if k not in ("liked", "cooc", "credits")}
            | old.ranked
        )
        out.append(
            RankedTurn(resolve_turn(turn, dev.titles), rankings, previous, query.avoid_terms)
        )
        if n % 50 == 0:
            log.info("ranked %d/%d turns (%.0fs)", n, len(dev.dev), time.perf_counter() - t0)
    return out


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
