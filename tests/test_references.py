"""References to items: ordinals, "last", pronouns and titles, on the real demo catalog."""

from __future__ import annotations

import pytest

from chatbot.understanding.mentions import MentionFinder
from chatbot.understanding.references import resolve_references
from retrieval.catalog import demo_catalog_path, load_catalog


@pytest.fixture(scope="module")
def catalog():
    items = load_catalog(demo_catalog_path()).items
    return {i.title: i for i in items}, MentionFinder.of(items)


@pytest.fixture(scope="module")
def shown(catalog):
    by_title, _ = catalog
    titles = ["Heat", "The Dark Knight", "Mad Max: Fury Road", "Inception", "Toy Story"]
    return [by_title[t].item_id for t in titles]


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("who directed the second one?", 1),
        ("the first", 0),
        ("tell me about the 3rd pick", 2),
        ("is the last one scary?", -1),
        ("number 2 please", 1),
        ("what about the fifth movie?", 4),
    ],
)
def test_ordinals_pick_from_the_items_shown_last(catalog, shown, text, position):
    refs = resolve_references(text, shown=shown, index=catalog[1])
    assert [(r.item_id, r.how) for r in refs] == [(shown[position], "ordinal")]


def test_a_named_title_wins_over_pronouns(catalog, shown):
    by_title, index = catalog
    refs = resolve_references("The Dark Knight, who is in it?", shown=shown, index=index)
    assert [(r.item_id, r.how) for r in refs] == [(by_title["The Dark Knight"].item_id, "title")]


def test_a_title_not_shown_still_resolves(catalog, shown):
    by_title, index = catalog
    refs = resolve_references("is Toy Story ok for kids?", shown=shown[:2], index=index)
    assert refs[0].item_id == by_title["Toy Story"].item_id


def test_pronouns_use_the_focus_then_a_single_pick(shown):
    assert resolve_references("is it scary?", shown=shown, focus=shown[3])[0].item_id == shown[3]
    one = resolve_references("why did you pick that?", shown=shown[:1])
    assert one[0].item_id == shown[0] and not one[0].ambiguous
    several = resolve_references("who is in that one?", shown=shown)
    assert several[0].item_id == shown[0] and several[0].ambiguous


def test_pronouns_fall_back_to_the_last_mentioned(shown):
    refs = resolve_references("what is it about?", mentioned=shown[:2])
    assert refs[0].item_id == shown[1]


def test_plurals_refer_to_several(shown):
    assert [r.item_id for r in resolve_references("I've seen both", shown=shown)] == shown[:2]
    assert len(resolve_references("seen them all", shown=shown)) == len(shown)


@pytest.mark.parametrize(
    "text",
    ["first, I want a comedy", "last night I saw a movie", "the first time I watched a western"],
)
def test_ordinal_words_that_are_not_references(shown, text):
    assert all(r.how != "ordinal" for r in resolve_references(text, shown=shown))


def test_nothing_in_play_resolves_nothing(catalog):
    assert resolve_references("what is it about?", index=catalog[1]) == []
    assert resolve_references("the second one", shown=[]) == []
