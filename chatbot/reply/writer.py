"""The LLM writes the turn's reply, streamed piece by piece, grounded by construction and checked.

    writer = ReplyWriter(llm, title_index)
    for event in writer.stream(ReplyInput(history, picks, user_titles, answer, ask)):
        show(event.text)             # new text to append
        if event.reply is not None:  # the last event: the checked reply
            final = event.reply      # .fallback: replace what was shown with final.text

By construction (`chatbot.reply.title_constraint.TitleConstraint`): a title is named whole or
not at all, and only an allowed one (the turn's picks, the user's own titles, the titles the
answer is about); outside titles the reply uses the facts in play (the named picks' facts, the
answer facts) and the function words of `prompts/reply_words.txt`; a pick is forced in when the
model has named none after a few tokens. Then
checked (`chatbot.reply.reply_checks`): a catalog title outside the allowed ones, an unbacked
fact, no pick named, prompt talk or a loop sends the reply to the template of
`prompts/reply_fallback.toml`, and `Reply.fallback` says so (the turn counts it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chatbot.reply.reply_checks import reply_problems
from chatbot.reply.reply_prompt import (
    ReplyInput,
    facts_in_play,
    fallback_parts,
    reply_prompt,
    reply_template,
    reply_words,
)
from chatbot.reply.title_constraint import FORCE_AFTER, TitleConstraint
from chatbot.understanding.mentions import MentionFinder
from prompts.loader import render

MAX_NEW_TOKENS = 40  # two short sentences; ~1 s of decoding on 2 cores for the 135M model
PUNCTUATION = ".,!?'-:;()"


@dataclass
class Reply:
    text: str
    fallback: bool = False
    problems: list[str] = field(default_factory=list)  # why the model's text was not served
    model_text: str = ""  # what the model wrote, served or not


@dataclass(frozen=True)
class ReplyEvent:
    text: str  # text to append to what was shown
    reply: Reply | None = None  # set on the last event only


class ReplyWriter:
    """Writes replies with one shared LLM; `index` is the catalog's title matcher."""

    def __init__(
        self,
        llm,
        index: MentionFinder,
        *,
        directory: Path | None = None,
        max_new_tokens: int = MAX_NEW_TOKENS,
        force_after: int = FORCE_AFTER,
    ):
        self.llm = llm
        self.index = index
        self.directory = directory
        self.max_new_tokens = max_new_tokens
        self.force_after = force_after

    def prompt(self, inp: ReplyInput) -> str:
        return reply_prompt(self.llm, inp, self.directory)

    def allowed_tokens(self, inp: ReplyInput) -> set[int]:
        """Token ids the reply may use outside titles: the words of the facts in play (titles
        cut out) and function words."""
        sources = [*facts_without_titles(inp), reply_words(self.directory), PUNCTUATION]
        return self.llm.vocabulary_of(sources)

    def constraint(self, inp: ReplyInput) -> TitleConstraint:
        """The title-span constraint of one reply (a fresh object per decoding)."""
        return TitleConstraint.build(
            self.llm.tokenizer,
            titles=inp.allowed_titles,
            picks=[p.title for p in inp.named_picks],
            words=self.allowed_tokens(inp),
            max_new_tokens=self.max_new_tokens,
            force_after=self.force_after,
        )

    def stream(self, inp: ReplyInput) -> Iterator[ReplyEvent]:
        """The reply as it is decoded; the last event carries the checked `Reply`."""
        constraint = self.constraint(inp)
        shown = ""
        # In-process engines (transformers, llama.cpp) apply the title-span constraint at
        # every step; an HTTP server gets its word-level vocabulary, then the checks.
        pieces = self.llm.stream_text(self.prompt(inp), self.max_new_tokens, constraint=constraint)
        for piece in pieces:
            if not shown:
                piece = piece.lstrip()
            if piece:
                shown += piece
                yield ReplyEvent(piece)
        yield ReplyEvent("", self.finish(inp, shown))

    def write(self, inp: ReplyInput) -> Reply:
        events = list(self.stream(inp))
        reply = events[-1].reply
        assert reply is not None
        return reply

    def write_many(self, inputs: Sequence[ReplyInput]) -> list[Reply]:
        """Replies of many inputs (evaluation): `stream`'s decoding, one input after another
        (the title constraint changes the allowed tokens per step and row)."""
        return [self.write(inp) for inp in inputs]

    def finish(self, inp: ReplyInput, model_text: str) -> Reply:
        """Check the model's text; serve it, cut at its last full sentence, or the template."""
        text = complete_sentences(model_text)
        problems = reply_problems(text, inp, self.index)
        if problems:
            return Reply(template_reply(inp, self.directory), True, problems, model_text)
        return Reply(text, False, [], model_text)

    def cache_head(self) -> int:
        """Run the reply prompt's static head (chat template, system prompt, instruction) once
        and keep it in the LLM's prefix cache."""
        mark = "\x00head\x00"
        values = {"conversation": mark, "answer": "none", "picks": "none", "ask": "no"}
        user_text = reply_template(self.directory).format(**values)
        marked = self.llm.chat_prompt(user_text, system=render("system", None, self.directory))
        return self.llm.cache_head(marked, mark)


def facts_without_titles(inp: ReplyInput) -> list[str]:
    """The facts in play with every allowed title cut out: title words may appear only inside
    a whole title (the constraint's trie), never loose."""
    forms = sorted(
        {f for t in inp.allowed_titles for f in (t, re.sub(r"\s*\(\d{4}\)\s*$", "", t))},
        key=len,
        reverse=True,
    )
    out = []
    for text in facts_in_play(inp):
        for form in forms:
            if form:
                text = text.replace(form, " ")
        out.append(text)
    return out


def complete_sentences(text: str) -> str:
    """`text` up to its last sentence end when it was cut mid-sentence (the token budget ran
    out), else unchanged."""
    text = " ".join(text.split())
    if not text or text.endswith((".", "!", "?")):
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", text)]
    return text[: ends[-1]] if ends else text


def template_reply(inp: ReplyInput, directory: Path | None = None) -> str:
    """The reply built from the template parts: the answer, the first picks, one question."""
    parts = fallback_parts(directory)
    out = []
    if inp.answer:
        out.append(parts["answer"].format(answer=" ".join(inp.answer)))
    titles = [p.title for p in inp.named_picks]
    if titles:
        picks = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " or " + titles[-1]
        out.append(parts["picks"].format(picks=picks))
    elif not inp.answer:
        out.append(parts["no_picks"])
    if inp.ask:
        out.append(parts["question"])
    return " ".join(out)
