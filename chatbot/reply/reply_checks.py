"""Checks of a model-written reply: what it names and states must be allowed and backed.

A reply passes when every catalog title it names is one of the turn's picks or the user's own
titles, every checkable fact (numbers, genre words, capitalised names) is backed by the named
picks' facts, the answer facts or the user's words (`chatbot.reply.reason_checks.unsupported_claims`, as
for card reasons), it names at least one pick when there are picks, and it does not talk about
its prompt or loop. Problems are returned as short labels; none means the reply stands.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from chatbot.reply.reason_checks import unsupported_claims
from chatbot.reply.reply_prompt import ReplyInput, facts_in_play
from chatbot.understanding.mentions import MentionFinder
from retrieval.titles import words_of as normalize
from retrieval.types import Item

_META = re.compile(r"\b(picks?:|answer:|ask a question|prompt|candidates?|the user|message:)", re.I)
_WORDS = re.compile(r"[a-z']+")
_TOKENS = re.compile(r"[a-z']+|[^\sa-z']")
MIN_WORDS = 3


def named_titles(text: str, index: MentionFinder, in_play: Iterable[str] = ()) -> list[str]:
    """Catalog titles `text` names, in order (the product's one title matcher); a name that
    several titles share, said without a year, is read as the one in play. The text is the
    model's, whose titles come out of the title constraint in their catalog spelling: a
    capitalised title written in lower case ("try something new") is a phrase, not a title."""
    return [m.title for m in index.find(text, prefer=in_play) if _written_as_title(text, m)]


def _written_as_title(text: str, mention) -> bool:
    title_word = _first_content_word(mention.title)
    said_word = _first_content_word(text[mention.start : mention.start + len(mention.title) + 8])
    if not title_word or not said_word or not title_word[0].isupper():
        return True
    return said_word[0].isupper()


def _first_content_word(text: str) -> str:
    words = re.findall(r"[^\W\d_][\w']*|\d+", text)
    return next((w for w in words if w.lower() not in ("the", "a", "an")), "")


def names_title(text: str, title: str) -> bool:
    """Whether `text` contains `title`'s words in order (year and leading article optional)."""
    words = " ".join(normalize(re.sub(r"\(\d{4}\)\s*$", "", title)))
    bare = re.sub(r"^(the|a|an) ", "", words)
    return bool(bare) and f" {bare} " in f" {' '.join(normalize(text))} "


def reply_problems(text: str, inp: ReplyInput, index: MentionFinder) -> list[str]:
    """Why `text` cannot be served as the reply to `inp` (empty list: it can)."""
    problems: list[str] = []
    words = _WORDS.findall(text.lower())
    if len(words) < MIN_WORDS:
        return ["<too short>"]
    allowed = {t.lower() for t in inp.allowed_titles}
    named = named_titles(text, index, inp.allowed_titles)
    problems += [f"<names {t}>" for t in named if t.lower() not in allowed]
    support = " ".join([*facts_in_play(inp), inp.user_text])
    backing = Item(item_id="", title=" ; ".join(inp.allowed_titles), text=support)
    problems += unsupported_claims(text, backing, "")
    if inp.picks and not any(names_title(text, p.title) for p in inp.named_picks):
        problems.append("<names no pick>")
    if _META.search(text):
        problems.append("<talks about the prompt>")
    counts = Counter(w for w in words if len(w) > 3)
    tokens = _TOKENS.findall(text.lower())  # punctuation kept: "seen it? It is" is no loop
    if any(a == b and a[0].isalpha() for a, b in zip(tokens, tokens[1:], strict=False)) or any(
        k >= 3 for k in counts.values()
    ):
        problems.append("<repeats itself>")
    return list(dict.fromkeys(problems))
