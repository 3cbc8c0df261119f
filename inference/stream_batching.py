"""Batched decoding of concurrent streamed replies on the transformers engine.

Each session's reply is a `stream_ids` generator. With `llm.batching`, every such stream
becomes one row of a single decoding batch run by one worker thread: a row joins at the next
step once its prompt is prefilled (with the prefix cache, as a lone stream is), each step runs
one forward pass for every row, and a row leaves as soon as it ends (continuous batching). A
row picks its tokens exactly as a lone stream does (`inference.generation._Step`: repetition
penalty, no repeated 3-gram, its own allowed tokens and its own title constraint); tokens the
constraint forces are taken without scoring, one per step.

The rows' keys/values sit in one cache, right-aligned: a row shorter than the longest is
padded on the left, and positions count its own tokens only. The layout is rebuilt only when
rows join or leave; columns every row pads are trimmed.

Batch invariance: the projections and the MLP compute each row alike whatever else the batch
holds, and attention runs row by row over each row's own keys with no mask
(`inference.row_attention`), so a row gets the tokens it gets alone, in bf16 as in fp32. (A
padding mask instead rounds differently in bf16, enough to change a greedy reply, and through
the conversation the next turn's picks.)

The model lock is taken per step, so ranking calls of other sessions run between two steps.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from inference.generation import _forced, _Step, _stops, stream_columns
from inference.row_attention import rows_attention

_END = object()
MIN_WIDTH = 2  # rows per step at the least (see `_Batch`)


@dataclass
class _Row:
    ids: list[int]
    max_new_tokens: int
    stop: str | None
    one_sentence: bool
    constraint: Any
    cols: list[int] | None
    out: list[int] = field(default_factory=list)
    tokens: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    step: Any = None
    forced: int | None = None  # the next token, fed without scoring (inside a title)

    def room(self) -> int:
        return self.max_new_tokens - len(self.out)


@dataclass
class StreamBatchStats:
    streams: int = 0  # streams decoded
    steps: int = 0  # batched forward passes
    row_steps: int = 0  # rows summed over steps (row_steps / steps: the mean batch)
    widest: int = 0  # most rows in one step


class StreamBatcher:
    """`stream_ids` of a transformers `LLM`, with concurrent streams decoded as one batch."""

    def __init__(self, llm: Any, max_rows: int = 32) -> None:
        self.llm = llm
        self.max_rows = max_rows
        self.stats = StreamBatchStats()
        self._guard = threading.Lock()
        self._pending: list[_Row] = []
        self._worker: threading.Thread | None = None

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
        """What `LLM.stream_ids` yields for these arguments, decoded in the shared batch."""
        if max_new_tokens <= 0:
            return
        cols = stream_columns(self.llm.model.config.vocab_size, allowed, constraint)
        row = _Row(self.llm._encode(prompt), max_new_tokens, stop, one_sentence, constraint, cols)
        self._submit(row)
        try:
            while True:
                item = row.tokens.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            row.cancelled = True  # a consumer that stops early frees its row at the next step

    def _submit(self, row: _Row) -> None:
        with self._guard:
            self._pending.append(row)
            if self._worker is None:
                # Not a daemon: at exit the interpreter waits for the batch to end (every row
                # ends within its token budget) instead of killing it inside a forward pass.
                self._worker = threading.Thread(target=self._run, name="recochat-stream-batch")
                self._worker.start()

    def _run(self) -> None:
        batch = _Batch(self.llm, self.stats)
        while True:
            joining: list[_Row] = []
            with self._guard:
                if not batch.rows and not self._pending:  # idle: the next stream starts anew
                    self._worker = None
                    return
                room = self.max_rows - len(batch.rows)
                joining, self._pending = self._pending[:room], self._pending[room:]
            try:
                if joining:
                    batch.admit(joining)
                batch.step()
            except BaseException as exc:  # a failed step: every row's consumer re-raises it
                for r in {id(r): r for r in batch.rows + joining}.values():
                    r.tokens.put(exc)
                batch = _Batch(self.llm, self.stats)


class _Batch:
    """The rows being decoded and their shared cache, mask and last hidden states.

    The tensors hold at least `MIN_WIDTH` rows: a row alone is decoded beside a copy of itself
    (the "ghost", never read), because CPU matrix kernels round a one-row product differently
    from a product of two or more rows, which round each row alike."""

    def __init__(self, llm: Any, stats: StreamBatchStats) -> None:
        self.llm = llm
        self.stats = stats
        self.rows: list[_Row] = []
        self.kv: list[tuple[Any, Any]] = []  # per layer (keys, values) [width, heads, T, dim]
        self.mask: Any = None  # [width, T]: 1 where a row has a token
        self.hidden: Any = None  # [width, hidden] (or logits): what the next pick scores
        self.cache: Any = None
        self.eos = llm._eos_ids()

    def admit(self, rows: list[_Row]) -> None:
        """Prefill each joining row alone (its prompt, through the prefix cache), then add
        them all to the batch in one re-layout."""
        import torch

        llm = self.llm
        joined = []
        for r in rows:
            try:
                with llm.lock, torch.inference_mode():
                    hidden, cache, _ = llm._prefill([r.ids], r.max_new_tokens)
                    r.step = _Step(llm, [r.ids], r.cols, None, hidden.device)
            except Exception as exc:  # this prompt's failure is its consumer's alone
                r.tokens.put(exc)
                continue
            kv = [(layer.keys, layer.values) for layer in cache.layers]
            ones = torch.ones(1, kv[0][0].shape[2], dtype=torch.long, device=hidden.device)
            joined.append((r, kv, ones, hidden))
            self.stats.streams += 1
        if joined:
            self._merge(joined)

    def _merge(self, joined: list[tuple[_Row, list, Any, Any]]) -> None:
        import torch
        from torch.nn.functional import pad

        n = len(self.rows)
        parts = []
        if n:  # the rows already here, without the ghost
            parts.append(([*self.rows], [(k[:n], v[:n]) for k, v in self.kv], self.mask[:n],
                          self.hidden[:n]))  # fmt: skip
        parts += [([r], kv, mask, hidden) for r, kv, mask, hidden in joined]
        width = max(mask.shape[1] for _, _, mask, _ in parts)

        def left(t: Any, n: int) -> Any:  # pad the time axis: dim 2 of keys/values, 1 of a mask
            if n == 0:
                return t
            return pad(t, (0, 0, n, 0)) if t.dim() == 4 else pad(t, (n, 0))

        grow = [width - mask.shape[1] for _, _, mask, _ in parts]
        layers = len(parts[0][1])
        self.kv = [
            tuple(
                torch.cat([left(kv[i][j], n) for (_, kv, _, _), n in zip(parts, grow, strict=True)])
                for j in (0, 1)
            )
            for i in range(layers)
        ]
        self.mask = torch.cat([left(m, n) for (_, _, m, _), n in zip(parts, grow, strict=True)])
        self.hidden = torch.cat([h for _, _, _, h in parts])
        self.rows = [r for rows, _, _, _ in parts for r in rows]
        self._rebuild()

    def _keep(self, keep: list[int]) -> None:
        """Only rows `keep` stay (the ghost goes); the columns every remaining row pads are
        dropped."""
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.kv, self.mask, self.hidden, self.cache = [], None, None, None
            return
        import torch

        index = torch.tensor(keep, device=self.mask.device)
        mask = self.mask.index_select(0, index)
        start = int(mask.any(0).nonzero()[0])
        self.mask = mask[:, start:]
        self.kv = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
            for k, v in self.kv
        ]
        self.hidden = self.hidden.index_select(0, index)
        self._rebuild()

    def _rebuild(self) -> None:
        """A growing cache holding `kv` (plus the ghost of a row alone), with room for the
        longest remaining row."""
        import torch
        from transformers import DynamicCache

        from inference.prefix_cache import new_growing_layer

        ghosts = MIN_WIDTH - len(self.rows)
        if ghosts > 0:  # copies of the last row
            last = [len(self.rows) - 1] * ghosts
            index = torch.tensor(list(range(len(self.rows))) + last, device=self.mask.device)
            self.kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.kv]
            self.mask = self.mask.index_select(0, index)
            self.hidden = self.hidden.index_select(0, index)
        room = self.mask.shape[1] + max(r.room() for r in self.rows)
        cache = DynamicCache(config=self.llm.model.config)
        cache.layers = [new_growing_layer(room) for _ in self.kv]
        for layer, (k, v) in zip(cache.layers, self.kv, strict=True):
            layer.update(k, v)
        self.cache = cache

    def step(self) -> None:
        """Pick each row's next token and hand it to its consumer, then one forward pass for
        all rows, one token each (a token the title constraint forces is taken without scoring
        at the next step)."""
        import torch

        if not self.rows:
            return
        llm = self.llm
        with llm.lock, torch.inference_mode():
            started = time.perf_counter()
            keep, feed, picked = [], [], 0
            for b, r in enumerate(self.rows):
                token = None if r.cancelled else self._pick(b, r)
                if token is None or token in self.eos:
                    r.tokens.put(_END)
                    continue
                r.out.append(token)
                r.step.add(0, token)
                r.tokens.put(token)
                picked += 1
                text = llm.tokenizer.decode(r.out).strip()
                if not r.room() or _stops(text, r.stop, r.one_sentence):
                    r.tokens.put(_END)
                    continue
                r.forced = _forced(r.constraint, r.out, self.eos)
                keep.append(b)
                feed.append(token)
            self._keep(keep)
            if self.rows:
                self._forward(feed)
            llm.stats.generated_tokens += picked
            llm.stats.decode_s += time.perf_counter() - started

    def _pick(self, b: int, r: _Row) -> int:
        if r.forced is not None:
            token, r.forced = r.forced, None
            return token
        only = r.constraint.allowed(r.out) if r.constraint is not None else None
        return r.step.pick(self.hidden[b : b + 1], [False], None if only is None else [only])[0]

    def _forward(self, feed: list[int]) -> None:
        """Run each row's new token (and the ghost's copy) after the cache: one batched
        forward pass whose attention runs row by row over each row's own keys."""
        import torch

        feed = feed + [feed[-1]] * (self.mask.shape[0] - len(feed))
        ids = torch.tensor(feed, device=self.mask.device).unsqueeze(1)
        starts = (self.mask == 0).sum(-1).tolist()[: len(self.rows)]  # first real columns
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(feed), 1)], dim=1)
        positions = self.mask.sum(-1, keepdim=True) - 1
        with rows_attention(self.llm.model, starts) as extra:
            self.hidden = self.llm._forward(ids, self.cache, None, positions, **extra)
        self.kv = [(layer.keys, layer.values) for layer in self.cache.layers]
        self.stats.steps += 1
        self.stats.row_steps += len(self.rows)
        self.stats.widest = max(self.stats.widest, len(self.rows))
