"""The title-span constraint on the real default LLM's tokenizer and decoding: titles are
named whole and allowed only (no partial, no glued foreign title), and a reply names a pick."""

from __future__ import annotations

import re

import pytest

from chatbot.reply.reply_checks import named_titles, names_title
from chatbot.reply.reply_prompt import ReplyInput, should_ask
from chatbot.reply.title_constraint import TitleConstraint, title_forms
from chatbot.reply.writer import ReplyWriter
from chatbot.understanding.mentions import MentionFinder
from retrieval.catalog import demo_catalog_path, load_catalog
from retrieval.titles import words_of


@pytest.fixture(scope="module")
def demo_items():
    return {it.title: it for it in load_catalog(demo_catalog_path()).items}


@pytest.fixture(scope="module")
def writer(llm, demo_items):
    return ReplyWriter(llm, MentionFinder.of(demo_items.values()))


def _ids(llm, text: str) -> list[int]:
    return llm.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_title_forms_drop_the_year():
    assert title_forms("Coco (2017)") == ["Coco (2017)", "Coco"]
    assert title_forms("Heat") == ["Heat"]


def test_inside_a_title_only_its_continuation_is_allowed(llm):
    words = llm.vocabulary_of(["the a and you like it is great . ,"])
    c = TitleConstraint.build(
        llm.tokenizer, titles=["Heat", "The Dark Knight"], picks=["The Dark Knight"],
        words=words, max_new_tokens=40,
    )  # fmt: skip
    knight = _ids(llm, " The Dark Knight")
    start = c.allowed([])
    assert knight[0] in start and _ids(llm, " Heat")[0] in start
    assert knight[1] not in start and knight[2] not in start  # title words are not loose words
    assert c.allowed(knight[:2]) == {knight[2]}  # " The Dark" must become " The Dark Knight"
    assert c.named_pick(knight) and not c.named_pick(knight[:2])
    after = c.allowed(knight)
    assert words - c.eos <= after and llm.tokenizer.eos_token_id in after  # free again


def test_eos_waits_for_a_pick_and_a_late_reply_is_forced_into_one(llm):
    words = llm.vocabulary_of(["you will like this one . it is great"])
    c = TitleConstraint.build(
        llm.tokenizer, titles=["Heat", "Collateral"], picks=["Collateral"], words=words,
        max_new_tokens=40, force_after=3,
    )  # fmt: skip
    eos = llm.tokenizer.eos_token_id
    assert eos not in c.allowed([])
    chatter = _ids(llm, "You will like")
    forced = c.allowed(chatter)
    assert forced == {_ids(llm, " Collateral")[0]}  # spaced: right after the word "like"
    heat = _ids(llm, " Heat")
    assert heat[0] not in forced  # the user's title does not count as naming a pick


def _partial_titles(text: str, titles: list[str]) -> list[str]:
    """Allowed titles whose first two or more words (not all) appear in `text` without the
    whole title following: the partial spans the constraint must rule out."""
    words = " " + " ".join(words_of(text)) + " "
    whole_titles = {" " + " ".join(words_of(re.sub(r"\s*\(\d{4}\)$", "", t))) + " " for t in titles}
    out = []
    for title in titles:
        tw = words_of(re.sub(r"\s*\(\d{4}\)$", "", title))
        for k in range(2, len(tw)):
            head = " " + " ".join(tw[:k]) + " "
            whole = " " + " ".join(tw) + " "
            if head not in whole_titles and words.count(head) > words.count(whole):
                out.append(title)
    return out


CASES = [
    ("a tense heist movie like Heat", ("Collateral", "Inception", "The Dark Knight"), ("Heat",)),
    ("hi", ("The Silence of the Lambs", "Raiders of the Lost Ark", "Star Wars"), ()),
    ("something like Blade Runner", ("Blade Runner 2049", "Arrival", "The Matrix"),
     ("Blade Runner",)),
    ("a war film please", ("Saving Private Ryan", "Apocalypse Now", "Full Metal Jacket"), ()),
]  # fmt: skip


@pytest.fixture(scope="module")
def cpp_writer(demo_items):
    """The same writer on in-process llama.cpp (the bundled GGUF)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is built by `make setup`")
    from inference.backends.llamacpp import LlamaCppLLM
    from inference.model_files import builtin_gguf_path

    return ReplyWriter(LlamaCppLLM(builtin_gguf_path()), MentionFinder.of(demo_items.values()))


@pytest.fixture(scope="module")
def int4_writer(model_cache, demo_items):
    """The same writer on transformers decoding from 4-bit weights (llm.decode_weights)."""
    from inference.llm import load_llm
    from inference.settings import LLMSettings

    llm = load_llm(LLMSettings(decode_weights="int4"), model_cache)
    return ReplyWriter(llm, MentionFinder.of(demo_items.values()))


WRITERS = {"transformers": "writer", "transformers-int4": "int4_writer", "llamacpp": "cpp_writer"}


@pytest.mark.parametrize("engine", list(WRITERS))
@pytest.mark.parametrize(("message", "picks", "user_titles"), CASES)
def test_replies_name_a_pick_and_no_partial_or_foreign_title(
    request, demo_items, engine, message, picks, user_titles
):
    writer = request.getfixturevalue(WRITERS[engine])
    llm = writer.llm
    inp = ReplyInput(
        history=(("user", message),),
        picks=tuple(demo_items[t] for t in picks),
        user_titles=user_titles,
        ask=should_ask([message], list(user_titles)),
    )
    constraint = writer.constraint(inp)
    ids = list(llm.stream_ids(writer.prompt(inp), writer.max_new_tokens, constraint=constraint))
    for i, token in enumerate(ids):  # every step picked a token the constraint allowed
        assert token in constraint.allowed(ids[:i])
    text = llm.tokenizer.decode(ids, skip_special_tokens=True)
    assert constraint.named_pick(ids), text
    assert any(names_title(text, p) for p in picks), text
    allowed = set(inp.allowed_titles)
    assert set(named_titles(text, writer.index)) <= allowed, text
    assert _partial_titles(text, list(allowed)) == [], text
    reply = writer.write(inp)
    assert reply.model_text.strip() == text.strip()


def test_a_title_is_never_glued_to_the_word_before_it(llm):
    words = llm.vocabulary_of(["I had an idea , you will like it ."])
    c = TitleConstraint.build(
        llm.tokenizer, titles=["JFK", "Steel Magnolias"], picks=["JFK"], words=words,
        max_new_tokens=40,
    )  # fmt: skip
    bare, spaced = _ids(llm, "JFK")[0], _ids(llm, " JFK")[0]
    assert bare in c.allowed([])  # the reply may open with a title
    idea = _ids(llm, "I had an idea")
    after = c.allowed(idea)
    assert spaced in after and bare not in after
    assert not c.named_pick(idea + _ids(llm, "JFK"))  # spelt glued, it is no title
    for title in ("JFK", "Steel Magnolias"):  # not even when its first token is also a word
        assert c._state(idea + _ids(llm, title)).nodes == frozenset()
    assert c.named_pick(idea + _ids(llm, " JFK"))
