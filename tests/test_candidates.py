"""Hybrid candidate generation over a real Chroma index and the real embedder."""

from __future__ import annotations

import pytest

from retrieval.candidates import FusionWeights, fuse, generate_candidates, rank_signals
from retrieval.collab import CollabSignals
from retrieval.filters import matches_where
from retrieval.store import ItemStore
from retrieval.types import Item, Query

ROWS = [
    ("h1", "Heat", 1995, ["crime", "thriller"], "A master thief plans one last bank heist.", 80),
    ("h2", "Ronin", 1998, ["crime", "action"], "Mercenaries plan a heist to steal a case.", 50),
    ("h3", "The Town", 2010, ["crime"], "Bank robbers in Boston plan a violent heist.", 60),
    ("h4", "Inside Man", 2006, ["crime"], "A clever bank robber stages the perfect heist.", 55),
    (
        "h5",
        "Point Break",
        1991,
        ["crime", "action"],
        "An FBI agent joins surfing bank robbers.",
        45,
    ),
    ("a1", "Toy Story", 1995, ["animation"], "Toys come alive when their owner leaves.", 90),
    ("a2", "Up", 2009, ["animation"], "An old man flies his house away with balloons.", 85),
    ("a3", "Coco", 2017, ["animation"], "A boy who loves music visits the land of the dead.", 70),
    ("s1", "Alien", 1979, ["horror", "sci-fi"], "A spaceship crew is hunted by a creature.", 75),
    ("s2", "Interstellar", 2014, ["sci-fi"], "Astronauts travel through a wormhole.", 88),
    ("s3", "The Martian", 2015, ["sci-fi"], "An astronaut stranded on Mars grows potatoes.", 65),
    ("r1", "The Notebook", 2004, ["romance"], "A summer love story remembered for decades.", 58),
    ("r2", "Amelie", 2001, ["comedy", "romance"], "A shy waitress in Paris helps strangers.", 52),
    ("x1", "Scream", 1996, ["horror"], "A masked killer stalks teenagers in a small town.", 40),
]
ITEMS = [
    Item(
        i, t, f"{t}\n{d}\ngenres: {', '.join(g)}", {"year": y, "genres": g, "popularity": float(p)}
    )
    for i, t, y, g, d, p in ROWS
]
TITLES = {it.title: it.item_id for it in ITEMS}


class Turn:
    def __init__(self, mentioned: tuple[str, ...], gold: tuple[str, ...]) -> None:
        self.dialog_id, self.mentioned, self.gold = "d", mentioned, gold


@pytest.fixture(scope="module")
def store(tmp_path_factory, embedder) -> ItemStore:
    store = ItemStore(str(tmp_path_factory.mktemp("chroma")), "items", embedder)
    store.sync(ITEMS, progress=False)
    return store


@pytest.fixture(scope="module")
def collab() -> CollabSignals:
    turns = [
        Turn(("Heat",), ("Ronin",)),
        Turn(("Heat", "heist"), ("Ronin", "The Town")),
        Turn(("Up",), ("Coco",)),
    ]
    return CollabSignals.from_turns(turns, TITLES)


def ids(candidates) -> list[str]:
    return [c.item.item_id for c in candidates]


def test_cold_start_popularity_alone_returns_k(store: ItemStore, collab: CollabSignals) -> None:
    cold = generate_candidates(store, None, Query(""), k=5)
    assert ids(cold) == ["a1", "s2", "a2", "h1", "s1"]  # catalog popularity, best first
    assert all(set(c.signals) == {"popularity"} for c in cold)
    learned = generate_candidates(store, collab, Query("   "), k=5)
    assert ids(learned) == ["h2", "a3", "h3", "a1", "s2"]  # learned first, catalog fills in
    assert len(generate_candidates(store, None, Query(""), k=50)) == len(ITEMS)


def test_dense_signal_finds_the_described_item(store: ItemStore) -> None:
    [top, *_] = generate_candidates(store, None, Query("toys that come alive"), k=3)
    assert top.item.item_id == "a1" and "dense" in top.signals


def test_excluded_liked_and_mentioned_items_never_come_back(
    store: ItemStore, collab: CollabSignals
) -> None:
    query = Query(
        "bank heist",
        liked_ids=("h1",),
        mentioned_ids=("a2",),
        exclude_ids=frozenset({"h3"}),
    )
    found = generate_candidates(store, collab, query, k=len(ITEMS))
    assert not {"h1", "a2", "h3"} & set(ids(found))
    assert len(found) == len(ITEMS) - 3
    by_id = {c.item.item_id: c for c in found}
    assert {"dense", "liked", "cooc", "popularity"} <= set(by_id["h2"].signals)
    assert ids(found)[0] == "h2"  # co-recommended with Heat, and a heist film


def test_mentioned_items_seed_similarity_and_cooc_without_likes(
    store: ItemStore, collab: CollabSignals
) -> None:
    query = Query("", mentioned_ids=("h1",))  # "Heat" talked about, neither liked nor rejected
    weights = FusionWeights(dense=0.0, popularity=0.0)
    found = generate_candidates(store, collab, query, k=3, weights=weights)
    # The heist films most like Heat, and co-recommended with it.
    assert "h1" not in ids(found) and set(ids(found)[:2]) == {"h2", "h3"}
    assert all({"liked", "cooc"} <= set(c.signals) for c in found[:2])


def test_generate_is_rank_then_fuse(store: ItemStore, collab: CollabSignals) -> None:
    query = Query("bank heist", liked_ids=("h1",), mentioned_ids=("a2",), avoid_terms=("boston",))
    weights = FusionWeights(dense=0.5, liked=1.0, cooc=2.0, popularity=1.5)
    once = rank_signals(store, collab, query, depth=len(ITEMS))
    fused = fuse(once, weights, depth=5, avoid_terms=query.avoid_terms)[:5]
    assert fused == generate_candidates(store, collab, query, k=5, k_retrieve=5, weights=weights)


def test_where_applies_to_every_signal(store: ItemStore, collab: CollabSignals) -> None:
    where = {"$and": [{"year": {"$gte": 1990}}, {"genres": {"$not_contains": "horror"}}]}
    query = Query("scary space creature", liked_ids=("h1",), where=where)
    found = generate_candidates(store, collab, query, k=20)
    assert found and all(matches_where(c.item.metadata, where) for c in found)
    expected = {it.item_id for it in ITEMS if matches_where(it.metadata, where)} - {"h1"}
    assert set(ids(found)) == expected


def test_avoid_terms_halve_the_score(store: ItemStore) -> None:
    plain = generate_candidates(store, None, Query("bank robbers heist"), k=len(ITEMS))
    softer = generate_candidates(
        store, None, Query("bank robbers heist", avoid_terms=("VIOLENT",)), k=len(ITEMS)
    )
    before = {c.item.item_id: c for c in plain}
    after = {c.item.item_id: c for c in softer}
    assert after["h3"].score == pytest.approx(before["h3"].score * 0.5)
    assert after["h3"].signals["avoid"] == 0.5
    assert ids(softer).index("h3") > ids(plain).index("h3")
    assert all(after[i].score == before[i].score for i in before if i != "h3")


def test_mmr_diversifies_and_is_deterministic(store: ItemStore) -> None:
    query = Query("bank robbery heist crew")
    dense_only = FusionWeights(popularity=0.0)
    plain = generate_candidates(store, None, query, k=4, weights=dense_only)
    diverse = generate_candidates(store, None, query, k=4, weights=dense_only, diversity=0.8)
    heists = {i for i in TITLES.values() if i.startswith("h")}
    assert len(set(ids(plain)) & heists) == 4
    assert ids(diverse)[0] == ids(plain)[0] and ids(diverse) != ids(plain)
    assert len(diverse) == 4 and len(set(ids(diverse)) & heists) < 4
    again = generate_candidates(store, None, query, k=4, weights=dense_only, diversity=0.8)
    assert again == diverse


def test_weights_switch_signals_off(store: ItemStore, collab: CollabSignals) -> None:
    weights = FusionWeights(dense=1.0, liked=0.0, cooc=0.0, popularity=0.0)
    found = generate_candidates(store, collab, Query("astronaut"), k=3, weights=weights)
    assert all(set(c.signals) == {"dense"} for c in found)
    assert generate_candidates(store, collab, Query("x"), k=0) == []


def test_credits_signal_ranks_items_sharing_directors_and_leading_stars(tmp_path, embedder) -> None:
    def film(item_id, title, director, stars, popularity):
        meta = {"director": [director], "star": stars, "popularity": popularity}
        return Item(item_id, title, f"{title}, directed by {director}", meta)

    films = [
        film("h", "Heat", "Michael Mann", ["Al Pacino", "Robert De Niro"], 5.0),
        film("c", "Collateral", "Michael Mann", ["Tom Cruise"], 1.0),
        film("g", "The Godfather", "Francis Ford Coppola", ["Marlon Brando", "Al Pacino"], 3.0),
        film("t", "Taxi Driver", "Martin Scorsese", ["Robert De Niro"], 4.0),
        film("s", "Stardust", "M. Vaughn", ["A", "B", "C", "Robert De Niro"], 9.0),  # 4th star
        film("u", "Up", "Pete Docter", ["Ed Asner"], 8.0),
    ]
    store = ItemStore(str(tmp_path / "chroma"), "credits", embedder)
    store.sync(films, progress=False)
    only = FusionWeights(dense=0.0, liked=0.0, cooc=0.0, popularity=0.0, credits=1.0)
    ranked = rank_signals(store, None, Query("", liked_ids=("h",)), depth=10, weights=only)
    # Same director: 2 points; one shared leading star: 1 point, ties by popularity (t 4 > g 3).
    assert [it.item_id for it in ranked.ranked["credits"]] == ["c", "t", "g"]
    cands = generate_candidates(store, None, Query("", liked_ids=("h",)), k=3, weights=only)
    assert ids(cands) == ["c", "t", "g"] and all(set(c.signals) == {"credits"} for c in cands)
    # No liked or mentioned items: no credits signal at all.
    assert "credits" not in rank_signals(store, None, Query(""), depth=10, weights=only).ranked
    # A person the user asked for seeds it too (no liked item needed); a fourth star is not a
    # leading one, and equal points keep the popularity order (h 5 > t 4).
    asked = Query("anything with Robert De Niro?", liked_people=("person:robert de niro",))
    ranked = rank_signals(store, None, asked, depth=10, weights=only)
    assert [it.item_id for it in ranked.ranked["credits"]] == ["h", "t"]
    # Directed by (2 points) counts more than starring (1): h 2 + 1, c 2, t 1.
    both = ("person:michael mann", "person:robert de niro")
    ranked = rank_signals(store, None, Query("", liked_people=both), depth=10, weights=only)
    assert [it.item_id for it in ranked.ranked["credits"]] == ["h", "c", "t"]
