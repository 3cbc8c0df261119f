"""Topic shifts on a real DialogueState over the demo catalog: seeds and soft wishes go,
explicit constraints stay unless contradicted, a reset clears them."""

from __future__ import annotations

from chatbot.understanding.acts import Act
from chatbot.understanding.constraints import CatalogSchema
from chatbot.understanding.mentions import MentionFinder
from chatbot.understanding.state import DialogueState
from chatbot.understanding.topic import apply_topic_shift, plan_topic_shift
from retrieval.catalog import demo_catalog_path, load_catalog


def _heat_state() -> DialogueState:
    items = load_catalog(demo_catalog_path()).items
    index = MentionFinder.of(items)
    schema = CatalogSchema(genres=frozenset(g for i in items for g in i.genres))
    state = DialogueState()
    state.add_user("I loved Heat, a crime movie after 2001, less violent", index, schema)
    state.add_assistant("Try these.", shown=["m0002", "m0003"])
    return state


def test_a_shift_drops_seeds_and_soft_wishes_but_keeps_explicit_constraints():
    state = _heat_state()
    assert state.liked and state.constraints.avoid and state.constraints.year_min
    assert state.constraints.include_genres == ["crime"]
    plan = plan_topic_shift(Act("topic_shift"), state, "something funny", frozenset({"comedy"}))
    assert plan is not None and "m0001" in plan.drop_seeds
    apply_topic_shift(state, plan)
    assert state.liked == [] and state.constraints.avoid == []
    assert state.constraints.year_min is not None  # explicit: stays as a chip
    assert "crime" not in state.constraints.include_genres  # contradicted by the new ask
    assert "m0002" in state.to_query(CatalogSchema()).exclude_ids  # shown stays excluded


def test_a_reset_clears_constraints_and_other_acts_plan_nothing():
    state = _heat_state()
    assert plan_topic_shift(Act("refine"), state, "something older") is None
    plan = plan_topic_shift(Act("topic_shift"), state, "let's start over")
    assert plan is not None and plan.drop_constraints
    apply_topic_shift(state, plan)
    assert state.constraints.labels() == []


def test_a_shift_stops_the_people_asked_for_seeding_the_credits():
    from retrieval.types import Item

    films = [Item("f1", "Big", "Big", {"star": ["Tom Hanks"], "genres": ["comedy"]})]
    index = MentionFinder.of(films)
    schema = CatalogSchema(genres=frozenset({"comedy"}))
    state = DialogueState()
    state.add_user("anything with Tom Hanks?", index, schema)
    assert state.to_query(schema).liked_people == ("person:tom hanks",)
    plan = plan_topic_shift(Act("topic_shift"), state, "something scary instead")
    assert plan is not None
    apply_topic_shift(state, plan)
    assert state.to_query(schema).liked_people == () and not state.entity_keys()
