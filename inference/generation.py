"""Constrained greedy generation: batched, stopping each row early, optionally word-restricted.

`Generation` is a mixin of `inference.llm.LLM` over its `ForwardPass`: a plain decoding loop
with repetition penalty and no repeated 3-gram, as `transformers`' `generate` does them, that
stops each row at `stop` / end-of-sequence / a sentence end instead of running the full
budget, and (`allowed_tokens`) computes only the output-layer rows of allowed ids.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

SENTENCE_END = (".", "!", "?")
REPETITION_PENALTY = 1.1
NO_REPEAT_NGRAM = 3


class Generation:
    """`generate` / `generate_ids` / `vocabulary_of` of a loaded LLM."""

    model: Any
    tokenizer: Any
    lock: Any
    stats: Any

    def vocabulary_of(self, texts: list[str]) -> set[int]:
        """Token ids that spell the words of `texts` (with and without a leading space)."""
        words = {w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)}
        forms = {f for w in words for f in (w, w.lower(), w.capitalize())}
        variants = sorted(forms | {" " + f for f in forms})
        ids: set[int] = set()
        if variants:  # one batched call: the fast tokenizer runs them in Rust
            for row in self.tokenizer(variants, add_special_tokens=False)["input_ids"]:
                ids.update(row)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed_tokens: list[set[int]] | None = None,
        one_sentence: bool = False,
    ) -> list[str]:
        """Greedy, batched generation; returns the new text of each prompt (cut at `stop`).

        `allowed_tokens[i]` restricts prompt i to those token ids (lexically constrained
        decoding): the output can only reuse words it was given. `one_sentence` ends a row at
        its first sentence end (., ! or ?), kept in the text.
        """
        ids = self.generate_ids(
            prompts,
            max_new_tokens,
            stop=stop,
            allowed_tokens=allowed_tokens,
            one_sentence=one_sentence,
        )
        return [cut_text(self.tokenizer.decode(row, skip_special_tokens=True), stop) for row in ids]

    def generate_ids(
        self,
        prompts: list[str],
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed_tokens: list[set[int]] | None = None,
        one_sentence: bool = False,
    ) -> list[list[int]]:
        """The new token ids of each prompt (end-of-sequence excluded).

        Greedy with repetition penalty 1.1 and no repeated 3-gram over prompt + output, as
        `transformers`' `generate` does them. A row stops at end-of-sequence, as soon as its
        text contains `stop`, or (`one_sentence`) ends a sentence; the batch stops when every
        row has. With `allowed_tokens`, only
        the output-layer rows of allowed ids are computed.
        """
        import torch

        if not prompts:
            return []
        if allowed_tokens is not None and len(allowed_tokens) != len(prompts):
            raise ValueError("allowed_tokens needs one set of token ids per prompt")
        rows = [self._encode(p) for p in prompts]
        vocab = self.model.config.vocab_size
        eos = self._eos_ids()
        # The token space scored at each step: everything, or the union of allowed ids.
        cols: list[int] | None = None
        if allowed_tokens:
            cols = sorted({i for ids in allowed_tokens for i in ids if 0 <= i < vocab})

        with self.lock, torch.inference_mode():
            out0, cache, mask = self._prefill(rows, max_new_tokens)
            started = time.perf_counter()
            step = _Step(self, rows, cols, allowed_tokens, out0.device)
            out: list[list[int]] = [[] for _ in rows]
            finished = [False] * len(rows)
            positions = mask.sum(-1, keepdim=True) if mask is not None else None
            hidden = out0
            for i in range(max_new_tokens):
                picked = step.pick(hidden, finished)
                feed = []
                for b, token in enumerate(picked):
                    if finished[b] or token in eos:
                        finished[b] = True
                        feed.append(self.tokenizer.pad_token_id or 0)
                        continue
                    out[b].append(token)
                    step.add(b, token)
                    feed.append(token)
                    if _stops(self.tokenizer.decode(out[b]).strip(), stop, one_sentence):
                        finished[b] = True
                if all(finished) or i == max_new_tokens - 1:
                    break
                step_ids = torch.tensor(feed, device=out0.device).unsqueeze(1)
                if mask is None:
                    hidden = self._forward(step_ids, cache, decoding=True)
                else:
                    mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
                    hidden = self._forward(step_ids, cache, mask, positions, decoding=True)
                    positions = positions + 1
            self.stats.generated_tokens += sum(len(o) for o in out)
            self.stats.decode_s += time.perf_counter() - started
        return out

    def stream_ids(
        self,
        prompt: str,
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed: set[int] | None = None,
        one_sentence: bool = False,
        constraint: Any = None,
    ) -> Iterator[int]:
        """`generate_ids([prompt], ...)[0]`, each token yielded as soon as it is picked.

        The same step as `generate_ids` (`_Step`). The model lock is held per step, never
        across a `yield`: a consumer may resume the generator on another thread (Gradio does),
        and other requests' steps may run between two of ours.

        `constraint` (e.g. `chatbot.reply.title_constraint.TitleConstraint`): before each step,
        `constraint.allowed(ids_so_far)` names the ids that step may pick (None: any of
        `allowed`); `constraint.vocabulary()` is `allowed` when that is None. Where it allows
        exactly one token (the rest of a title), that token is taken without a step of its
        own, and one forward pass runs the whole span.
        """
        import torch

        row = self._encode(prompt)
        eos = self._eos_ids()
        cols = stream_columns(self.model.config.vocab_size, allowed, constraint)
        with self.lock, torch.inference_mode():
            hidden, cache, _ = self._prefill([row], max_new_tokens)
            step = _Step(self, [row], cols, None, hidden.device)
        out: list[int] = []
        while len(out) < max_new_tokens:
            with self.lock, torch.inference_mode():
                started = time.perf_counter()
                only = constraint.allowed(out) if constraint is not None else None
                token = step.pick(hidden, [False], None if only is None else [only])[0]
                if token in eos:
                    self.stats.decode_s += time.perf_counter() - started
                    return
                fed: list[int] = []
                last = False
                while True:
                    out.append(token)
                    step.add(0, token)
                    fed.append(token)
                    last = len(out) == max_new_tokens or _stops(
                        self.tokenizer.decode(out).strip(), stop, one_sentence
                    )
                    token = _forced(constraint, out, eos) if not last else None
                    if token is None:
                        break
                if not last:  # one forward for the picked token and the forced ones after it
                    step_ids = torch.tensor([fed], device=hidden.device)
                    hidden = self._forward(step_ids, cache, decoding=True)
                self.stats.generated_tokens += len(fed)
                self.stats.decode_s += time.perf_counter() - started
            yield from fed
            if last:
                return

    def stream_text(
        self,
        prompt: str,
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed: set[int] | None = None,
        constraint: Any = None,
    ) -> Iterator[str]:
        """Text pieces of `stream_ids`, in order; joined, they are the decoded output up to
        `stop` (excluded). A piece is held back while it ends inside a multi-byte character."""
        ids: list[int] = []
        shown = ""
        tokens = self.stream_ids(
            prompt, max_new_tokens, stop=stop, allowed=allowed, constraint=constraint
        )
        for token in tokens:
            ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            if stop and stop in text:
                text = text.split(stop)[0]
            elif text.endswith("\ufffd"):
                continue
            if len(text) > len(shown) and text.startswith(shown):
                yield text[len(shown) :]
                shown = text


class _Step:
    """One greedy step's scoring, shared by `generate_ids` and `stream_ids`: repetition
    penalty over what each row has seen, the allowed-token mask, no repeated 3-gram."""

    def __init__(self, llm, rows, cols, allowed_tokens, dev):
        import torch

        self.llm = llm
        self.cols = cols
        self.col_of = {t: c for c, t in enumerate(cols)} if cols is not None else None
        width = len(cols) if cols is not None else llm.model.config.vocab_size
        self.head = llm._head_rows(cols)
        self.seen = torch.zeros(len(rows), width, dtype=torch.bool, device=dev)
        for b, row in enumerate(rows):
            self.seen[b, self._cols(row)] = True
        self.allowed = None
        if allowed_tokens:
            self.allowed = torch.full((len(rows), width), float("-inf"), device=dev)
            for b, ids in enumerate(allowed_tokens):
                self.allowed[b, self._cols(ids)] = 0.0
        self.history = [list(r) for r in rows]
        self.ngrams = [_ngram_table(r) for r in rows]

    def _cols(self, tokens) -> list[int]:
        if self.col_of is None:
            return list(tokens)
        return [c for c in map(self.col_of.get, tokens) if c is not None]

    def pick(self, hidden, finished: list[bool], only: list[set[int]] | None = None) -> list[int]:
        """The next token id of each row; `only[b]`: the ids row b may pick at this step."""
        import torch

        scores = self.llm._project(hidden, self.head, self.cols)
        penalized = torch.where(
            scores < 0, scores * REPETITION_PENALTY, scores / REPETITION_PENALTY
        )
        scores = torch.where(self.seen, penalized, scores)
        if self.allowed is not None:
            scores = scores + self.allowed
        if only is not None:
            keep = torch.full_like(scores, float("-inf"))
            for b, ids in enumerate(only):
                keep[b, self._cols(ids)] = 0.0
            scores = scores + keep
        for b, hist in enumerate(self.history):
            banned = self.ngrams[b].get(tuple(hist[-(NO_REPEAT_NGRAM - 1) :]))
            if banned and not finished[b]:
                before = scores[b].clone()
                scores[b, self._cols(banned)] = float("-inf")
                if not torch.isfinite(scores[b]).any():  # the 3-gram rule left nothing allowed
                    scores[b] = before
        picked = scores.argmax(-1).tolist()
        return picked if self.cols is None else [self.cols[c] for c in picked]

    def add(self, b: int, token: int) -> None:
        self.history[b].append(token)
        self.seen[b, self._cols([token])] = True
        _ngram_add(self.ngrams[b], self.history[b])


def stream_columns(vocab: int, allowed: set[int] | None, constraint: Any) -> list[int] | None:
    """The output-layer rows a stream scores: `allowed`, else the constraint's vocabulary
    (None: the whole vocabulary)."""
    if constraint is not None and allowed is None:
        allowed = constraint.vocabulary()
    return sorted(i for i in allowed if 0 <= i < vocab) if allowed is not None else None


def _forced(constraint: Any, out: list[int], eos: set[int]) -> int | None:
    """The one token `constraint` allows after `out` (inside a title), else None.

    Greedy picks it whatever the scores (the 3-gram rule gives way when it would leave
    nothing), so it is appended without scoring a step, and the forward pass runs it
    together with the token before it (jump-forward decoding)."""
    if constraint is None:
        return None
    allowed = constraint.allowed(out)
    if allowed is None or len(allowed) != 1:
        return None
    (token,) = allowed
    return None if token in eos else token


def cut_text(text: str, stop: str | None) -> str:
    """What `generate` returns for a decoded output: up to `stop`, stripped."""
    if stop:
        text = text.strip().split(stop)[0]
    return text.strip()


def _stops(text: str, stop: str | None, one_sentence: bool) -> bool:
    return bool((stop and stop in text) or (one_sentence and text.endswith(SENTENCE_END)))


def _ngram_table(ids: list[int]) -> dict[tuple[int, ...], set[int]]:
    table: dict[tuple[int, ...], set[int]] = {}
    n = NO_REPEAT_NGRAM
    for i in range(len(ids) - n + 1):
        table.setdefault(tuple(ids[i : i + n - 1]), set()).add(ids[i + n - 1])
    return table


def _ngram_add(table: dict[tuple[int, ...], set[int]], ids: list[int]) -> None:
    n = NO_REPEAT_NGRAM
    if len(ids) >= n:
        table.setdefault(tuple(ids[-n:-1]), set()).add(ids[-1])
