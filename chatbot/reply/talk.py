"""What a turn says: the answer of a turn that picks nothing, and the reply input of every turn.

    said = answer_turn(act, text, state, index, store)   # item / why question, greeting, thanks
    said.lines    # ("Heat was directed by Michael Mann.",): what the reply must carry
    inp = reply_input(state, said, picks=(), user_titles=("Heat",))
    for update in stream_reply(writer, inp, said, base_result):   # reply deltas, then the last
        ...

An item question is answered from the referred item's record (`chatbot.reply.answers`), a
why-question from the reason its card showed, a greeting or thanks with a line of
`prompts/conversation.toml`. The LLM writes the reply around those lines (`ReplyWriter`); a
reply that drops an answered fact, or fails the writer's own checks, is replaced by the
template, which starts with the lines themselves. Nothing here ranks: `chatbot.turn` decides
which turns pick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.reply.answers import Answer, answer_question
from chatbot.reply.reply_prompt import ReplyInput, should_ask
from chatbot.reply.turn_result import TurnResult
from chatbot.reply.writer import Reply, template_reply
from chatbot.understanding.acts import Act
from chatbot.understanding.references import resolve_references
from chatbot.understanding.state import DialogueState
from prompts.loader import toml_templates
from retrieval.titles import words_of
from retrieval.types import Item

REPLY_HISTORY = 8  # utterances of the current topic the reply prompt sees


@dataclass(frozen=True)
class Said:
    """What a turn must say besides its picks."""

    lines: tuple[str, ...] = ()  # record facts or fixed lines the reply carries
    titles: tuple[str, ...] = ()  # the titles they are about (the reply may name them)
    keep: tuple[str, ...] = ()  # words the reply must contain (the answered facts)
    answer: Answer | None = None
    focus: str | None = None  # the item the turn talked about
    ask: bool = False


def lines(directory: Path | None = None) -> dict[str, Any]:
    return toml_templates("conversation.toml", directory)


def answer_turn(
    act: Act,
    text: str,
    state: DialogueState,
    index: Any,
    store: Any,
    directory: Path | None = None,
) -> Said:
    """The answer of a turn whose act picks nothing (`acts.NO_PICKS`)."""
    say = lines(directory)
    if act.name == "greeting":
        new = not state.shown
        key = "greeting" if new else "greeting_again"
        return Said((say[key].format(),), ask=new)
    if act.name == "thanks_bye":
        return Said((say["thanks_bye"].format(),))
    refs = resolve_references(
        text, shown=state.last_shown, mentioned=state.mentioned, focus=state.focus, index=index
    )
    items = store.get([r.item_id for r in refs][:1]) if refs else []
    if act.name == "why_question":
        return _why(items, state, say)
    if not items:
        if state.last_shown:
            return Said((say["which_one"].format(),))
        line = say["unknown_title"].format()
        return Said((line,), keep=(line,))  # said plainly, never paraphrased into a guess
    item = items[0]
    answer = answer_question(item, act.slot or "other")
    # A fact the record has must be stated; a missing one (or a verdict) said as the line says it.
    known = tuple(f.value for f in answer.facts if f.value) if answer.verdict == "known" else ()
    keep = known or (answer.text,)
    return Said((answer.text,), (item.title,), keep, answer, item.item_id)


def _why(items: Sequence[Item], state: DialogueState, say: dict[str, Any]) -> Said:
    if not items:
        return Said((say["why_unknown"].format(),))
    item = items[0]
    reason = state.reasons.get(item.item_id, "")
    if not reason:  # asked about an item never picked for the user
        return Said((say["why_unknown"].format(),), focus=item.item_id)
    return Said(
        (say["why"].format(title=item.title, reason=reason),), (item.title,), focus=item.item_id
    )


def reply_input(
    state: DialogueState,
    said: Said,
    picks: Sequence[Item] = (),
    *,
    request: bool = False,
) -> ReplyInput:
    """The reply writer's input for the turn; `request`: the turn picked (a narrowing question
    is asked when the request is vague or the conversation new)."""
    topic = tuple(state.history[state.topic_start :][-REPLY_HISTORY:])
    user_titles = tuple(state.titles[i] for i in state.mentioned if i in state.titles)
    ask = said.ask
    if request:
        user_texts = [t for r, t in state.history[state.topic_start :] if r == "user"]
        ask = should_ask(user_texts, user_titles)
    return ReplyInput(
        history=topic,
        picks=tuple(picks),
        user_titles=user_titles,
        answer=said.lines,
        answer_titles=said.titles,
        ask=ask,
    )


def stream_reply(
    writer: Any, inp: ReplyInput, said: Said, base: TurnResult, directory: Path | None = None
) -> Iterator[TurnResult | Reply]:
    """`base` with the reply growing token by token (stage "reply"), then the checked `Reply`
    (the last item yielded). A reply that drops an answered fact, or asks nothing when it
    should ask, is the template."""
    shown = ""
    reply: Reply | None = None
    for event in writer.stream(inp):
        if event.reply is not None:
            reply = event.reply
            break
        shown += event.text
        yield dataclasses.replace(base, reply=shown, stage="reply")
    assert reply is not None
    problems = [] if keeps(reply.text, said.keep) else ["<drops the answer>"]
    if inp.ask and "?" not in reply.text:
        problems.append("<asks nothing>")
    if problems and not reply.fallback:
        reply = Reply(template_reply(inp, directory), True, problems, reply.text)
    yield reply


def keeps(text: str, facts: Sequence[str]) -> bool:
    """Whether `text` states every fact of `facts` (as words, in order)."""
    got = f" {' '.join(words_of(text))} "
    return all(f" {' '.join(words_of(f))} " in got for f in facts if words_of(f))


def answer_dict(answer: Answer) -> dict[str, Any]:
    """The `/recommend` JSON of an answer."""
    return {
        "item_id": answer.item_id,
        "title": answer.title,
        "slot": answer.slot,
        "verdict": answer.verdict,
        "facts": [{"field": f.field, "value": f.value} for f in answer.facts],
        "text": answer.text,
    }
