"""The reply writer on the real default LLM and the demo catalog: the served prompt, streaming
that decodes exactly as batched generation does, replies that name only allowed titles, the
template fallback, and fine-tuning examples built with the very prompt serving uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatbot.reply.reply_checks import named_titles, reply_problems
from chatbot.reply.reply_prompt import ReplyInput, pick_line, reply_prompt, should_ask
from chatbot.reply.writer import ReplyWriter, complete_sentences, template_reply
from chatbot.understanding.mentions import MentionFinder
from retrieval.catalog import demo_catalog_path, load_catalog
from retrieval.types import Item

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture(scope="module")
def demo_items():
    return {it.title: it for it in load_catalog(demo_catalog_path()).items}


@pytest.fixture(scope="module")
def writer(llm, demo_items):
    w = ReplyWriter(llm, MentionFinder.of(demo_items.values()))
    assert w.cache_head() > 0
    return w


@pytest.fixture(scope="module")
def heist(demo_items):
    return ReplyInput(
        history=(("user", "a tense heist movie like Heat"),),
        picks=(demo_items["Collateral"], demo_items["Inception"], demo_items["The Dark Knight"]),
        user_titles=("Heat",),
    )


def test_reply_prompt_snapshot(llm, heist):
    got = reply_prompt(llm, heist)
    assert got == (SNAPSHOTS / "reply_prompt.txt").read_text(encoding="utf-8")


def test_pick_line_names_record_facts_only(demo_items):
    assert pick_line(demo_items["Collateral"]) == "- Collateral: crime and thriller, from 2004"


def test_should_ask_on_a_new_or_vague_conversation():
    assert should_ask(["hi"], [])
    assert should_ask(["a heist film like Heat"], ["Heat"])  # first message: ask anyway
    assert should_ask(["hello", "anything good?"], [])  # vague: no title, no genre
    assert not should_ask(["hello", "a scary horror one"], [])
    assert not should_ask(["hello", "like Heat"], ["Heat"])


def test_stream_yields_pieces_then_the_checked_reply(writer, heist):
    events = list(writer.stream(heist))
    pieces, last = events[:-1], events[-1]
    assert len(pieces) >= 2 and all(e.reply is None and e.text for e in pieces)
    reply = last.reply
    assert reply is not None and last.text == ""
    assert "".join(e.text for e in pieces).strip() == reply.model_text.strip()
    assert reply.fallback == bool(reply.problems)
    if not reply.fallback:
        assert reply.text == complete_sentences(reply.model_text)


@pytest.mark.parametrize(
    "message", ["hi", "something funny for a family night", "I loved Heat, more like it"]
)
def test_served_replies_name_only_allowed_titles(writer, demo_items, message):
    picks = (demo_items["Up"], demo_items["Paddington 2"], demo_items["Collateral"])
    inp = ReplyInput(
        history=(("user", message),),
        picks=picks,
        user_titles=("Heat",) if "Heat" in message else (),
        ask=should_ask([message], []),
    )
    reply = writer.write(inp)
    allowed = set(inp.allowed_titles)
    assert set(named_titles(reply.text, writer.index)) <= allowed
    assert reply_problems(reply.text, inp, writer.index) == []  # what is served passes


def test_a_batch_of_one_matches_the_stream(writer, heist):
    """Rows of a padded batch may flip a near-tie (float sums in another order), so batched
    replies (evaluation) equal streamed ones (serving) for one row, not bit for bit in a batch."""
    assert writer.write_many([heist])[0].model_text == writer.write(heist).model_text


def test_a_reply_naming_another_title_falls_back(writer, heist):
    bad = "You should watch Collateral or Titanic tonight."
    reply = writer.finish(heist, bad)
    assert reply.fallback and "<names Titanic>" in reply.problems
    assert reply.text == "You might like Collateral, Inception or The Dark Knight."
    assert reply.model_text == bad


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Collateral is a 1999 crime film.", "1999"),  # the year is 2004
        ("Collateral is a fine comedy pick.", "comedy"),  # not its genre
        ("A great crime film for tonight.", "<names no pick>"),
        ("Picks: Collateral, Inception.", "<talks about the prompt>"),
        ("Ok.", "<too short>"),
    ],
)
def test_reply_checks(writer, heist, text, problem):
    assert problem in reply_problems(text, heist, writer.index)


def test_a_good_reply_passes(writer, heist):
    text = "If you liked Heat, try Collateral, a crime and thriller pick from 2004."
    assert reply_problems(text, heist, writer.index) == []


def test_answer_only_template(demo_items):
    inp = ReplyInput(
        history=(("user", "who directed it?"),),
        answer=("The catalog doesn't list a director for Collateral.",),
        answer_titles=("Collateral",),
    )
    assert template_reply(inp) == "The catalog doesn't list a director for Collateral."
    assert "Collateral" in inp.allowed_titles


def test_complete_sentences_drops_a_cut_tail():
    assert complete_sentences("Try Up. It is a great and") == "Try Up."
    assert complete_sentences("Try Up") == "Try Up"


def test_reply_examples_use_the_served_prompt(llm, writer, demo_items):
    from dialogues.schema import RecTurn
    from finetune.examples import Catalog
    from finetune.reply_examples import ReplyExampleStats, reply_example, reply_input_of

    turn = RecTurn(
        dialog_id="d1",
        turn_id=2,
        context=("Hi, what do you like?", "I loved Heat, something like it"),
        mentioned=("Heat",),
        gold=("Collateral",),
        response="Collateral is a great one, have you seen it?",
        accepted=(None,),
    )
    catalog = Catalog(demo_items.values())
    stats = ReplyExampleStats()
    example = reply_example(turn, catalog, writer.index, llm, stats)
    assert example is not None and example.completion == turn.response
    inp = reply_input_of(turn, catalog, writer.index)
    assert inp is not None and inp.user_titles == ("Heat",)
    assert inp.ask  # the user's first message: ask one narrowing question
    assert example.prompt == writer.prompt(inp)  # exactly what serving renders
    other = RecTurn("d1", 4, turn.context, (), ("Collateral",), "Or Titanic?", (None,))
    assert reply_example(other, catalog, writer.index, llm, stats) is None
    assert stats.names_other_title == 1


def test_a_shared_name_without_its_year_is_the_title_in_play():
    """ReDial lists "The Revenant (2009)" and "The Revenant (2015)": a reply that says "The
    Revenant" about the 2015 pick names the pick, not the other film."""
    older = Item("r1", "The Revenant (2009)", "A zombie comedy.", {"year": 2009, "popularity": 9})
    pick = Item("r2", "The Revenant (2015)", "A frontier survival drama.", {"year": 2015})
    index = MentionFinder.of([older, pick])
    text = "You might like The Revenant tonight."
    assert named_titles(text, index) == ["The Revenant (2009)"]  # alone: the popular one
    assert named_titles(text, index, ["The Revenant (2015)"]) == ["The Revenant (2015)"]
    inp = ReplyInput(history=(("user", "a survival film"),), picks=(pick,))
    assert reply_problems(text, inp, index) == []
    said_year = "You might like The Revenant (2009) tonight."
    assert "<names The Revenant (2009)>" in reply_problems(said_year, inp, index)


def test_a_title_in_lower_case_is_a_phrase_in_the_models_text():
    """The model's titles come out of the constraint in catalog spelling: "try something new"
    does not name "Something New (2006)"; "Something New" does."""
    other = Item("s1", "Something New (2006)", "A romantic comedy.", {"year": 2006})
    pick = Item("k1", "The Dark Knight (2008)", "A crime epic.", {"year": 2008})
    index = MentionFinder.of([other, pick])
    knight = ["The Dark Knight (2008)"]
    assert named_titles("Want to try something new? You might like the Dark Knight.", index) == (
        knight
    )
    assert named_titles("You might like Something New or The Dark Knight.", index) == [
        "Something New (2006)",
        *knight,
    ]
