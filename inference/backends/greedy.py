"""The greedy decoding rules of `inference.llm.LLM.generate_ids`, for one row of numpy logits.

An engine that hands back the next-token logits (llama.cpp in-process) decodes with exactly
the reference rules: repetition penalty 1.1 over prompt + output, no repeated 3-gram, only the
allowed token ids, a stop string and the first sentence end. This module knows nothing about
any engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

REPETITION_PENALTY = 1.1  # as inference.llm
NO_REPEAT_NGRAM = 3
SENTENCE_END = (".", "!", "?")


class GreedyRow:
    """The decoding state of one prompt: what it has seen, its n-grams, its allowed ids."""

    def __init__(self, prompt_ids: list[int], n_vocab: int, allowed: Iterable[int] | None) -> None:
        self.history = list(prompt_ids)
        self.seen = np.zeros(n_vocab, dtype=bool)
        self.seen[[i for i in prompt_ids if 0 <= i < n_vocab]] = True
        self.mask: np.ndarray | None = None
        if allowed is not None:
            self.mask = np.full(n_vocab, -np.inf, dtype=np.float32)
            self.mask[[i for i in allowed if 0 <= i < n_vocab]] = 0.0
        self.ngrams: dict[tuple[int, ...], set[int]] = {}
        for i in range(len(prompt_ids) - NO_REPEAT_NGRAM + 1):
            self._add(prompt_ids[i : i + NO_REPEAT_NGRAM])

    def pick(self, logits: np.ndarray, only: Iterable[int] | None = None) -> int:
        """The next token: argmax of the penalised, masked scores (first index on ties);
        `only`: the ids this step may pick (a per-step constraint, on top of the mask)."""
        scores = np.array(logits, dtype=np.float32, copy=True)
        s = scores[self.seen]
        scores[self.seen] = np.where(s < 0, s * REPETITION_PENALTY, s / REPETITION_PENALTY)
        if self.mask is not None:
            scores += self.mask
        if only is not None:
            keep = np.full_like(scores, -np.inf)
            keep[[i for i in only if 0 <= i < len(scores)]] = 0.0
            scores += keep
        banned = self.ngrams.get(tuple(self.history[-(NO_REPEAT_NGRAM - 1) :]))
        if banned:
            before = scores.copy()
            scores[list(banned)] = -np.inf
            if not np.isfinite(scores).any():  # the 3-gram rule left nothing allowed
                scores = before
        return int(scores.argmax())

    def push(self, token: int) -> None:
        self.history.append(token)
        self.seen[token] = True
        if len(self.history) >= NO_REPEAT_NGRAM:
            self._add(self.history[-NO_REPEAT_NGRAM:])

    def _add(self, gram: list[int]) -> None:
        self.ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])


def finished(text: str, stop: str | None, one_sentence: bool) -> bool:
    """The reference stop rule on the decoded output so far."""
    text = text.strip()
    return bool((stop and stop in text) or (one_sentence and text.endswith(SENTENCE_END)))


def decode_greedy(
    row: GreedyRow,
    first_logits: np.ndarray,
    step: Callable[[int], np.ndarray],
    decode: Callable[[list[int]], str],
    *,
    eos: set[int],
    max_new_tokens: int,
    stop: str | None,
    one_sentence: bool,
) -> list[int]:
    """Decode one row: `step(token)` feeds a token to the engine and returns the next logits."""
    out: list[int] = []
    logits = first_logits
    for i in range(max_new_tokens):
        token = row.pick(logits)
        if token in eos:
            break
        out.append(token)
        row.push(token)
        if finished(decode(out), stop, one_sentence) or i == max_new_tokens - 1:
            break
        logits = step(token)
    return out


def log_softmax(values: list[float]) -> list[float]:
    arr = np.asarray(values, dtype=np.float64)
    top = arr.max()
    return (arr - top - np.log(np.exp(arr - top).sum())).tolist()
