"""Token-level helpers every backend shares: the allowed vocabulary of a reason, label ids,
the chat template, and a GBNF grammar that spells only allowed tokens.

This module knows no engine: each function takes the backend's `encode` / token texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from inference.errors import ModelError

_WORD = re.compile(r"\w+|[^\w\s]")


def word_variants(texts: Iterable[str]) -> list[str]:
    """The spellings `LLM.vocabulary_of` allows: each word as it is, lower, capitalised, with
    and without a leading space."""
    words = {w for t in texts for w in _WORD.findall(t)}
    forms = {f for w in words for f in (w, w.lower(), w.capitalize())}
    return sorted(forms | {" " + f for f in forms})


def vocabulary_ids(
    texts: Iterable[str], encode: Callable[[str], list[int]], eos: Iterable[int]
) -> set[int]:
    ids: set[int] = set()
    for variant in word_variants(texts):
        ids.update(encode(variant))
    ids.update(eos)
    return ids


def single_token_ids(labels: list[str], encode: Callable[[str], list[int]]) -> list[int]:
    ids = []
    for label in labels:
        toks = encode(label)
        if len(toks) != 1:
            raise ModelError(f"label {label!r} is not a single token for this tokenizer")
        ids.append(toks[0])
    return ids


def render_chat(template: str, messages: list[dict[str, str]], **special: str) -> str:
    """Render a model's Jinja chat template as transformers' `apply_chat_template` does
    (sandboxed, trim_blocks + lstrip_blocks, with the generation prompt)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ModelError(f"chat template: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=True, **special
    )


def chat_messages(user_text: str, system: str | None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": user_text}]


def gbnf_literal(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\[]':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def allowed_grammar(pieces: Iterable[str]) -> str:
    """A GBNF grammar whose strings are concatenations of `pieces` (the texts of the allowed
    tokens): the same texts a token-level mask lets through. Empty and partial-UTF-8 pieces
    are left out. The pieces are written as a character trie: a flat alternation of hundreds
    of strings makes llama.cpp's grammar sampler check every token against every branch (a
    24-token reason took over 60 s on llama.cpp's server)."""
    alts = sorted({p for p in pieces if p and "\ufffd" not in p})
    if not alts:
        raise ModelError("no allowed token has a printable text: cannot build a grammar")
    trie: dict = {}
    for piece in alts:
        node = trie
        for ch in piece:
            node = node.setdefault(ch, {})
        node[""] = {}
    return "root ::= piece*\npiece ::= " + _trie_expr(trie) + "\n"


def _trie_expr(node: dict) -> str:
    """GBNF for the strings of a trie node (`""` marks the end of a piece)."""
    branches = []
    for ch, child in sorted((c, n) for c, n in node.items() if c):
        text = ch
        while len(child) == 1 and "" not in child:  # a single path: one longer literal
            ((nxt, child),) = child.items()
            text += nxt
        rest = _trie_expr(child) if any(c for c in child) else ""
        branches.append(gbnf_literal(text) + (" " + rest if rest else ""))
    body = branches[0] if len(branches) == 1 else "(" + " | ".join(branches) + ")"
    return f"({body})?" if "" in node else body
