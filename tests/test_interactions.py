"""Interaction logs: import with bad rows and unknown items, id mapping, CF from logs and feedback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.serving.feedback import FeedbackStore
from retrieval.errors import RetrievalError
from retrieval.interaction_cf import CF_METHODS, CFParams, InteractionCF, fit_cf
from retrieval.interactions import (
    InteractionError,
    ItemKeys,
    interactions_from_feedback,
    load_interactions,
    load_movielens,
)
from retrieval.titles import TitleIndex
from retrieval.types import Item

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def catalog() -> list[Item]:
    def film(item_id: str, title: str, year: int, imdb: str) -> Item:
        return Item(item_id, title, title, {"year": year, "imdb_id": imdb})

    return [
        film("1", "The American President (1995)", 1995, "tt0112346"),
        film("2", "Heat (1995)", 1995, "tt0113277"),
        film("3", "Heat (1986)", 1986, "tt0091159"),
        film("4", "Toy Story (1995)", 1995, "tt0114709"),
        film("5", "Jumanji (1995)", 1995, "tt0113497"),
    ]


def keys() -> ItemKeys:
    items = catalog()
    return ItemKeys.from_items(items, field="imdb_id", title_lookup=TitleIndex(items).lookup)


def test_csv_keys_by_id_field_and_title_with_year(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "user,item,rating,timestamp\n"
        "u1,2,4.5,100\n"  # catalog id
        "u1,tt0114709,3,101\n"  # imdb_id field
        'u2,"American President, The (1995)",5,102\n'  # MovieLens title style
        "u2,Heat (1986),2,103\n"  # the year picks the 1986 film
        "u3,Toy Story,,\n",  # no rating, no timestamp: implicit
        encoding="utf-8",
    )
    load = load_interactions(log, keys())
    assert [(x.user, x.item_id, x.rating) for x in load.interactions] == [
        ("u1", "2", 4.5),
        ("u1", "4", 3.0),
        ("u2", "1", 5.0),
        ("u2", "3", 2.0),
        ("u3", "4", None),
    ]
    assert load.counts["loaded"] == 5 and not load.rejects


def test_bad_rows_and_unknown_items_are_counted_and_written_never_fatal(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        "userId,movieId,rating,timestamp\n"
        "u1,2,4,1\n"
        ",2,4,1\n"  # no user
        "u1,,4,1\n"  # no item
        "u1,2,lots,1\n"  # rating not a number
        "u1,2,nan,1\n"  # rating not finite
        "u1,2,4\n"  # too few cells
        "u1,Nowhere Movie (2001),4,1\n"  # unknown title
        "u1,tt9999999,4,1\n"  # unknown imdb id
        "u2,5,1,2\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.jsonl"
    load = load_interactions(log, keys(), rejects_path=rejects)
    assert [x.item_id for x in load.interactions] == ["2", "5"]
    assert load.counts["bad_row"] == 5 and load.counts["unknown_item"] == 2
    assert load.counts["rows"] == 9
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(written) == 7
    assert any("not in the catalog" in r["reason"] for r in written)
    assert any("rating must be a number" in r["reason"] for r in written)


def test_jsonl_log_with_broken_lines(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        '{"user": "a", "item": "Jumanji (1995)", "rating": 4}\n'
        "{not json\n"
        '["a list"]\n'
        '{"user": "b", "item_id": "4", "ts": 5}\n',
        encoding="utf-8",
    )
    load = load_interactions(log, keys())
    assert [(x.user, x.item_id, x.timestamp) for x in load.interactions] == [
        ("a", "5", None),
        ("b", "4", 5.0),
    ]
    assert load.counts["bad_row"] == 2


def test_unreadable_files_raise_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InteractionError, match="not found"):
        load_interactions(tmp_path / "missing.csv", keys())
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(InteractionError, match="empty"):
        load_interactions(tmp_path / "empty.csv", keys())
    (tmp_path / "nouser.csv").write_text("item,rating\n2,4\n")
    with pytest.raises(InteractionError, match="no user column"):
        load_interactions(tmp_path / "nouser.csv", keys())


def test_movielens_importer_maps_links_to_imdb_and_falls_back_to_titles(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,9\n1,2,3.5,9\n2,11,5.0,9\n2,99,4.0,9\n2,7,1,9\n"
    )
    (tmp_path / "links.csv").write_text(
        "movieId,imdbId,tmdbId\n1,0114709,862\n2,0113497,8844\n11,0000001,1\n7,0000002,\n"
    )
    (tmp_path / "movies.csv").write_text(
        'movieId,title,genres\n11,"American President, The (1995)",Comedy\n7,Nope (1900),X\n'
    )
    load = load_movielens(
        tmp_path / "ratings.csv", tmp_path / "links.csv", keys(), movies=tmp_path / "movies.csv"
    )
    # movieId 1 and 2 by "tt" + 7-digit imdb id; 11's imdb id is unknown but its title matches.
    assert [(x.user, x.item_id) for x in load.interactions] == [("1", "4"), ("1", "5"), ("2", "1")]
    assert load.counts["unknown_item"] == 2


def interactions_of(groups: dict[str, list[str]]):
    from retrieval.interactions import Interaction

    return [Interaction(u, i, 4.0) for u, items in groups.items() for i in items]


@pytest.mark.parametrize("method", CF_METHODS)
def test_every_cf_method_learns_co_liked_items_and_round_trips(tmp_path: Path, method) -> None:
    # Two taste groups: {1, 2, 3} and {4, 5, 6}; item 7 is liked by one user of each.
    users = {f"a{n}": ["1", "2", "3"] for n in range(20)}
    users |= {f"b{n}": ["4", "5", "6"] for n in range(20)}
    users["a0"].append("7")
    users["b0"].append("7")
    params = CFParams(method=method, factors=8, iterations=50, l2=1.0, regularization=0.01)
    model = fit_cf(interactions_of(users), params)
    top = [i for i, _ in model.related(["1"], k=2)]
    assert set(top) == {"2", "3"}, top
    assert [i for i, _ in model.popular(k=6)][:3] == ["1", "2", "3"]  # counts, ties by id
    path = tmp_path / "home" / "interaction-cf.npz"
    model.save(path)
    assert not path.with_name(path.name + ".tmp").exists()
    again = InteractionCF.load(path)
    assert again.related(["1"], k=3, exclude=["2"]) == model.related(["1"], k=3, exclude=["2"])


def test_a_bad_model_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RetrievalError, match="not found"):
        InteractionCF.load(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(RetrievalError, match="rebuild"):
        InteractionCF.load(tmp_path / "bad.npz")


def test_cf_learns_from_the_feedback_store(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    for n in range(6):
        session = f"s{n}"
        store.record(session, "m1", "Heat", "up", ["I loved crime films"])
        store.record(session, "m2", "Collateral", "up", ["I loved crime films"])
        store.record(session, "m3", "Cars", "down", ["I loved crime films"])
        store.record(session, "m3", "Cars", "up" if n == 0 else "down", ["more"])
    interactions = interactions_from_feedback(store.rows())
    store.close()
    assert len(interactions) == 18  # one per (session, item): the latest signal wins
    model = fit_cf(interactions, CFParams(method="itemknn", shrink=0.0))
    assert model.related(["m1"], k=1)[0][0] == "m2"
    # 👎 is never a positive: m3 has the one session's late 👍 only.
    assert model.popularity() == {"m1": 6.0, "m2": 6.0, "m3": 1.0}


@pytest.mark.skipif(not (SHARED / "movielens").is_dir(), reason="shared MovieLens data absent")
def test_movielens_small_maps_onto_the_redial_catalog() -> None:
    from retrieval.catalog import load_catalog

    items = load_catalog(SHARED / "redial" / "id2info.json", "redial").items
    ml = SHARED / "movielens"
    # The ReDial reader keeps imdb_id in the metadata: the links map through it.
    found = ItemKeys.from_items(items, field="imdb_id", title_lookup=TitleIndex(items).lookup)
    load = load_movielens(ml / "ratings.csv", ml / "links.csv", found, movies=ml / "movies.csv")
    assert load.counts["rows"] == 100_836
    assert len({x.item_id for x in load.interactions}) > 4_000
