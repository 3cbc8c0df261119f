"""Dialogue acts: the rule path, the exemplar path (real embedder) and the labelled set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.errors import ConfigError
from chatbot.understanding.acts import (
    ACTS,
    NO_PICKS,
    SLOTS,
    ActClassifier,
    ExemplarActs,
    TurnContext,
    context_from_state,
    load_lexicon,
)
from chatbot.understanding.constraints import CatalogSchema
from chatbot.understanding.mentions import MentionFinder
from chatbot.understanding.state import DialogueState
from retrieval.catalog import demo_catalog_path, load_catalog

SHARED = Path(__file__).resolve().parents[1].parent / "shared"  # ../shared from the repo root
REDIAL_VALID = SHARED / "data" / "redial" / "valid_data_processed.jsonl"
OPENDIALKG = SHARED / "data" / "opendialkg"
FRESH = TurnContext()
SHOWN = TurnContext(has_items=True, topic_genres=frozenset({"crime", "thriller", "drama"}))
PERSON = TurnContext(people=1)
TITLE = TurnContext(titles=1, new_titles=1)


@pytest.fixture(scope="module")
def classifier() -> ActClassifier:
    return ActClassifier(load_lexicon())


@pytest.mark.parametrize(
    ("text", "ctx", "act", "slot"),
    [
        ("hi", FRESH, "greeting", None),
        ("Hello! How are you today?", FRESH, "greeting", None),
        ("something like Heat", TurnContext(titles=1), "request", None),
        ("I'm looking for a good comedy", FRESH, "request", None),
        ("who directed the first one?", SHOWN, "item_question", "director"),
        ("who's in it?", SHOWN, "item_question", "cast"),
        ("what is the second one about?", SHOWN, "item_question", "plot"),
        ("is it ok for kids?", SHOWN, "item_question", "kids_ok"),
        ("is it scary?", SHOWN, "item_question", "scary"),
        ("how long is it?", SHOWN, "item_question", "runtime"),
        # A shown item by its place in the list, and opinions asked of it.
        ("is the first one good?", SHOWN, "item_question", "other"),
        ("is the second one scary?", SHOWN, "item_question", "scary"),
        ("what do you think of the third one?", SHOWN, "item_question", "other"),
        ("haven't seen it. how is it?", SHOWN, "item_question", "other"),
        ("how is it going?", FRESH, "greeting", None),
        ("why did you pick that?", SHOWN, "why_question", None),
        ("something older", SHOWN, "refine", None),
        ("less violent please", SHOWN, "refine", None),
        ("no horror", SHOWN, "refine", None),
        ("seen it", SHOWN, "feedback", None),
        ("too scary", SHOWN, "feedback", None),
        ("I loved that one!", SHOWN, "feedback", None),
        # A reaction that adds a taste or a liked title not in play refines the request.
        ("haven't seen it, but I love historical movies", SHOWN, "refine", None),
        ("seen it. I really like Bruce Willis", SHOWN, "refine", None),
        ("yes! I also liked About a Boy", SHOWN, "refine", None),
        ("I loved that one, I also liked it a lot", SHOWN, "feedback", None),
        ("not a fan of the last one", SHOWN, "feedback", None),
        ("actually something for my kids", SHOWN, "topic_shift", None),
        ("start over", SHOWN, "topic_shift", None),
        # The example: after a Heat request, a family comedy is a new direction.
        ("something funny for a family night", SHOWN, "topic_shift", None),
        ("thanks!", SHOWN, "thanks_bye", None),
        ("great, thanks for the suggestions, have a good night", SHOWN, "thanks_bye", None),
        ("I'm fine, thanks for asking", FRESH, "greeting", None),
        # Attribute talk (OpenDialKG): a person named with nothing in play asks for their work;
        # facts asked of a named title are item questions.
        ("do you like Tom Hanks?", PERSON, "request", None),
        ("Do you know anything about Wes Craven?", PERSON, "request", None),
        ("Do you know anything about the movie Heat?", TITLE, "item_question", "plot"),
        ("Do you know The Matrix?", TITLE, "item_question", "other"),
        ("What is the genre of Harsh Times?", SHOWN, "item_question", "genre"),
        ("Who else was in Zookeeper?", FRESH, "item_question", "cast"),
        ("Neither, was James Franco in either of those?", SHOWN, "item_question", "cast"),
        ("He was very good in that.", SHOWN, "feedback", None),
        ("I was in the mood for a comedy", FRESH, "request", None),
        ("What else did Betty Smith write?", SHOWN, "refine", None),
        # Asking for more of a person's works is a request, unless the item is asked about too.
        ("Did he write anything else?", SHOWN, "refine", None),
        ("Can you tell me what else C.S. Lewis has written?", PERSON, "request", None),
        ("Is it a comedy? What else has he directed?", SHOWN, "item_question", "genre"),
        # The clerk's opinion or facts of a named title.
        ("Would you recommend Home Alone?", TITLE, "item_question", "other"),
        ("Would you recommend something like Home Alone?", TITLE, "request", None),
        ("Have you seen We're The Millers?", TITLE, "item_question", "other"),
        ("Can you tell me about The Phantom Tollbooth?", SHOWN, "item_question", "plot"),
        ("Who are the other main actors in Indiana Jones?", SHOWN, "item_question", "cast"),
        ("Is Johnny Mnemonic written by William Gibson?", SHOWN, "item_question", "other"),
        ("I tend to like books in the coming of age genre.", SHOWN, "refine", None),
        ("No I didn't. Could you please tell me more?", SHOWN, "item_question", "plot"),
        ("Is In a People House like those?", SHOWN, "item_question", "other"),
        (
            "I've read Where There's Smoke... is there anything else like that?",
            SHOWN,
            "refine",
            None,
        ),
        (
            "I didn't like her, which films has she been in that I should avoid?",
            SHOWN,
            "refine",
            None,
        ),
    ],
)
def test_rule_path(classifier, text, ctx, act, slot):
    got = classifier.classify(text, ctx)
    assert (got.name, got.slot) == (act, slot)
    assert 0 < got.confidence <= 1


def test_a_new_liked_title_refines_and_a_shown_one_is_feedback(classifier):
    new = TurnContext(has_items=True, new_titles=1, titles=1)
    shown = TurnContext(has_items=True, new_titles=0, titles=1)
    assert classifier.classify("Yes, and Next Friday was great", new).name == "refine"
    assert classifier.classify("Yes, and Next Friday was great", shown).name == "feedback"
    assert classifier.classify("I have not seen The Martian", new).name == "feedback"


def test_more_of_the_same_genre_is_a_refinement(classifier):
    ctx = TurnContext(has_items=True, topic_genres=frozenset({"comedy"}))
    assert classifier.classify("any other funny ones?", ctx).name == "refine"


def test_acts_without_picks_are_the_answering_ones():
    assert {"greeting", "item_question", "why_question", "thanks_bye"} == NO_PICKS


def test_context_from_a_real_state():
    items = load_catalog(demo_catalog_path()).items
    index = MentionFinder.of(items)
    schema = CatalogSchema(genres=frozenset(g for i in items for g in i.genres))
    state = DialogueState()
    assert context_from_state(state) == TurnContext()
    state.add_user("I loved Heat", index, schema)
    state.add_assistant("Try these.", shown=["m0002", "m0003"])
    heat = [m.item_id for m in index.find("what about Heat and The Matrix?")]
    ctx = context_from_state(state, heat)
    assert ctx.has_items and ctx.titles == 2 and ctx.new_titles == 1


def test_exemplars_with_the_real_embedder(embedder):
    lex = load_lexicon()
    exemplars = ExemplarActs(embedder, lex)
    scores = exemplars.scores("thank you so much, goodbye")
    assert max(scores, key=scores.get) == "thanks_bye"
    mixed = ActClassifier(lex, exemplars, threshold=0.6)
    # A sure rule answer never reaches the exemplars; an unsure one picks among allowed acts.
    assert mixed.classify("who directed it?", SHOWN).name == "item_question"
    assert mixed.classify("hmm well", FRESH).name in {"greeting", "request", "thanks_bye"}


def test_a_broken_lexicon_names_the_fix(tmp_path):
    bad = tmp_path / "acts.toml"
    bad.write_text('[cues]\ngreeting = ["hi"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="needs non-empty lists"):
        load_lexicon(bad)
    bad.write_text("[cues\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_lexicon(bad)


def test_label_file_holds_keys_and_labels_only():
    from evaluation.act_labels import labels_path

    rows = [json.loads(line) for line in labels_path().read_text().splitlines() if line]
    assert len(rows) >= 350
    assert all(set(r) == {"dialog_id", "utterance", "round", "sample", "act", "slot"} for r in rows)
    assert {r["act"] for r in rows} <= set(ACTS)
    assert {r["slot"] for r in rows if r["act"] == "item_question"} <= set(SLOTS)
    assert len({(r["dialog_id"], r["utterance"]) for r in rows}) == len(rows)


def test_opendialkg_label_file_holds_keys_and_labels_only():
    from evaluation.opendialkg_acts import labels_path

    rows = [json.loads(line) for line in labels_path().read_text().splitlines() if line]
    assert all(set(r) == {"dialog_id", "utterance", "round", "sample", "act", "slot"} for r in rows)
    assert {r["round"] for r in rows} == set(range(10, 19)) and len(rows) == 1350
    assert {r["act"] for r in rows} <= set(ACTS)
    assert {r["slot"] for r in rows if r["act"] == "item_question"} <= set(SLOTS)
    assert len({(r["dialog_id"], r["utterance"]) for r in rows}) == len(rows)


@pytest.mark.skipif(not OPENDIALKG.is_dir(), reason="../shared data not present")
def test_opendialkg_rounds_are_fresh_dialogues_of_one_split_each():
    from dialogues.split import split_of
    from evaluation.opendialkg_acts import PREFIX, load_labelled, titles_in

    rows = load_labelled(OPENDIALKG)
    drawn = {
        10: "train",
        11: "test",
        12: "dev",
        13: "dev",
        14: "dev",
        15: "test",
        16: "test",
        17: "test",
        18: "test",
    }
    seen: set[str] = set()
    for number, split in drawn.items():
        fresh = [u for u in rows if u.round == number]
        dialogues = {u.dialog_id for u in fresh}
        assert len(fresh) == 150 and not dialogues & seen
        assert {split_of(d.removeprefix(PREFIX)) for d in dialogues} == {split}
        seen |= dialogues
    assert all(u.text.strip() and u.split == "odkg" and u.utterance % 2 == 0 for u in rows)
    assert any(u.people for u in rows) and any(u.items_before for u in rows)
    # titles are whole words; a short one only as the catalog capitalises it
    assert titles_in("I loved Salt!", frozenset({"Salt"})) == {"salt"}
    assert titles_in("add some salt", frozenset({"Salt"})) == frozenset()
    assert titles_in("about waking life?", frozenset({"Waking Life"})) == {"waking life"}


def test_relabelled_sample_names_labelled_turns_and_valid_acts():
    from evaluation.act_labels import labels_path, read_acts, relabel_path

    first, second = read_acts(labels_path()), read_acts(relabel_path())
    assert len(second) == 100 and set(second) <= set(first)
    assert set(second.values()) <= set(ACTS)


@pytest.mark.skipif(not REDIAL_VALID.is_file(), reason="../shared data not present")
def test_labels_join_real_redial_seeker_turns():
    from evaluation.act_labels import load_labelled

    rows = load_labelled(REDIAL_VALID)
    test = [u for u in rows if u.split == "test"]
    assert len(test) >= 100 and all(u.sample == "natural" for u in test)
    held_out = {5: "train", 6: "train", 7: "train", 8: "dev", 9: "train"}
    for number, split in held_out.items():  # each a natural sample of dialogues new to it
        fresh = [u for u in rows if u.round == number]
        assert len(fresh) >= 150 and {u.split for u in fresh} == {split}
        assert all(u.sample == "natural" for u in fresh)
        earlier = {u.dialog_id for u in rows if u.round < number}
        assert not {u.dialog_id for u in fresh} & earlier
    assert all(u.text.strip() and u.utterance % 2 == 0 for u in rows)


def test_learned_head_reads_its_weights_and_keeps_the_interface(tmp_path, embedder):
    from chatbot.understanding.act_head import load_act_head, rule_features

    lex = load_lexicon()
    with pytest.raises(ConfigError, match="not found"):
        load_act_head(embedder, tmp_path / "missing.json")
    dim = len(embedder.embed_query("hi")) + len(rule_features("hi", FRESH, lex))
    # Weights that copy the rule's act: the head then answers as the rules do.
    coef = [[10.0 if j == dim - len(rule_features("hi", FRESH, lex)) + i else 0.0
             for j in range(dim)] for i in range(len(ACTS))]  # fmt: skip
    path = tmp_path / "head.json"
    path.write_text(json.dumps({"acts": list(ACTS), "coef": coef, "intercept": [0.0] * 8}))
    head = load_act_head(embedder, path)
    learned, rules = ActClassifier(lex, head=head), ActClassifier(lex)
    for text, ctx in [("who directed it?", SHOWN), ("hi", FRESH), ("seen it", SHOWN)]:
        got = learned.classify(text, ctx)
        assert (got.name, got.slot) == (
            rules.classify(text, ctx).name,
            rules.classify(text, ctx).slot,
        )
        assert 0 < got.confidence <= 1
    path.write_text(json.dumps({"acts": ["greeting"], "coef": [[0.0]], "intercept": [0.0]}))
    with pytest.raises(ConfigError, match="does not cover"):
        load_act_head(embedder, path)


def test_served_path_is_the_bundled_head_over_the_real_embedder(embedder):
    from chatbot.understanding.act_head import bundled_head_path

    assert bundled_head_path().is_file()  # committed: no ../shared needed to serve it
    served = ActClassifier(load_lexicon(), embedder=embedder)
    cases = [
        ("hi there, how are you?", FRESH, "greeting", None),
        ("I'm looking for a good comedy", FRESH, "request", None),
        ("who directed it?", SHOWN, "item_question", "director"),
        ("seen it", SHOWN, "feedback", None),
        ("thank you so much, goodbye!", SHOWN, "thanks_bye", None),
        ("Do you like Ryan Reynolds?", PERSON, "request", None),
        ("Do you know who directed the movie Kick-Ass?", TITLE, "item_question", "director"),
    ]
    for text, ctx, act, slot in cases:
        got = served.classify(text, ctx)
        assert (got.name, got.slot) == (act, slot), text
        assert 0 < got.confidence <= 1
    assert served.head is not None and served.head.inputs == "rules"  # sees the rule path too
    # The head only picks acts the context allows: no feedback before any item is in play.
    assert served.classify("seen it", FRESH).name not in {"refine", "feedback", "topic_shift"}


def test_served_path_falls_back_to_the_rules(monkeypatch, tmp_path, embedder):
    from chatbot.understanding import act_head

    monkeypatch.setattr(act_head, "bundled_head_path", lambda: tmp_path / "missing.toml")
    rules = ActClassifier(load_lexicon())
    served = ActClassifier(load_lexicon(), embedder=embedder)
    text = "haven't seen it, but I love historical movies"
    assert served.classify(text, SHOWN) == rules.classify(text, SHOWN)
    assert served.head is None
    monkeypatch.undo()

    class Tiny:  # an embedder the weights were not fitted on
        def embed_query(self, text: str) -> list[float]:
            return [1.0, 0.0]

    other = ActClassifier(load_lexicon(), embedder=Tiny())
    assert other.classify(text, SHOWN) == rules.classify(text, SHOWN)
    assert other.head is None


def test_the_recommender_serves_the_head_on_the_retrieval_embedder(tmp_path, embedder):
    from chatbot.config import Settings
    from chatbot.turn import Recommender
    from retrieval.collab import CollabSignals
    from retrieval.store import ItemStore

    store = ItemStore(str(tmp_path / "chroma"), "acts", embedder)
    rec = Recommender(Settings(home=tmp_path / "home"), store, None, CollabSignals())
    assert rec.acts.head is None  # nothing read before the first message
    got = rec.acts.classify("who's in the second one?", SHOWN)
    assert (got.name, got.slot) == ("item_question", "cast")
    assert rec.acts.head is not None and rec.acts.head.embedder is store.embedder
