"""What a topic shift drops from the dialogue state, and what it keeps.

    plan = plan_topic_shift(act, state, new=parsed_constraints_of_the_message)
    # plan.drop_seeds: liked/mentioned ids that stop seeding candidates and reasons
    # plan.drop_avoid: soft preferences ("less violent") of the old request
    # plan.drop_genres: genre includes the new request contradicts ("only crime" -> comedy)
    # plan.history_from: index in state.history from which user words drive the query

When the user changes direction ("actually, something for my kids", "start over"), the earlier
request's seed titles and soft preferences stop driving candidates and reasons. Explicit hard
constraints (excluded genres, years, runtime, kids) persist until the user removes or
contradicts them, so they stay visible as chips; an included genre is contradicted by a new
request that names other genres. A reset ("start over") drops the constraints too. What was
shown or rejected stays excluded either way: the user has seen it. Pure function: applying the
plan to `DialogueState` is the state's job (see `apply_topic_shift`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from chatbot.understanding.acts import Act

RESET = re.compile(
    r"\b(start over|start again|from scratch|reset|new search|clear (it|all|that))\b"
)


@dataclass(frozen=True)
class ShiftPlan:
    drop_seeds: tuple[str, ...] = ()
    drop_avoid: tuple[str, ...] = ()
    drop_genres: tuple[str, ...] = ()
    drop_constraints: bool = False  # a reset: every constraint goes, chips included
    history_from: int = 0
    keep_excluded: frozenset[str] = field(default_factory=frozenset)


def plan_topic_shift(
    act: Act, state: Any, text: str = "", new_genres: frozenset[str] = frozenset()
) -> ShiftPlan | None:
    """The plan for `act` on `state` (a DialogueState before the message is added), or None
    when the act keeps the topic. `new_genres`: genres the message asks for (its constraints)."""
    if act.name != "topic_shift":
        return None
    reset = bool(RESET.search(text.lower()))
    seeds = tuple(dict.fromkeys([*state.liked, *state.mentioned]))
    c = state.constraints
    contradicted = tuple(g for g in c.include_genres if new_genres and g not in new_genres)
    return ShiftPlan(
        drop_seeds=seeds,
        drop_avoid=tuple(c.avoid),
        drop_genres=tuple(c.include_genres) if reset else contradicted,
        drop_constraints=reset,
        history_from=len(state.history),  # the shifting message itself starts the new topic
        keep_excluded=frozenset(state.shown) | frozenset(state.rejected),
    )


def apply_topic_shift(state: Any, plan: ShiftPlan) -> None:
    """Apply `plan` to a DialogueState (phase B moves this onto the state itself).

    Dropped seeds leave `liked`/`mentioned`; a state with a `retired` list keeps them there so
    they stay excluded from candidates (the user has talked about them) without seeding them.
    Shown and rejected items are untouched, so they stay excluded too.
    """
    from chatbot.understanding.constraints import Constraints

    retired = getattr(state, "retired", None)
    if isinstance(retired, list):
        retired.extend(i for i in plan.drop_seeds if i not in retired)
    state.liked = [i for i in state.liked if i not in plan.drop_seeds]
    state.mentioned = [i for i in state.mentioned if i not in plan.drop_seeds]
    if plan.drop_constraints:
        state.constraints = Constraints()
    else:
        state.constraints.avoid = [a for a in state.constraints.avoid if a not in plan.drop_avoid]
        state.constraints.include_genres = [
            g for g in state.constraints.include_genres if g not in plan.drop_genres
        ]
    if hasattr(state, "liked_entities"):  # people and genres named before stop seeding too
        state.liked_entities = []
        state.entities = []
    if hasattr(state, "topic_start"):
        state.topic_start = plan.history_from
