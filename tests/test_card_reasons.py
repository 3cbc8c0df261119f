"""Card reasons from the item's own record: extractive, true, linked, five different shapes."""

from __future__ import annotations

import pytest

from chatbot.reply.card_reasons import card_reasons, reason_shapes, relevant_sentence, trim
from chatbot.reply.credit_links import find_link
from chatbot.reply.reason_checks import unsupported_claims
from prompts.errors import PromptError
from retrieval.catalog import demo_catalog_path, load_catalog
from retrieval.types import Item

PICKS = ["Collateral", "The Town", "Inception", "The Dark Knight", "Mad Max: Fury Road"]


@pytest.fixture(scope="module")
def demo_items():
    return {it.title: it for it in load_catalog(demo_catalog_path()).items}


@pytest.fixture(scope="module")
def turn(demo_items):
    seeds = [demo_items["Heat"]]
    items = [demo_items[t] for t in PICKS]
    words = "a tense heist movie like Heat"
    links = [find_link(it, seeds, None) for it in items]
    return items, words, links, seeds


def test_five_reasons_never_share_a_shape(turn):
    items, words, links, _ = turn
    reasons = card_reasons(items, words, links)
    assert len({r.shape for r in reasons}) == 5
    openings = {" ".join(r.text.split()[:2]) for r in reasons}
    assert len(openings) == 5  # they read differently too


def test_reasons_are_true_to_the_record(turn):
    items, words, links, seeds = turn
    support = " ".join([words, *(s.facts_text(max_list=50) for s in seeds)])
    for item, reason in zip(items, card_reasons(items, words, links), strict=True):
        claims = unsupported_claims(reason.text, item, support)
        # a genre the record lists is true; the checker misreads hyphenated ones (below)
        assert [c for c in claims if c.lower() not in item.genres] == []


def test_the_checker_accepts_a_hyphenated_genre_the_record_lists(demo_items):
    item = demo_items["Inception"]
    assert "sci-fi" in item.genres
    assert unsupported_claims("A sci-fi film.", item, "") == []
    assert unsupported_claims("A horror film.", item, "") == ["horror"]


def test_the_checker_accepts_a_number_with_thousands_commas_from_the_record():
    item = Item(item_id="x", title="Gold", text="A crew of 1,600 men digs for $100,000.")
    assert unsupported_claims("1,600 men dig for $100,000.", item, "") == []
    assert unsupported_claims("2,000 men dig.", item, "") == ["2,000"]


def test_reasons_quote_the_description_and_name_the_link(turn):
    items, words, links, _ = turn
    reasons = card_reasons(items, words, links)
    for item, reason in zip(items, reasons, strict=True):
        if "plot" in reason.shape:
            quoted = relevant_sentence(item.metadata["description"], words).rstrip(".…")
            assert quoted[1:] in reason.text  # first letter may be lower-cased after a colon
    linked = [r for r in reasons if r.link is not None]
    assert linked and all(r.link.seed_title in r.text for r in linked)


def test_reasons_are_deterministic(turn):
    items, words, links, _ = turn
    assert card_reasons(items, words, links) == card_reasons(items, words, links)


def test_the_sentence_closest_to_the_request_is_chosen(demo_items):
    heat = demo_items["Heat"]
    first = relevant_sentence(heat.metadata["description"], "")
    assert first.startswith("A meticulous professional thief")
    rivalry = relevant_sentence(heat.metadata["description"], "a big street shootout")
    assert rivalry.startswith("Both men sacrifice")


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            "A cab driver picks up a passenger who turns out to be a contract killer making "
            "five stops in one night, and is forced to keep driving him around the city.",
            "A cab driver picks up a passenger who turns out to be a contract killer making "
            "five stops in one night…",
        ),
        (
            "The crew explores the furthest reaches of uncharted space, where they meet a "
            "ruthless enemy, who puts them, and everything they stand for, to the test at last.",
            "The crew explores the furthest reaches of uncharted space, where they meet a "
            "ruthless enemy.",
        ),
        (
            "In Ancient Polynesia, when a terrible curse reaches Moana's island, she answers "
            "the Ocean's call to seek out the Demigod and set things right once and for all.",
            "In Ancient Polynesia, when a terrible curse reaches Moana's island, she answers "
            "the Ocean's call to seek out the Demigod and set…",
        ),
        ("A short one", "A short one."),
    ],
)
def test_trim_keeps_whole_clauses(sentence, expected):
    assert trim(sentence, max_words=22) == expected


def test_abbreviations_do_not_end_a_sentence():
    text = "In 1890, Prof. Karl Mantell meets aliens. They take over a murderer."
    assert relevant_sentence(text, "") == "In 1890, Prof. Karl Mantell meets aliens."


def test_records_without_a_description_get_distinct_fact_shapes():
    items = [
        Item(
            str(i),
            f"Film {i}",
            "",
            {"year": 1990 + i, "genres": ["drama"], "director": [f"Director {i}"]},
        )
        for i in range(5)
    ]
    reasons = card_reasons(items, "a drama", [None] * 5)
    assert len({r.shape for r in reasons}) == 5
    for item, reason in zip(items, reasons, strict=True):
        assert unsupported_claims(reason.text, item, "a drama") == []


def test_a_shape_with_an_unknown_variable_is_a_config_error(tmp_path):
    (tmp_path / "card_reasons.toml").write_text('odd = "{plot} {rating}"\n', encoding="utf-8")
    with pytest.raises(PromptError, match="rating|only"):
        reason_shapes(tmp_path)
