"""Reasons: the claim checker on hand-made cases, and real LLM reasons that never lie."""

from __future__ import annotations

import re

import pytest

from chatbot.reply.reason_checks import unsupported_claims
from chatbot.reply.reasons import check_reason, generate_reasons, reason_sources, template_reason
from retrieval.types import Item

COLLATERAL = Item(
    "a",
    "Collateral",
    "Collateral. A cab driver drives a hitman around Los Angeles.",
    {
        "year": 2004,
        "genres": ["crime", "thriller"],
        "tags": ["night", "los angeles"],
        "description": "A cab driver is forced to drive a hitman around Los Angeles for one night.",
    },
)


@pytest.mark.parametrize(
    ("reason", "claims"),
    [
        ("A tense 2004 crime thriller set over one night in Los Angeles.", []),
        ("A 1999 thriller.", ["1999"]),  # wrong year
        ("A heartwarming comedy about a cab driver.", ["comedy"]),  # genre not in record
        ("Tom Cruise plays a hitman.", ["Tom Cruise"]),  # a person the record does not name
        ("Like Heat, it is a crime story.", []),  # Heat comes from the user's words
        ("A thriller that runs 120 minutes.", ["120"]),
    ],
)
def test_unsupported_claims(reason, claims):
    assert unsupported_claims(reason, COLLATERAL, "something like Heat") == claims


def test_generic_or_meta_reasons_are_rejected():
    assert check_reason("This item meets the user's criteria.", COLLATERAL, "", []).unsupported
    assert check_reason("It is good.", COLLATERAL, "", []).unsupported
    assert check_reason("Toy Story fans will love it.", COLLATERAL, "", ["Toy Story"]).unsupported
    ok = check_reason(
        "A cab driver and a hitman share one night in Los Angeles.", COLLATERAL, "", []
    )
    assert ok.unsupported == []


def test_made_up_words_are_rejected():
    vocabulary = {"a", "cab", "driver", "and", "hitman", "in", "los", "angeles", "night"}
    bad = check_reason("A cab driver and a hitgun in Los Angeles.", COLLATERAL, "", [], vocabulary)
    assert bad.unsupported == ["<unknown word hitgun>"]
    good = check_reason("A cab driver and a hitman in Los Angeles.", COLLATERAL, "", [], vocabulary)
    assert good.unsupported == []


def test_user_words_are_not_a_source_of_claims():
    """The user asked for a French film; a reason may not call Collateral one."""
    words = set(re.findall(r"[a-z]+", " ".join(reason_sources(COLLATERAL)).lower()))
    lie = "A classic French crime film set in Los Angeles."
    checked = check_reason(lie, COLLATERAL, "a classic French crime film", [], words)
    assert "<unknown word french>" in checked.unsupported
    true = "A classic crime film set in Los Angeles."
    assert not check_reason(true, COLLATERAL, "a classic French crime film", [], words).unsupported


def test_template_reason_uses_only_facts():
    text = template_reason(COLLATERAL, "a crime movie please")
    assert (
        text
        == "Collateral is a crime and thriller title from 2004, matching your request for crime."
    )
    assert unsupported_claims(text, COLLATERAL, "a crime movie please") == []
    kids = Item("k", "Paddington", "", {"year": 2014, "genres": ["family"], "tags": ["for kids"]})
    assert template_reason(kids, "something for the kids") == (
        "Paddington is a family title from 2014, matching your request for kids."
    )


def test_real_llm_reasons_are_grounded(llm):
    items = [
        COLLATERAL,
        Item(
            "b",
            "Toy Story",
            "Toy Story. Toys come alive.",
            {
                "year": 1995,
                "genres": ["animation", "family"],
                "description": "Toys come alive when their owner leaves the room.",
            },
        ),
    ]
    reasons = generate_reasons(llm, items, "something fun, like Heat", max_new_tokens=24)
    assert len(reasons) == 2
    for item, reason in zip(items, reasons, strict=True):
        assert reason.text
        # Whatever the model wrote, what is served states nothing the record does not support.
        assert unsupported_claims(reason.text, item, "something fun, like Heat") == []
        assert reason.fallback == bool(reason.unsupported)


def test_constrained_decoding_only_reuses_given_words(llm):
    prompt = llm.chat_prompt("Describe a movie.")
    allowed = llm.vocabulary_of(["a quiet night drive in the city."])
    out = llm.generate([prompt], 12, allowed_tokens=[allowed])[0]
    ids = llm.tokenizer.encode(out, add_special_tokens=False)
    # Re-tokenising can merge pieces differently, so compare words instead of ids.
    words = set(llm.tokenizer.decode(ids).lower().replace(".", " ").split())
    assert words <= {"a", "quiet", "night", "drive", "in", "the", "city"}
    assert ids


@pytest.mark.parametrize(
    ("reason", "flag"),
    [
        ("A superhero who is not in the Marvel films.", "<negation the record does not back>"),
        ("A robot story about a robot and its robot friend.", "<repeats itself>"),
        ("A tense, tense night in Los Angeles.", "<repeats itself>"),
        ("A crime story that is light-on-the-night.", "<coined word light-on-the-night>"),
    ],
)
def test_incoherent_reasons_are_rejected(reason, flag):
    assert flag in check_reason(reason, COLLATERAL, "", []).unsupported


def test_negations_the_user_or_record_backs_are_kept():
    backed = check_reason("A cab driver and a hitman in Los Angeles, no gore.", COLLATERAL, "", [])
    assert "<negation the record does not back>" in backed.unsupported
    ok = check_reason(
        "A cab driver and a hitman in Los Angeles, no gore.", COLLATERAL, "nothing with no gore", []
    )
    assert ok.unsupported == []
