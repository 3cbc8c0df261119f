"""Reuse the attention keys/values of prompt prefixes the LLM has already run.

Every reranker and reason prompt starts with the same static part (chat template + system prompt
+ the task's instruction header): its past key/values are computed once and reused, so a call
only runs the tokens after it. Entries are keyed by token ids, so a hit is exact: a prompt whose
tokens do not start with an entry's ids never uses it.

Only prefixes stored explicitly are kept (`LLM.cache_prefix` / `LLM.cache_head`: the static
head of each prompt template, registered by the recommender before its first LLM call). So a
prompt is always split at the same point and its scores never depend on other traffic (bf16
results change slightly with the split point, enough to swap near-tied candidates; learning
shared prefixes from traffic did exactly that). Least recently used entries go first once
`capacity` entries or `max_tokens` tokens are held.

Entries hold (key, value) tensors per layer with batch size 1. They are never mutated: a call
builds its own cache object from them (`growing_cache`: a copy expanded to the batch, in
buffers with room for the new tokens, so a decoding step writes one position in place where
transformers' `DynamicCache` re-copies the whole cache) and appends to that.
The cache belongs to one set of weights: `clear()` it if the weights change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Prefix:
    ids: tuple[int, ...]
    kv: tuple[tuple[Any, Any], ...]  # per layer (key, value), shape [1, heads, len(ids), dim]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    def __init__(self, capacity: int = 8, *, max_tokens: int = 8192) -> None:
        self.capacity = capacity
        self.max_tokens = max_tokens
        self._entries: OrderedDict[tuple[int, ...], Prefix] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, ids: Sequence[int]) -> Prefix | None:
        """The longest stored prefix of `ids` (marked recently used), or None."""
        with self._lock:
            best: Prefix | None = None
            for key, entry in self._entries.items():
                n = len(key)
                if n <= len(ids) and (best is None or n > len(best.ids)) and tuple(ids[:n]) == key:
                    best = entry
            if best is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(best.ids)
            return best

    def put(self, prefix: Prefix) -> None:
        if len(prefix.ids) > self.max_tokens:
            return
        with self._lock:
            self._entries[prefix.ids] = prefix
            self._entries.move_to_end(prefix.ids)
            while len(self._entries) > self.capacity or self._held() > self.max_tokens:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _held(self) -> int:
        return sum(len(k) for k in self._entries)


def growing_cache(config: Any, prefix: Prefix | None, batch: int, room: int) -> Any:
    """A `DynamicCache` whose layers append in place (`_GrowingLayer`), holding a copy of
    `prefix` for each of `batch` rows and space for `room` more tokens."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    n_layers = len(cache.layers) or config.num_hidden_layers
    base = len(prefix.ids) if prefix else 0
    cache.layers = [new_growing_layer(base + room) for _ in range(n_layers)]
    if prefix is not None:
        for layer, (k, v) in zip(cache.layers, prefix.kv, strict=True):
            layer.update(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
    return cache


def _growing_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class _GrowingLayer(DynamicLayer):
        """Keys/values in a buffer with spare room: a decoding step writes one position in
        place instead of copying the whole cache (`DynamicLayer` concatenates)."""

        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity = max(capacity, 1)
            self.length = 0

        def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
            self.dtype, self.device = key_states.dtype, key_states.device
            b, h, _, d = key_states.shape
            self._k = key_states.new_empty(b, h, self.capacity, d)
            self._v = value_states.new_empty(b, h, self.capacity, value_states.shape[-1])
            self.is_initialized = True

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if end > self._k.shape[-2]:
                self._resize(self._k.shape[0], max(end, 2 * self._k.shape[-2]))
            self._k[:, :, self.length : end] = key_states
            self._v[:, :, self.length : end] = value_states
            self.length = end
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.length:
                k, v = self.keys, self.values
                self._resize(k.shape[0] * repeats, self._k.shape[-2])
                self._k[:, :, : self.length] = k.repeat_interleave(repeats, dim=0)
                self._v[:, :, : self.length] = v.repeat_interleave(repeats, dim=0)
                self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove < 0 and self.length:
                self.length = max(0, self.length + tokens_to_remove)
                self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]
            else:
                super().crop(tokens_to_remove)

        def reset(self) -> None:
            super().reset()
            self.length = 0

        def _resize(self, batch: int, capacity: int) -> None:
            old_k, old_v = self._k, self._v
            shape_k = (batch, old_k.shape[1], capacity, old_k.shape[3])
            shape_v = (batch, old_v.shape[1], capacity, old_v.shape[3])
            self._k, self._v = old_k.new_empty(shape_k), old_v.new_empty(shape_v)
            if batch == old_k.shape[0] and self.length:
                self._k[:, :, : self.length] = old_k[:, :, : self.length]
                self._v[:, :, : self.length] = old_v[:, :, : self.length]

    return _GrowingLayer


_LAYER_CLASS: list[type] = []  # defined on first use: importing transformers is heavy


def new_growing_layer(capacity: int) -> Any:
    if not _LAYER_CLASS:
        _LAYER_CLASS.append(_growing_layer_class())
    return _LAYER_CLASS[0](capacity)
