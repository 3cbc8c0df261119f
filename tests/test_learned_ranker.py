"""The learned ranker: fit, save, load and serve on a small synthetic set; the RRF fallback."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from finetune.ranker_fit import Groups, fit_ranker
from retrieval.errors import RetrievalError
from retrieval.interaction_cf import CFParams, fit_cf
from retrieval.interactions import Interaction
from retrieval.learned_ranker import LearnedRanker, rank_pool
from retrieval.ranking_features import (
    FEATURES,
    CatalogFacts,
    build_features,
    rrf_order,
    turn_signals,
    weighted_rrf,
)
from retrieval.types import Query

DEPTH = 30
WEIGHTS = {"liked": 1.0, "popularity": 1.0, "interactions": 0.2, "rated": 1.0}


@pytest.fixture(scope="module")
def world(demo_store):
    """Item pairs (seed -> partner) that the same users like, plus noise, over the demo catalog.
    A turn mentions the seed; its gold item is the partner."""
    rng = random.Random(0)
    facts = CatalogFacts.from_store(demo_store)
    ids = sorted(facts.index)
    rng.shuffle(ids)
    pairs = list(zip(ids[:80:2], ids[1:80:2], strict=True))
    logs = []
    for n, (seed, partner) in enumerate(pairs):
        for u in range(12):
            user = f"p{n}-{u}"
            liked = [seed, partner, *rng.sample(ids, 3)]
            logs += [Interaction(user, i, 4.0) for i in liked]
    cf = fit_cf(logs, CFParams(method="itemknn"))
    return facts, cf, pairs


def groups_of(store, facts, cf, pairs) -> tuple[Groups, list]:
    rows, labels, sizes, turns = [], [], [], []
    for seed, partner in pairs:
        query = Query(text="", mentioned_ids=(seed,))
        signals = turn_signals(store, None, cf, query, depth=DEPTH, facts=facts)
        pool, x = build_features(signals, facts, "", depth=DEPTH, weights=WEIGHTS)
        rows.append(x)
        labels.append(np.array([i == partner for i in pool], dtype=np.float32))
        sizes.append(len(pool))
        turns.append((signals, partner))
    return Groups(np.concatenate(rows), np.concatenate(labels), sizes), turns


def test_fit_then_serve_round_trip(demo_store, world, tmp_path: Path) -> None:
    facts, cf, pairs = world
    train, _ = groups_of(demo_store, facts, cf, pairs[:28])
    dev, held_out = groups_of(demo_store, facts, cf, pairs[28:])
    ranker, report = fit_ranker(
        train,
        dev,
        depth=DEPTH,
        weights=WEIGHTS,
        rounds=60,
        patience=20,
        params={"min_data_in_leaf": 5, "num_threads": 1},
    )
    assert report["rounds"] >= 1 and report["train_turns"] == 28
    ranker.save(tmp_path / "ranker")
    assert sorted(p.name for p in (tmp_path / "ranker").iterdir()) == ["model.txt", "ranker.json"]
    served = LearnedRanker.load(tmp_path / "ranker")
    hits = 0
    for signals, partner in held_out:
        fresh = rank_pool(ranker, signals, facts, "", weights=WEIGHTS)
        loaded = rank_pool(served, signals, facts, "", weights=WEIGHTS)
        assert fresh == loaded
        hits += partner in loaded[:3]
    # The co-liked partner comes out on top for held-out seeds (the model learned the signal).
    assert hits >= 0.8 * len(held_out)
    importances = served.importances()
    assert set(importances) == set(FEATURES)
    assert max(importances, key=importances.get) in {"rank_interactions", "cf", "n_signals"}


def test_without_a_ranker_the_pool_is_ordered_by_weighted_rrf(demo_store, world) -> None:
    facts, cf, pairs = world
    seed, _ = pairs[0]
    signals = turn_signals(
        demo_store, None, cf, Query("", mentioned_ids=(seed,)), depth=DEPTH, facts=facts
    )
    order = rank_pool(None, signals, facts, "", weights=WEIGHTS, depth=DEPTH)
    assert order == rrf_order(weighted_rrf(signals.ranked, WEIGHTS, DEPTH))
    assert seed not in order  # mentioned items are never candidates
    # Weighted RRF: an item first in two signals beats one first in a single signal.
    assert weighted_rrf({"a": ["x", "y"], "b": ["x"]}, {"a": 1.0, "b": 1.0}, 10) == {
        "x": pytest.approx(2 / 61),
        "y": pytest.approx(1 / 62),
    }


def test_a_missing_or_mismatched_ranker_is_refused(world, tmp_path: Path) -> None:
    with pytest.raises(RetrievalError, match="fit-ranker"):
        LearnedRanker.load(tmp_path / "nothing")
    facts, cf, pairs = world
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "model.txt").write_text("tree\n")
    (folder / "ranker.json").write_text(json.dumps({"features": ["a"], "depth": 1, "weights": {}}))
    with pytest.raises(RetrievalError):
        LearnedRanker.load(folder)


def test_fit_from_dialogues_fits_on_train_and_stops_on_dev(demo_home, demo_store, tmp_path) -> None:
    """What `recochat fit-ranker --dialogues FILE --out DIR` runs, over the indexed demo home."""
    from chatbot.config import Settings
    from finetune.ranker_fit import fit_from_dialogues

    items = sorted(demo_store.all_items(), key=lambda it: it.item_id)[:120]
    lines = []
    for n in range(60):
        seen, gold = items[2 * (n % 20)], items[2 * (n % 20) + 1]  # each pair 3 times
        lines.append(
            {
                "dialog_id": f"d{n}",
                "source": "test",
                "turns": [
                    {"role": "user", "text": f"I loved {seen.title}", "mentioned": [seen.title]},
                    {
                        "role": "assistant",
                        "text": f"Try {gold.title}.",
                        "recommended": [{"item_id": gold.item_id, "title": gold.title}],
                    },
                ],
            }
        )
    path = tmp_path / "dialogues.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    settings = Settings(home=demo_home)
    report = fit_from_dialogues(
        settings, path, "jsonl", tmp_path / "ranker", weights=WEIGHTS, depth=DEPTH
    )
    assert report["train_turns"] > 0 and report["rounds"] >= 0
    assert LearnedRanker.load(tmp_path / "ranker").depth == DEPTH


def test_a_fitted_ranker_is_served_by_the_recommender_through_the_config(
    demo_store, world, tmp_path: Path
) -> None:
    """fit → save → `retrieval.ranker = DIR` → the Recommender loads it once and ranks the
    widened pool with it; unset, the same turn is ranked by weighted RRF (the fallback)."""
    from chatbot.config import Settings
    from chatbot.turn import Recommender
    from retrieval.candidates import FusionWeights, generate_candidates

    facts, cf, pairs = world
    train, _ = groups_of(demo_store, facts, cf, pairs[:28])
    dev, _ = groups_of(demo_store, facts, cf, pairs[28:])
    ranker, _ = fit_ranker(
        train,
        dev,
        depth=DEPTH,
        weights=WEIGHTS,
        rounds=60,
        patience=20,
        params={"min_data_in_leaf": 5, "num_threads": 1},
    )
    ranker.save(tmp_path / "ranker")
    common = {"chroma": demo_store.location, "collection": demo_store.collection}
    settings = Settings(home=tmp_path / "home", retrieval={**common, "ranker": tmp_path / "ranker"})
    cf.save(settings.interactions_path)  # the home's CF model, as `recochat index` writes it
    rec = Recommender(settings, demo_store, None, None)
    assert rec.ranker is not None and rec.cf is not None  # loaded once, with the process
    titles = {it.item_id: it.title for it in demo_store.all_items()}
    hits = 0
    for seed, partner in pairs[28:]:
        prep = rec.prepare_context([f"Have you seen {titles[seed]}?"], k=20)
        ranked = [c.item.item_id for c in prep.candidates]
        assert seed not in ranked and len(ranked) == 20
        hits += partner in ranked[:3]
    assert hits >= 0.7 * len(pairs[28:])  # the learned co-liked signal is what is served

    plain = Settings(home=tmp_path / "plain", retrieval=common)
    fallback = Recommender(plain, demo_store, None, None)
    assert fallback.ranker is None and fallback.cf is None
    context = [f"Have you seen {titles[pairs[28][0]]}?"]
    prep = fallback.prepare_context(context, k=20)
    query = fallback.state_from_context(context).to_query(fallback.catalog()[1])
    today = generate_candidates(
        demo_store, fallback.collab, query, k=20, weights=FusionWeights(), k_retrieve=100
    )
    assert [c.item.item_id for c in prep.candidates] == [c.item.item_id for c in today]
