"""Batched decoding of concurrent streamed replies (`inference.stream_batching`, served with
`llm.batching`) on the real default LLM in its served dtype (bf16 here): sessions' replies
decode as rows of one batch, each row gets exactly the tokens it gets when decoded alone
(batch invariance: other sessions' traffic never changes a reply), the title constraint holds
per row, and one stream failing or stopping early leaves the others intact."""

from __future__ import annotations

import threading

import pytest

from chatbot.reply.reply_prompt import ReplyInput, should_ask
from chatbot.reply.writer import ReplyWriter
from chatbot.understanding.mentions import MentionFinder
from inference.batching import BatchingLLM
from inference.errors import ModelError
from retrieval.catalog import demo_catalog_path, load_catalog


@pytest.fixture(scope="module")
def writer(llm):
    items = {it.title: it for it in load_catalog(demo_catalog_path()).items}
    writer = ReplyWriter(llm, MentionFinder.of(items.values()))
    writer.items = items
    return writer


def _concurrently(calls):
    """Run the calls in threads released at the same moment; their results in order."""
    gate = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        gate.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def _reply_input(writer, message, picks):
    return ReplyInput(
        history=(("user", message),),
        picks=tuple(writer.items[t] for t in picks),
        user_titles=(),
        ask=should_ask([message], []),
    )


def test_concurrent_streams_share_a_batch_and_each_gets_its_lone_tokens(llm, writer):
    replies = [
        _reply_input(writer, "a tense crime film at night", ["Heat", "Collateral"]),
        _reply_input(
            writer, "an adventure for a family night", ["Jaws", "Raiders of the Lost Ark"]
        ),
    ]
    words = llm.vocabulary_of(["a quiet night drive in the city, with music."])
    batched = BatchingLLM(llm)

    def streams():  # (prompt, max_new_tokens, options); a constraint serves one decoding
        return [
            *[(writer.prompt(r), writer.max_new_tokens, {"constraint": writer.constraint(r)})
              for r in replies],
            (llm.chat_prompt("Name a drama."), 20, {}),
            (llm.chat_prompt("Describe a long summer road trip film in a few words."), 32,
             {"allowed": words, "one_sentence": True}),
        ]  # fmt: skip

    alone = [list(batched.stream_ids(p, n, **kw)) for p, n, kw in streams()]
    assert batched.streams.stats.widest == 1
    todo = streams()
    got = _concurrently([lambda s=s: list(batched.stream_ids(s[0], s[1], **s[2])) for s in todo])

    assert got == alone
    stats = batched.streams.stats
    assert stats.streams == 2 * len(todo)
    assert stats.widest >= 2  # rows really shared steps
    for (_, _, kw), ids in zip(streams()[:2], got[:2], strict=True):
        constraint = kw["constraint"]
        assert all(t in constraint.allowed(ids[:i]) for i, t in enumerate(ids))
        assert constraint.named_pick(ids)
    assert set(got[3]) <= words
    prompt = todo[2][0]
    assert "".join(batched.stream_text(prompt, 20)) == llm.tokenizer.decode(alone[2]).strip()


def test_a_stream_that_fails_or_stops_early_leaves_the_others_intact(llm):
    prompts = [llm.chat_prompt(q) for q in ("Name a comedy.", "Name a thriller for tonight.")]
    batched = BatchingLLM(llm)
    want = [list(batched.stream_ids(p, 24)) for p in prompts]

    def stop_after_two():
        stream = batched.stream_ids(llm.chat_prompt("Tell me a long story."), 64)
        first = [next(stream), next(stream)]
        stream.close()
        return first

    got = _concurrently([
        lambda: list(batched.stream_ids(prompts[0], 24)),
        lambda: list(batched.stream_ids("", 8)),
        stop_after_two,
        lambda: list(batched.stream_ids(prompts[1], 24)),
    ])  # fmt: skip

    assert got[0] == want[0] and got[3] == want[1]
    assert isinstance(got[1], ModelError) and "empty prompt" in str(got[1])
    assert len(got[2]) == 2
    assert list(batched.stream_ids(prompts[0], 24)) == want[0]  # the batcher still serves


def test_the_app_with_batching_serves_concurrent_sessions_what_each_gets_alone(
    launch_app, recommender
):
    """Four sessions at once through `gradio_client` on an app with `llm.batching`: each gets
    the picks and the reply it gets alone, and the replies shared decoding steps."""
    from gradio_client import Client

    from chatbot.turn import Recommender
    from chatbot.understanding.state import DialogueState

    base = recommender.settings
    settings = base.model_copy(
        update={"llm": base.llm.model_copy(update={"batching": True}), "reasons": False}
    )
    assert settings.turns_at_once == 16
    r = recommender
    batched = BatchingLLM(r.llm)
    served = Recommender(settings, r.store, batched, r.collab)
    messages = [
        "a tense heist movie like Heat",
        "something funny for a family night",
        "a mind-bending sci-fi film",
        "a scary movie for tonight, not too gory",
    ]
    want = [served.recommend(DialogueState(), m) for m in messages]  # one after the other
    assert batched.streams.stats.widest == 1

    url = launch_app(settings, served)
    got = _concurrently([
        lambda i=i, m=m: Client(url, verbose=False).predict(m, f"batch-{i}", api_name="/recommend")
        for i, m in enumerate(messages)
    ])  # fmt: skip

    for w, g in zip(want, got, strict=True):
        assert not isinstance(g, Exception), g
        assert [c["item_id"] for c in g["recommendations"]] == [
            c.item_id for c in w.recommendations
        ]
        assert g["reply"] == w.reply and g["reply"]
    assert batched.streams.stats.streams == 2 * len(messages)
    assert batched.streams.stats.widest >= 2
