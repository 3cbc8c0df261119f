"""Title-span constrained decoding: a reply names whole allowed titles or none, and names a pick.

    constraint = TitleConstraint.build(tokenizer, titles=["Heat (1995)", "Collateral (2004)"],
                                       picks=["Collateral (2004)"], words=ids_of_other_words)
    ids = constraint.allowed(generated_ids)   # the token ids the next step may pick (None: any)

A trie holds the token sequences of every allowed title (the turn's picks, the user's titles,
the titles an answer is about), each spelt with and without a leading space, with and without
its "(year)". Outside a title the next token is one of `words` (function words, the facts in
play, punctuation) or the first token of an allowed title; once the text so far can only be
read as inside a title (its last token is no word of `words`), only that title's continuation
is allowed until it is complete. A title whose first token is also an ordinary word (" The")
stays open both ways until a token decides. So a reply cannot emit a partial title or glue
title pieces into a foreign one ("The Dark A-Lot").

Forcing a pick: when `force_after` tokens have passed (or the budget is nearly spent) and no
pick is named yet, outside a title the next token must start a pick, and the span then follows
the picks-only trie. Right after a word, a title may only start with its spaced spelling, so a
title is never glued to the word before it ("ideaJFK"). End-of-sequence is refused inside a title and before a pick is named.

This module knows token ids and titles only; the decoding loop asks `allowed` once per step
(`stream_ids(..., constraint=...)` of the transformers `LLM` and of in-process llama.cpp).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

FORCE_AFTER = 14  # tokens before a pick must start: a greeting and a clause, then the title
SENTENCE_ENDS = (".", "!", "?")


@dataclass(eq=False)
class Node:
    children: dict[int, Node] = field(default_factory=dict)
    ends: bool = False  # a whole title ends here
    pick: bool = False  # ... and it is a pick


def title_forms(title: str) -> list[str]:
    """The spellings of `title` a reply may use: as written and without its trailing year."""
    bare = re.sub(r"\s*\(\d{4}\)\s*$", "", title).strip()
    return list(dict.fromkeys(f for f in (title.strip(), bare) if f))


def _insert(root: Node, ids: Sequence[int], pick: bool) -> None:
    node = root
    for token in ids:
        node = node.children.setdefault(token, Node())
    node.ends = True
    node.pick = node.pick or pick


@dataclass(frozen=True)
class _State:
    free: bool  # the text so far reads as ordinary words (outside any title)
    nodes: frozenset  # trie nodes the text may be inside of (id-stable Node objects)
    named_pick: bool
    steps: int


class TitleConstraint:
    """Allowed next tokens of a reply, from the tokens generated so far (see module doc)."""

    def __init__(
        self,
        root: Node,
        pick_root: Node,
        words: set[int],
        eos: set[int],
        sentence_ends: set[int],
        *,
        max_new_tokens: int,
        force_after: int = FORCE_AFTER,
        longest_pick: int = 0,
        spaced: tuple[Node, Node] | None = None,
        piece: Callable[[int], str] | None = None,
    ):
        self.root = root
        self.pick_root = pick_root
        # The same tries with only the spellings that open with a space: a title starts from
        # them right after a word, so it is never glued to it ("ideaJFK").
        self.spaced_root, self.spaced_pick_root = spaced or (root, pick_root)
        self._piece = piece  # a token id's text (to know whether it ends inside a word)
        self._ends_word: dict[int, bool] = {}
        self.words = set(words) - set(eos)
        self.eos = set(eos)
        self.sentence_ends = set(sentence_ends)
        self.max_new_tokens = max_new_tokens
        self.force_after = force_after
        self.longest_pick = longest_pick
        self._ids: list[int] = []
        self._states: list[_State] = [_State(True, frozenset(), not pick_root.children, 0)]

    @classmethod
    def build(
        cls,
        tokenizer,
        *,
        titles: Iterable[str],
        picks: Iterable[str],
        words: set[int],
        max_new_tokens: int,
        force_after: int = FORCE_AFTER,
    ) -> TitleConstraint:
        """The constraint over `titles` (all the reply may name), `picks` (one must be named)
        and `words` (token ids usable outside titles; title words should not be among them)."""
        picks = list(dict.fromkeys(picks))
        titles = list(dict.fromkeys([*titles, *picks]))
        root, pick_root = Node(), Node()
        spaced_root, spaced_pick_root = Node(), Node()
        spellings = [(f, t in picks) for t in titles for f in title_forms(t)]
        texts = [s for f, _ in spellings for s in (f, " " + f)]
        rows = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        longest = 0
        for i, (_, is_pick) in enumerate(spellings):
            for ids in rows[2 * i : 2 * i + 2]:
                _insert(root, ids, is_pick)
                if is_pick:
                    _insert(pick_root, ids, True)
                    longest = max(longest, len(ids))
            _insert(spaced_root, rows[2 * i + 1], is_pick)
            if is_pick:
                _insert(spaced_pick_root, rows[2 * i + 1], True)
        ends = {
            i
            for row in tokenizer(list(SENTENCE_ENDS), add_special_tokens=False)["input_ids"]
            for i in row
        }
        eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        return cls(
            root, pick_root, words, eos, ends, max_new_tokens=max_new_tokens,
            force_after=force_after, longest_pick=longest,
            spaced=(spaced_root, spaced_pick_root),
            piece=lambda token: tokenizer.decode([token]),
        )  # fmt: skip

    def vocabulary(self) -> set[int]:
        """Every token id `allowed` can ever return (the output-layer rows to compute)."""
        out = set(self.words) | self.eos | self.sentence_ends
        stack = [self.root, self.pick_root]
        while stack:
            node = stack.pop()
            out.update(node.children)
            stack.extend(node.children.values())
        return out

    def allowed(self, generated_ids: Sequence[int]) -> set[int] | None:
        """Token ids the next step may pick after `generated_ids` (the reply's tokens so far).
        Right after a word, a title starts with its spaced spelling ("idea JFK", never
        "ideaJFK")."""
        prev = generated_ids[-1] if generated_ids else None
        return self._allowed(self._state(generated_ids), prev)

    def _roots(self, prev: int | None) -> tuple[Node, Node]:
        """(titles trie, picks trie) a title may start from after the token `prev`."""
        if prev is not None and self._after_word(prev):
            return self.spaced_root, self.spaced_pick_root
        return self.root, self.pick_root

    def _after_word(self, token: int) -> bool:
        if self._piece is None:
            return False
        if token not in self._ends_word:
            self._ends_word[token] = self._piece(token)[-1:].isalnum()
        return self._ends_word[token]

    def named_pick(self, generated_ids: Sequence[int]) -> bool:
        return self._state(generated_ids).named_pick

    def _forcing(self, s: _State) -> bool:
        left = self.max_new_tokens - s.steps
        late = s.steps >= self.force_after or left <= self.longest_pick + 2
        return not s.named_pick and late

    def _allowed(self, s: _State, prev: int | None) -> set[int]:
        root, pick_root = self._roots(prev)
        out: set[int] = set()
        for node in s.nodes:
            out.update(node.children)
        outside = s.free or any(n.ends for n in s.nodes)
        if outside:
            if self._forcing(s):
                out.update(pick_root.children)
            else:
                out.update(self.words)
                out.update(root.children)
                if s.named_pick:
                    out.update(self.eos)
                if self.max_new_tokens - s.steps <= 1 and s.named_pick:
                    out = (out & self.sentence_ends) or out  # the last token ends the sentence
        return out or set(self.eos)

    def _state(self, ids: Sequence[int]) -> _State:
        n = len(self._ids)
        if len(ids) < n or list(ids[:n]) != self._ids:
            self._ids, self._states = [], self._states[:1]
        for token in ids[len(self._ids) :]:
            prev = self._ids[-1] if self._ids else None
            self._states.append(self._advance(self._states[-1], token, prev))
            self._ids.append(token)
        return self._states[len(ids)]

    def _advance(self, s: _State, token: int, prev: int | None) -> _State:
        root, pick_root = self._roots(prev)
        outside = s.free or any(n.ends for n in s.nodes)
        nodes = {n.children[token] for n in s.nodes if token in n.children}
        free = False
        if outside:
            if self._forcing(s):
                start = pick_root.children.get(token)
                nodes = {start} if start is not None else nodes
            else:
                start = root.children.get(token)
                if start is not None:
                    nodes.add(start)
                free = token in self.words
        named = s.named_pick or any(n.ends and n.pick for n in nodes)
        return _State(free, frozenset(nodes), named, s.steps + 1)
