"""Dialogue understanding: titles, sentiment, constraints, and state across turns."""

from __future__ import annotations

import pytest

from chatbot.understanding.constraints import (
    CatalogSchema,
    Constraints,
    to_where,
    update_constraints,
)
from chatbot.understanding.mentions import MentionFinder
from chatbot.understanding.state import DialogueState
from retrieval.types import Item

ITEMS = [
    Item("1", "Heat", "", {"year": 1995, "genres": ["crime", "thriller"], "popularity": 80}),
    Item("2", "Up", "", {"year": 2009, "genres": ["animation", "family"]}),
    Item("3", "The Babadook (2014)", "", {"genres": ["horror"]}),
    Item("4", "The Dark Knight", "", {"year": 2008, "genres": ["action", "crime"]}),
    Item("5", "Heat", "", {"year": 1986, "genres": ["action"], "popularity": 5}),
    Item("6", "Scary Movie", "", {"year": 2000, "genres": ["comedy"]}),
    Item("7", "Love Story", "", {"year": 1986, "genres": ["romance"]}),
    Item("8", "Toy Story", "", {"year": 1995, "genres": ["animation"]}),
]
SCHEMA = CatalogSchema(
    genres=frozenset({"crime", "thriller", "horror", "animation", "family", "comedy", "sci-fi"}),
    rating_field="rating",
    numeric_fields=frozenset({"year", "runtime_min"}),
)


@pytest.fixture()
def index():
    return MentionFinder.of(ITEMS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("something like Heat but less violent", [("1", "liked")]),
        ("Heat (1986) was boring", [("5", "rejected")]),
        ("a good horror movie like The Babadook (2014)", [("3", "liked")]),
        ("I didn't like The Dark Knight", [("4", "rejected")]),
        ("I've seen Heat already", [("1", "rejected")]),
        ("I loved Up! Great film", [("2", "liked")]),
        ("it was up to you, the heat is on", []),  # common words are not titles
        ("Up is great", []),  # a one-word common title at sentence start is ambiguous
        # Lowercase requests that happen to be titles are not mentions...
        ("I want a scary movie", []),
        ("something like a love story", []),
        ("a good scary movie please", []),
        ("love story movies for tonight", []),
        # ...but written as a title, with a year or after a cue, they are.
        ("Scary Movie was hilarious", [("6", "liked")]),
        ("scary movie (2000) please", [("6", "liked")]),
        ("I loved scary movie", [("6", "liked")]),
        ("toy story is great", [("8", "liked")]),
        ("Love story! I am in", []),  # an interjection opening the sentence
        ("Love Story! I loved it", [("7", "liked")]),  # ...not when written as a title
        ("love story comedies please", []),  # followed by a kind of film
        # A one-word title opening a longer capitalised name is part of that name.
        ("anything with Heat Miser in it", []),
        ("I loved Heat I think", [("1", "liked")]),
        ("I like Heat Movie", [("1", "liked")]),  # a media noun is not a name
        ("loved up 2009 so much", [("2", "liked")]),  # its year backs a common word...
        ("prices went up 2017 to 2018", []),  # ...another year does not
    ],
)
def test_title_mentions_and_sentiment(index, text, expected):
    assert [(m.item_id, m.sentiment) for m in index.find(text)] == expected


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("something like Heat but less violent, after 2000", ["from 2001", "less violent"]),
        ("a funny animated movie for kids", ["only comedy", "only animation", "for kids"]),
        ("a mind-bending sci-fi film, no horror", ["only sci-fi", "no horror"]),
        (
            "90s comedies under 2 hours",
            ["only comedy", "from 1990", "up to 1999", "runtime_min <= 120"],
        ),
        ("not into horror or thrillers", ["no horror", "no thriller"]),
        ("between 1980 and 1990", ["from 1980", "up to 1990"]),
        ("made before 1970 please", ["up to 1969"]),
        ("since 2010", ["from 2010"]),
    ],
)
def test_constraints_from_words(text, labels):
    assert update_constraints(Constraints(), text, SCHEMA).labels() == labels


# A catalog with everyday words among its genres, as OpenDialKG's (1,043 genres).
RICH = CatalogSchema(genres=frozenset({"comedy", "war", "love", "film", "car", "cyberpunk"}))


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("I love Tom Hanks", []),  # the verb is not the genre "love"
        ("I love that film", []),
        ("love stories please", ["only love"]),
        ("a film with Tom Cruise", []),  # a genre named "Film" says nothing
        ("my car broke down, any ideas?", []),
        ("car movies", ["only car"]),
        ("I like cyberpunk", []),  # a catalog-specific genre needs a media noun...
        ("cyberpunk novels", ["only cyberpunk"]),  # ...to become a hard filter
        ("war films", ["only war"]),
        ("I loved Star Wars", []),
        ("something funny", ["only comedy"]),  # the usual genres stand alone
    ],
)
def test_everyday_words_are_not_genre_filters(text, labels):
    assert update_constraints(Constraints(), text, RICH).labels() == labels


def test_a_titles_words_are_not_constraints(index):
    state = DialogueState("s1")
    state.add_user("I loved Scary Movie", index, SCHEMA)  # a comedy, no horror filter
    assert state.liked == ["6"] and state.constraints.labels() == []
    state.add_user("a scary movie please", index, SCHEMA)  # said as a request, it is one
    assert state.constraints.labels() == ["only horror"]


def test_constraints_become_chroma_filter():
    c = update_constraints(Constraints(), "sci-fi after 2000 but no horror, for kids", SCHEMA)
    assert to_where(c, SCHEMA) == {
        "$and": [
            {"genres": {"$contains": "sci-fi"}},
            {"genres": {"$not_contains": "horror"}},
            {"year": {"$gte": 2001}},
            {"rating": {"$in": ["G", "PG", "TV-Y", "TV-G", "TV-Y7"]}},
            {"genres": {"$not_contains": "horror"}},
        ]
    }
    assert to_where(Constraints(), SCHEMA) is None


def test_removing_a_filter():
    c = update_constraints(Constraints(), "no horror after 2000", SCHEMA)
    assert c.remove("no horror") and c.labels() == ["from 2001"]
    assert not c.remove("no such filter")


def test_state_accumulates_across_turns(index):
    state = DialogueState("s1")
    state.add_user("something like Heat, after 2000", index, SCHEMA)
    state.add_assistant("Try these", shown=["4"])
    state.add_user("no horror please, and I didn't like The Dark Knight", index, SCHEMA)
    assert state.liked == ["1"] and state.rejected == ["4"]
    assert state.constraints.labels() == ["no horror", "from 2001"]
    query = state.to_query(SCHEMA)
    assert {"1", "4"} <= query.exclude_ids  # mentioned and rejected are never recommended
    assert query.liked_ids == ("1",)
    state.add_user("seen those, something else", index, SCHEMA)
    assert "4" in state.rejected


def test_mentioned_titles_seed_the_query_unless_rejected(index):
    state = DialogueState("s1")
    state.add_user("I haven't seen Up. Something like Heat", index, SCHEMA)
    state.add_user("I didn't like The Dark Knight", index, SCHEMA)
    query = state.to_query(SCHEMA)
    assert query.liked_ids == ("1",) and query.mentioned_ids == ("2", "1")
    # When mentioned items may come back (raw replay), they are not passed as seeds.
    assert state.to_query(SCHEMA, exclude_mentioned=False).mentioned_ids == ()


def test_state_round_trips_through_json(index):
    state = DialogueState("s1")
    state.add_user("like Heat but no horror", index, SCHEMA)
    state.feedback("2", positive=False)
    again = DialogueState.from_dict(state.to_dict())
    assert again == state


def test_history_is_capped(index):
    state = DialogueState("s1")
    for i in range(500):
        state.add_user(f"message {i}", index, SCHEMA, max_history=40)
    assert len(state.history) == 40 and state.history[-1] == ("user", "message 499")
