"""`recochat index --interactions FILE --interactions-format ratings-csv|ratings-jsonl|movielens`:
the import into a home (bad rows, unknown items, the id mapping), the chat's 👍/👎 joining
the logs, the CF signals in candidate fusion (weight 0 by default: today's RRF exactly)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.config import Settings
from chatbot.interaction_logs import index_interactions, kept_log_path
from chatbot.serving.feedback import FeedbackStore
from chatbot.turn import Recommender
from recochat.cli import build_parser
from retrieval.candidates import FusionWeights, generate_candidates
from retrieval.collab import CollabSignals
from retrieval.interaction_cf import InteractionCF
from retrieval.types import Query


@pytest.fixture()
def home(tmp_path: Path, demo_store) -> Settings:
    """A fresh home reading the shared demo index (its own CF model, feedback, rejects)."""
    return Settings(
        home=tmp_path / "home",
        retrieval={"chroma": demo_store.location, "collection": demo_store.collection},
    )


def by_title(demo_store) -> dict[str, str]:
    return {it.title: it.item_id for it in demo_store.all_items()}


def test_ratings_csv_import_counts_bad_rows_and_unknown_items(home, demo_store, tmp_path) -> None:
    ids = by_title(demo_store)
    log = tmp_path / "ratings.csv"
    log.write_text(
        "user,item,rating,timestamp\n"
        f"u1,{ids['Heat']},5,100\n"  # a catalog id
        "u1,The Dark Knight (2008),4.5,101\n"  # title + year, through the title matcher
        "u2,heat,4,102\n"  # a title without its year
        "u2,Not A Real Film (1901),4,103\n"  # unknown item
        "u3,,4,104\n"  # bad row: no item
        f"u3,{ids['Heat']},five,105\n",  # bad row: rating not a number
        encoding="utf-8",
    )
    items = demo_store.all_items()
    rejects = tmp_path / "rejects.jsonl"
    report = index_interactions(home, items, log, "ratings-csv", rejects=rejects)
    assert report is not None
    assert (report.from_log, report.from_feedback) == (3, 0)
    assert report.counts["bad_row"] == 2 and report.counts["unknown_item"] == 1
    lines = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3 and any("Not A Real Film" in r["raw"] for r in lines)
    assert "2 bad rows and 1 unknown items" in report.summary()
    model = InteractionCF.load(home.interactions_path)  # written atomically into the home
    assert model.popularity() == {ids["Heat"]: 2.0, ids["The Dark Knight"]: 1.0}
    kept = kept_log_path(home).read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)[:2] for line in kept] == [
        ["u1", ids["Heat"]],
        ["u1", ids["The Dark Knight"]],
        ["u2", ids["Heat"]],
    ]


def test_jsonl_keys_items_by_a_catalog_field(home, demo_store, tmp_path) -> None:
    """`--interactions-key FIELD`: the log names items by a catalog metadata field's values."""
    items = demo_store.all_items()
    rated = sorted((it for it in items if it.metadata.get("rating")), key=lambda it: it.item_id)
    field_value = str(rated[0].metadata["rating"])  # e.g. "R": keys every first such item
    log = tmp_path / "log.jsonl"
    rows = [{"user": "a", "item": field_value}, {"user": "b", "item": rated[0].item_id}, "oops"]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    report = index_interactions(home, items, log, "ratings-jsonl", key_field="rating")
    assert report is not None and report.from_log == 2 and report.counts["bad_row"] == 1
    first_with_value = next(it for it in items if it.metadata.get("rating") == field_value)
    assert set(InteractionCF.load(home.interactions_path).popularity()) == {
        first_with_value.item_id,
        rated[0].item_id,
    }


def test_the_chats_thumbs_feed_the_cf_fit(home, demo_store, tmp_path) -> None:
    ids = by_title(demo_store)
    assert index_interactions(home, demo_store.all_items()) is None  # nothing to learn from
    home.home.mkdir(parents=True)
    with FeedbackStore(home.feedback_db) as fb:
        for n in range(5):
            fb.record(f"s{n}", ids["Heat"], "Heat", "up", ["a heist film"])
            fb.record(f"s{n}", ids["The Dark Knight"], "The Dark Knight", "up", ["a heist film"])
            fb.record(f"s{n}", ids["Toy Story"], "Toy Story", "down", ["a heist film"])
    report = index_interactions(home, demo_store.all_items())
    assert report is not None and (report.from_log, report.from_feedback) == (0, 15)
    model = InteractionCF.load(home.interactions_path)
    assert model.related([ids["Heat"]], k=1)[0][0] == ids["The Dark Knight"]
    assert ids["Toy Story"] not in model.popularity()  # a 👎 is never a positive
    # Served: with the CF signal weighted, the Recommender loads the model once and uses it.
    settings = home.model_copy(
        update={"retrieval": home.retrieval.model_copy(update={"interactions_weight": 1.0})}
    )
    rec = Recommender(settings, demo_store, None, None)
    assert rec.cf is not None and rec.ranker is None
    prep = rec.prepare_context(["I loved Heat"], k=10)
    ranked = [c for c in prep.candidates if "interactions" in c.signals]
    assert ranked and ranked[0].item.item_id == ids["The Dark Knight"]


def test_cf_signals_at_weight_zero_leave_todays_fusion_unchanged(demo_store, tmp_path) -> None:
    """The RRF fallback: default weights (interactions 0, rated 0) ignore a CF model."""
    ids = by_title(demo_store)
    logs = [(f"u{n}", ids["Heat"]) for n in range(4)] + [(f"u{n}", ids["Up"]) for n in range(4)]
    from retrieval.interaction_cf import fit_cf
    from retrieval.interactions import Interaction

    cf = fit_cf([Interaction(u, i, 4.0) for u, i in logs])
    collab = CollabSignals.from_catalog(demo_store.all_items())
    query = Query(text="a tense crime thriller", mentioned_ids=(ids["Heat"],))
    today = generate_candidates(demo_store, collab, query, k=20)
    assert generate_candidates(demo_store, collab, query, k=20, cf=cf) == today
    weighted = generate_candidates(
        demo_store, collab, query, k=20, cf=cf, weights=FusionWeights(interactions=5.0, rated=5.0)
    )
    assert weighted[0].item.item_id == ids["Up"]
    assert {"interactions", "rated"} <= set(weighted[0].signals)


def test_index_cli_accepts_the_rating_formats_and_keeps_the_dialogue_ones() -> None:
    parser = build_parser()
    args = parser.parse_args(
        [
            "index",
            "--catalog",
            "demo",
            "--interactions",
            "ml/ratings.csv",
            "--interactions-format",
            "movielens",
            "--links",
            "ml/links.csv",
            "--movies",
            "ml/movies.csv",
            "--interactions-key",
            "imdb_id",
        ]
    )
    assert (args.interactions_format, args.links, args.interactions_key) == (
        "movielens",
        "ml/links.csv",
        "imdb_id",
    )
    for fmt in ("jsonl", "redial", "opendialkg", "ratings-csv", "ratings-jsonl"):
        assert parser.parse_args(["index", "--catalog", "demo", "--interactions-format", fmt])
