"""A multi-turn conversation through the real product: state, Chroma, LLM rerank, reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatbot.errors import InputError
from chatbot.understanding.state import DialogueState

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _catalog_ids(store) -> set[str]:
    return {it.item_id for it in store.all_items()}


def test_multi_turn_respects_filters_rejections_and_history(recommender, demo_store):
    state = DialogueState("t1")
    catalog = {it.item_id: it for it in demo_store.all_items()}

    first = recommender.recommend(state, "something like Heat but less violent, after 2000")
    assert len(first.recommendations) == 5
    for rec in first.recommendations:
        item = catalog[rec.item_id]  # every recommendation is a catalog item, by construction
        assert rec.title == item.title and item.year > 2000
        assert rec.reason
    assert "Heat" not in [r.title for r in first.recommendations]  # the mentioned item
    assert first.timings_ms["first_rec"] <= first.timings_ms["total"]

    rejected = first.recommendations[0]
    second = recommender.recommend(state, f"no horror please, and I didn't like {rejected.title}")
    assert rejected.item_id in state.rejected
    shown_before = {r.item_id for r in first.recommendations}
    for rec in second.recommendations:
        item = catalog[rec.item_id]
        assert rec.item_id not in shown_before  # never repeated
        assert "horror" not in item.genres and item.year > 2000  # filters persist
    assert state.constraints.labels() == ["no horror", "from 2001", "less violent"]


def test_stream_shows_cards_with_reasons_then_the_reply(recommender):
    updates = list(recommender.stream(DialogueState("t2"), "a funny animated movie for kids"))
    stages = [u.stage for u in updates]
    assert stages[0] == "ranked" and stages[-1] == "done" and set(stages[1:-1]) <= {"reply"}
    assert all(r.reason for r in updates[0].recommendations)  # card reasons cost no model time
    assert updates[0].reply == "" and updates[-1].reply
    assert [r.item_id for r in updates[0].recommendations] == [
        r.item_id for r in updates[-1].recommendations
    ]


def test_impossible_filters_explain_themselves(recommender):
    state = DialogueState("t3")
    result = recommender.recommend(state, "a documentary western horror before 1950")
    assert result.recommendations == []
    assert "Try removing" in result.reply


def test_cold_start_message_without_preferences(recommender):
    result = recommender.recommend(DialogueState("t4"), "hi, any suggestions?")
    assert result.act == "request" and len(result.recommendations) == 5


@pytest.mark.parametrize("message", ["", "   ", "x" * 5000, 42])
def test_bad_messages_are_clear_errors(recommender, message):
    with pytest.raises(InputError):
        recommender.recommend(DialogueState("t5"), message)


def test_json_shape(recommender):
    data = recommender.recommend(DialogueState("t6"), "a tense heist movie").to_dict()
    assert set(data) == {"reply", "recommendations", "timings_ms", "filters", "act"}
    assert set(data["recommendations"][0]) == {"item_id", "title", "reason", "score"}
    json.dumps(data)


@pytest.mark.skipif(not (SHARED / "redial").is_dir(), reason="../shared ReDial data absent")
def test_redial_catalog_conversation(tmp_path, embedder, llm):
    """The ReDial catalog format end to end (a 400-film slice, to keep the suite fast)."""
    from chatbot.config import Settings
    from chatbot.indexing import index_catalog
    from chatbot.turn import Recommender
    from retrieval.store import ItemStore

    full = json.loads((SHARED / "redial" / "id2info.json").read_text())
    keep = dict(list(full.items())[:400])
    path = tmp_path / "id2info.json"
    path.write_text(json.dumps(keep))
    settings = Settings(home=tmp_path / "home", reasons=False)
    store = ItemStore(settings.chroma_location, "redial", embedder)
    report = index_catalog(settings, path, fmt="redial", progress=False, store=store)
    assert report.indexed == 400 and report.rejected == 0
    rec = Recommender(settings, store, llm)
    state = DialogueState("r1")
    liked = keep[next(iter(keep))]["name"]
    first = rec.recommend(state, f"I loved {liked}. Any comedy?")
    assert first.recommendations
    assert all(r.item_id in keep for r in first.recommendations)
    second = rec.recommend(state, "no horror, something else")
    assert not {r.item_id for r in first.recommendations} & {
        r.item_id for r in second.recommendations
    }


def test_replayed_context_counts_roles_back_from_the_user(recommender):
    """ReDial logs often open with the bot: the last utterance is always the user's."""
    state = recommender.state_from_context(["Hi! What do you like?", "something like Heat"])
    assert state.history == [
        ("assistant", "Hi! What do you like?"),
        ("user", "something like Heat"),
    ]
    assert state.liked  # Heat was read as the user's liked title


def test_pointwise_rerank_orders_served_candidates_by_p_yes(demo_home, demo_store, llm):
    """rerank_mode pointwise: one yes/no prompt per candidate, the shared part from the cache;
    with no prior the top card is the candidate the model most says yes to."""
    from chatbot.config import Settings
    from chatbot.turn import Recommender
    from retrieval.collab import CollabSignals

    settings = Settings(
        home=demo_home, reasons=False, llm={"rerank_mode": "pointwise", "rerank_prior": 0.0}
    )
    rec = Recommender(settings, demo_store, llm, CollabSignals.load(settings.collab_path))
    assert rec.rerank_mode == "pointwise"
    message = "something like Heat, after 2000"
    cached = llm.stats.cached_tokens
    result = rec.recommend(DialogueState("pw"), message)
    assert llm.stats.cached_tokens > cached  # the score prompt's static head was reused
    catalog = {it.item_id: it for it in demo_store.all_items()}
    assert len(result.recommendations) == 5
    assert all(catalog[r.item_id].year > 2000 for r in result.recommendations)
    prep = rec.prepare_context([message])
    prompts = [rec.score_prompt(prep.conversation, c) for c in prep.candidates]
    yes = [row[0] for row in llm.label_logprobs_rows(prompts, ["yes", "no"])]
    best = max(range(len(yes)), key=lambda i: (yes[i], -i))
    assert result.recommendations[0].item_id == prep.candidates[best].item.item_id
