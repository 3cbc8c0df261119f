"""Links between a recommended item and the user's items: facts from both records, never guesses."""

from __future__ import annotations

import pytest

from chatbot.config import Settings
from chatbot.reply.credit_links import Link, find_link, seed_order
from chatbot.reply.reasons import generate_reasons, template_reason
from chatbot.turn import Recommender
from prompts.errors import PromptError
from prompts.loader import load_link_phrases
from retrieval.collab import CollabSignals
from retrieval.store import ItemStore
from retrieval.types import Item


def film(item_id, title, director, stars, genres=("crime",)):
    meta = {"year": 1990, "genres": list(genres), "director": [director], "star": stars}
    return Item(item_id, title, f"{title}, directed by {director}", meta)


HEAT = film("h", "Heat (1995)", "Michael Mann", ["Al Pacino", "Robert De Niro"])
COLLATERAL = film("c", "Collateral", "Michael Mann", ["Tom Cruise"])
TAXI = film("t", "Taxi Driver", "Martin Scorsese", ["Robert De Niro"])
LATE = film("l", "Late Star", "Someone", ["A", "B", "C", "Robert De Niro"], ("war",))  # 4th billed
UP = film("u", "Up", "Pete Docter", ["Ed Asner"], genres=("animation", "adventure"))


def test_links_prefer_a_shared_director_then_a_leading_star_then_co_recommendation():
    collab = CollabSignals(cooc={"h": {"u": 2.0}})
    assert find_link(COLLATERAL, [HEAT], collab) == Link("director", "Heat (1995)", "Michael Mann")
    assert find_link(TAXI, [HEAT], collab) == Link("star", "Heat (1995)", "Robert De Niro")
    assert find_link(LATE, [HEAT], None) is None  # only the leading three stars count
    assert find_link(UP, [HEAT], collab) == Link("cooc", "Heat (1995)")
    assert find_link(UP, [HEAT], None) is None
    assert find_link(HEAT, [HEAT], None) is None  # an item is never linked to itself
    # The first seed with the best kind of link wins: a director beats an earlier star seed.
    assert find_link(COLLATERAL, [TAXI, HEAT], None).kind == "director"


def test_without_a_stronger_link_shared_genres_link_to_the_seed_sharing_most():
    thriller = film("x", "Thief", "D1", ["S1"], genres=("crime", "thriller", "drama"))
    drama = film("d", "Sad Story", "D2", ["S2"], genres=("drama",))
    heist = film("hs", "Heist Movie", "D3", ["S3"], genres=("thriller", "crime"))
    # The item's own genre order names them; the seed sharing two beats an earlier one sharing one.
    assert find_link(thriller, [drama, heist], None) == Link(
        "genres", "Heist Movie", "the crime and thriller genres"
    )
    assert find_link(thriller, [drama], None) == Link("genres", "Sad Story", "the drama genre")
    assert find_link(UP, [drama], None) is None  # nothing shared, no link
    # People and co-recommendation links still come first.
    assert find_link(COLLATERAL, [heist, HEAT], None).kind == "director"
    text = template_reason(thriller, "", link=find_link(thriller, [heist], None))
    assert text == (
        "Thief is a crime and thriller title from 1990; it shares the crime and thriller genres"
        " with Heist Movie."
    )


def test_seed_order_is_liked_then_mentioned_most_recent_first_without_rejected():
    assert seed_order(["a", "b"], ["a", "c", "d", "b", "e"], ["d"]) == ["b", "a", "e", "c"]


def test_template_reason_names_the_link_with_the_right_article():
    text = template_reason(TAXI, "something like heat", link=find_link(TAXI, [HEAT], None))
    assert text == (
        "Taxi Driver is a crime title from 1990; Robert De Niro stars in it and in Heat (1995)."
    )
    up = template_reason(UP, "an adventure for the kids", link=Link("cooc", "Heat (1995)"))
    # The genre the user asked for leads; "an" before a vowel.
    assert up == (
        "Up is an adventure and animation title from 1990, matching your request for adventure;"
        " recommended alongside Heat (1995) in past conversations."
    )


def test_link_phrases_are_checked_and_a_prompt_dir_without_them_uses_the_bundled_ones(tmp_path):
    assert set(load_link_phrases(tmp_path)) == {"director", "star", "actor", "cooc", "genres"}
    old = tmp_path / "old"  # written before genre links existed: that phrase comes bundled
    old.mkdir()
    (old / "reason_links.toml").write_text(
        'director = "by {name} ({seed})"\nstar = "{name} {seed}"\nactor = "{name} {seed}"\n'
        'cooc = "{seed}"\n'
    )
    phrases = load_link_phrases(old)
    assert phrases["director"].template == "by {name} ({seed})"
    assert phrases["genres"].template == load_link_phrases(None)["genres"].template
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "reason_links.toml").write_text(
        'director = "by {who}"\nstar = "{name} {seed}"\nactor = "{name} {seed}"\ncooc = "{seed}"\n'
    )
    with pytest.raises(PromptError, match="'director' uses \\['who'\\]"):
        load_link_phrases(bad)


def test_recommender_links_read_the_users_items_from_the_index(tmp_path, embedder):
    store = ItemStore(str(tmp_path / "chroma"), "links", embedder)
    store.sync([HEAT, COLLATERAL, TAXI, LATE, UP], progress=False)
    rec = Recommender(Settings(home=tmp_path / "home"), store, None, CollabSignals())
    state = rec.state_from_context(["I loved Heat (1995), and Up was fine"])
    assert rec.links(state, [COLLATERAL, TAXI, LATE]) == [
        Link("director", "Heat (1995)", "Michael Mann"),
        Link("star", "Heat (1995)", "Robert De Niro"),
        None,
    ]


class _LoopingLLM:
    """A model output this test is about: a looping sentence, which must never be served."""

    def chat_prompt(self, user_text, system=None):
        return user_text

    def vocabulary_of(self, sources):
        return None

    def generate(self, prompts, max_new_tokens, allowed_tokens=None, one_sentence=False):
        return ["A crime film about a crime and a crime."] * len(prompts)


def test_an_incoherent_reason_falls_back_to_the_template_naming_the_link():
    link = Link("director", "Heat (1995)", "Michael Mann")
    out = generate_reasons(_LoopingLLM(), [COLLATERAL, UP], "like heat", links=[link, None])
    assert [r.fallback for r in out] == [True, True]
    assert "<repeats itself>" in out[0].unsupported
    assert out[0].link == link and out[1].link is None
    assert out[0].text.endswith("; directed by Michael Mann, as was Heat (1995).")
    assert out[1].text == "Up is an animation and adventure title from 1990."
