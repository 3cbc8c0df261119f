"""Stream one prompt's greedy generation token by token, with `LLM.generate_ids`' rules.

    for piece in stream_text(llm, prompt, 40, allowed=ids):
        print(piece, end="", flush=True)

`LLM.generate_ids` is batched and returns when every row is done; a reply shown as it is
written needs each token as soon as it is picked. This is the same decoding for a single row
(repetition penalty, no repeated 3-gram over prompt + output, an allowed-token set scoring only
those rows of the output layer, stop at `stop` / end-of-sequence / sentence end), so the tokens
equal `generate_ids([prompt], ...)[0]` (tests/test_reply_writer.py checks it). The model lock
is held per step, never across a `yield`: a consumer may resume the generator on another
thread (Gradio does), and other requests' steps may run between two of ours.

Phase B moves this into `LLM` (`LLM.stream_ids`, sharing one step function with
`generate_ids`); it uses LLM internals until then.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from inference.generation import NO_REPEAT_NGRAM, REPETITION_PENALTY, SENTENCE_END


def stream_ids(
    llm,
    prompt: str,
    max_new_tokens: int,
    *,
    stop: str | None = "\n",
    allowed: set[int] | None = None,
    one_sentence: bool = False,
    constraint=None,
) -> Iterator[int]:
    """The new token ids of `prompt`, each yielded as soon as it is picked (no end-of-sequence).

    `constraint` (e.g. `chatbot.reply.title_constraint.TitleConstraint`): before each step,
    `constraint.allowed(ids_so_far)` names the token ids that step may pick (None: any of
    `allowed`); `constraint.vocabulary()` is used as `allowed` when that is None."""
    import torch

    if constraint is not None and allowed is None:
        allowed = constraint.vocabulary()

    row = llm._encode(prompt)
    vocab = llm.model.config.vocab_size
    eos = llm._eos_ids()
    cols = sorted(i for i in allowed if 0 <= i < vocab) if allowed is not None else None
    col_of = {t: c for c, t in enumerate(cols)} if cols is not None else None

    def col(token: int) -> int | None:
        return token if col_of is None else col_of.get(token)

    with llm.lock, torch.inference_mode():
        hidden, cache, _ = llm._prefill([row], max_new_tokens)
        head = llm._head_rows(cols)
        width = len(cols) if cols is not None else vocab
        seen = torch.zeros(1, width, dtype=torch.bool, device=hidden.device)
        seen[0, [c for c in map(col, row) if c is not None]] = True
    history = list(row)
    banned_after: dict[tuple[int, ...], set[int]] = {}
    n = NO_REPEAT_NGRAM
    for i in range(len(history) - n + 1):
        banned_after.setdefault(tuple(history[i : i + n - 1]), set()).add(history[i + n - 1])
    out: list[int] = []
    for step in range(max_new_tokens):
        with llm.lock, torch.inference_mode():
            started = time.perf_counter()
            scores = llm._project(hidden, head, cols)
            penalized = torch.where(
                scores < 0, scores * REPETITION_PENALTY, scores / REPETITION_PENALTY
            )
            scores = torch.where(seen, penalized, scores)
            if constraint is not None:
                step_ids = constraint.allowed(out)
                if step_ids is not None:
                    keep = torch.full_like(scores, float("-inf"))
                    keep[0, [c for c in map(col, step_ids) if c is not None]] = 0.0
                    scores = scores + keep
            banned = banned_after.get(tuple(history[-(n - 1) :]))
            if banned:
                unbanned = scores.clone()
                scores[0, [c for c in map(col, banned) if c is not None]] = float("-inf")
                if not torch.isfinite(scores).any():  # the 3-gram rule left nothing allowed
                    scores = unbanned
            c = int(scores[0].argmax())
            token = c if cols is None else cols[c]
            if token in eos:
                llm.stats.decode_s += time.perf_counter() - started
                return
            out.append(token)
            history.append(token)
            seen[0, c] = True
            if len(history) >= n:
                banned_after.setdefault(tuple(history[-n:-1]), set()).add(history[-1])
            text = llm.tokenizer.decode(out).strip()
            done = (stop and stop in text) or (one_sentence and text.endswith(SENTENCE_END))
            last = done or step == max_new_tokens - 1
            if not last:
                hidden = llm._forward(torch.tensor([[token]], device=hidden.device), cache)
            llm.stats.generated_tokens += 1
            llm.stats.decode_s += time.perf_counter() - started
        yield token
        if last:
            return


def stream_text(
    llm,
    prompt: str,
    max_new_tokens: int,
    *,
    stop: str | None = "\n",
    allowed: set[int] | None = None,
    constraint=None,
) -> Iterator[str]:
    """Text pieces of the generation, in order; their concatenation is the decoded output up to
    `stop` (excluded). A piece is held back while it ends inside a multi-byte character."""
    ids: list[int] = []
    shown = ""
    tokens = stream_ids(
        llm, prompt, max_new_tokens, stop=stop, allowed=allowed, constraint=constraint
    )
    for token in tokens:
        ids.append(token)
        text = llm.tokenizer.decode(ids, skip_special_tokens=True)
        if stop and stop in text:
            text = text.split(stop)[0]
        elif text.endswith("\ufffd"):
            continue
        if len(text) > len(shown) and text.startswith(shown):
            yield text[len(shown) :]
            shown = text
