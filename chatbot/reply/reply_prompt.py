"""The reply writer's prompt (`prompts/reply.txt`): one function renders it for serving and for
fine-tuning, so the tuned adapter sees exactly the prompt it is served with.

    inp = ReplyInput(history=(("user", "a scary one like The Babadook"),), picks=(shining,))
    prompt = reply_prompt(llm, inp)  # chat template + system prompt + rendered reply.txt

This module knows prompts and the facts a reply may state; it does not generate or check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chatbot.reply.reason_checks import GENRE_WORDS
from dialogues.transcript import format_conversation
from prompts.errors import PromptError
from prompts.loader import load_toml, prompt_path, render
from retrieval.types import Item

MAX_PICKS_NAMED = 3  # picks the reply may name; the cards show the rest
CONVERSATION_CHARS = 400  # the chat's most recent characters in the prompt (~100 tokens)
REPLY_VARIABLES = frozenset({"conversation", "answer", "picks", "ask"})
FALLBACK_PARTS = {"answer": {"answer"}, "picks": {"picks"}, "question": set(), "no_picks": set()}


@dataclass(frozen=True)
class ReplyInput:
    """What the reply of one turn may draw on.

    `history`: (role, text) pairs, oldest first, the user's new message last. `picks`: the
    turn's picks, best first (the first `MAX_PICKS_NAMED` are named). `user_titles`: titles the
    user named (the reply may repeat them). `answer`: record facts that answer the user's
    question, already looked up ("The Matrix (1999) was directed by Lana Wachowski."), and
    `answer_titles` the titles they are about (the reply may name them). `ask`: whether to ask one narrowing question (see `should_ask`).
    """

    history: tuple[tuple[str, str], ...]
    picks: tuple[Item, ...] = ()
    user_titles: tuple[str, ...] = ()
    answer: tuple[str, ...] = ()
    answer_titles: tuple[str, ...] = ()
    ask: bool = False

    @property
    def named_picks(self) -> tuple[Item, ...]:
        return self.picks[:MAX_PICKS_NAMED]

    @property
    def allowed_titles(self) -> tuple[str, ...]:
        """Titles the reply may name: the turn's picks, the user's own titles and the titles
        the answer is about."""
        picks = [p.title for p in self.picks]
        return tuple(dict.fromkeys([*picks, *self.user_titles, *self.answer_titles]))

    @property
    def user_text(self) -> str:
        return " ".join(text for role, text in self.history if role == "user")


def history_of(context: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(role, text) pairs of a logged context: the last utterance is the user's and roles
    alternate backwards from it (as `Recommender.state_from_context` replays them)."""
    last = len(context) - 1
    return tuple(
        ("user" if (last - i) % 2 == 0 else "assistant", text)
        for i, text in enumerate(context)
        if text.strip()
    )


def user_titles_of(history: Sequence[tuple[str, str]], index: Any) -> tuple[str, ...]:
    """Catalog titles the user named (`index`: a `MentionFinder`), in order of first mention."""
    found = [m.title for role, text in history if role == "user" for m in index.find(text)]
    return tuple(dict.fromkeys(found))


def logged_reply_input(context: Sequence[str], picks: Sequence[Item], index: Any) -> ReplyInput:
    """The served reply input of a logged turn: its context, `picks`, the user's titles and
    the `should_ask` rule (no answer facts: logged turns carry none)."""
    history = history_of(context)
    titles = user_titles_of(history, index)
    user_texts = [text for role, text in history if role == "user"]
    return ReplyInput(
        history=history, picks=tuple(picks), user_titles=titles,
        ask=should_ask(user_texts, titles),
    )  # fmt: skip


def pick_line(item: Item) -> str:
    """'- The Shining (1980): horror, directed by Stanley Kubrick, with Jack Nicholson'"""
    facts = [" and ".join(item.genres[:2])] if item.genres else []
    if item.year and str(item.year) not in item.title:
        facts.append(f"from {item.year}")
    for key, word in (("director", "directed by"), ("star", "with"), ("actor", "with")):
        value = item.metadata.get(key)
        if (
            isinstance(value, list)
            and value
            and not (word == "with" and any("with" in f for f in facts))
        ):
            facts.append(f"{word} {value[0]}")
    return f"- {item.title}: {', '.join(facts)}" if facts else f"- {item.title}"


def facts_in_play(inp: ReplyInput) -> list[str]:
    """The texts whose words a reply may use beside function words: the named picks' lines,
    the answer and the allowed titles."""
    return [*(pick_line(p) for p in inp.named_picks), *inp.answer, *inp.allowed_titles]


def reply_user_text(inp: ReplyInput, directory: Path | None = None) -> str:
    picks = "\n".join(pick_line(p) for p in inp.named_picks) or "none"
    values = {
        "conversation": format_conversation(list(inp.history), max_chars=CONVERSATION_CHARS),
        "answer": " ".join(inp.answer) or "none",
        "picks": picks,
        "ask": "yes" if inp.ask else "no",
    }
    return reply_template(directory).format(**values)


def reply_prompt(llm, inp: ReplyInput, directory: Path | None = None) -> str:
    """The served prompt: the model's chat template around the system prompt and reply.txt.
    `llm` needs only `chat_prompt` (`finetune.examples.PromptFormatter` does for training)."""
    return llm.chat_prompt(
        reply_user_text(inp, directory), system=render("system", None, directory)
    )


def should_ask(user_texts: Sequence[str], user_titles: Sequence[str]) -> bool:
    """Ask a narrowing question on the user's first message, or when nothing they said names
    a title or a genre (a vague request)."""
    words = set(re.findall(r"[a-z-]+", " ".join(user_texts).lower()))
    vague = not user_titles and not (words & GENRE_WORDS)
    return len(user_texts) <= 1 or vague


@lru_cache(maxsize=8)
def reply_template(directory: Path | None = None):
    """`reply.txt`, checked to use exactly its variables."""
    from langchain_core.prompts import PromptTemplate

    path = prompt_path("reply.txt", directory)
    template = PromptTemplate.from_template(path.read_text(encoding="utf-8").strip())
    got = frozenset(template.input_variables)
    if got != REPLY_VARIABLES:
        raise PromptError(
            f"prompt {path} uses variables {sorted(got)} but needs exactly "
            f"{sorted(REPLY_VARIABLES)}: edit the file"
        )
    return template


def fallback_parts(directory: Path | None = None) -> dict[str, str]:
    """The template reply's parts (`reply_fallback.toml`, checked by the prompt loader)."""
    table = load_toml("reply_fallback.toml", directory)
    return {k: table[k] for k in FALLBACK_PARTS}


def reply_words(directory: Path | None = None) -> str:
    """Function words any reply may use (`reply_words.txt`)."""
    return prompt_path("reply_words.txt", directory).read_text(encoding="utf-8")
