"""The forward passes under every LLM operation: prefill with shared-prefix reuse, one step.

`ForwardPass` is a mixin of `inference.llm.LLM` (it reads `model`, `tokenizer`, `lock`,
`prefix_cache`, `stats` and the split output layer). The part a batch of prompts shares runs
once, or comes from the prefix cache (`inference.prefix_cache`); only the output-layer rows a
caller scores are computed (`inference.linear_packing.split_head`).
"""

from __future__ import annotations

import time
from typing import Any

from inference import compute_thread
from inference.errors import ModelError
from inference.int4_decode import decoding_step
from inference.prefix_cache import Prefix, common_prefix_length, growing_cache


class ForwardPass:
    """Prefill, single steps and output-layer projections of a loaded causal LM."""

    model: Any
    tokenizer: Any
    lock: Any
    prefix_cache: Any
    stats: Any
    _decoder: Any
    _head: Any

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def cache_prefix(self, text: str) -> int:
        """Run `text` (a static prompt head) once and keep its keys/values; returns its tokens."""
        return self._cache_ids(self._encode(text))

    def cache_head(self, marked_prompt: str, marker: str) -> int:
        """Cache the static head of a prompt template: `marked_prompt` is the template rendered
        with `marker` in its first variable. The head's last token is left out (it may merge
        with the text that follows), so real prompts always start with the cached ids."""
        head = marked_prompt.split(marker, 1)[0]
        return self._cache_ids(self._encode(head)[:-1])

    def _cache_ids(self, ids: list[int]) -> int:
        import torch

        if self.prefix_cache is None or not ids:
            return 0
        with self.lock, torch.inference_mode():
            hit = self.prefix_cache.longest(ids)
            if hit is None or len(hit.ids) < len(ids):
                cache = self._new_cache(hit, 1)
                self._forward(ids[len(hit.ids) if hit else 0 :], cache)
                self.prefix_cache.put(Prefix(tuple(ids), _kv_of(cache)))
        return len(ids)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen = getattr(self.model, "generation_config", None)
        extra = getattr(gen, "eos_token_id", None)
        ids.update(extra if isinstance(extra, list) else [extra])
        return {i for i in ids if i is not None}

    def _new_cache(self, prefix: Prefix | None, batch: int, room: int = 0) -> Any:
        """A fresh cache for one call: a copy of `prefix` per row, space for `room` tokens."""
        return growing_cache(self.model.config, prefix, batch, room)

    def _forward(
        self,
        ids: Any,
        cache: Any,
        mask: Any = None,
        positions: Any = None,
        decoding: bool = False,
        **extra: Any,
    ) -> Any:
        """Run `ids` after what `cache` holds. Returns the last position's final hidden state
        [batch, hidden] when the output layer is split off (`_project` scores it), else its
        logits [batch, vocab]. `extra`: keyword arguments for the attention function
        (`inference.row_attention`). `decoding`: a decoding step (`llm.decode_weights`).
        Runs on the compute thread (`inference.compute_thread`)."""
        import torch

        if not isinstance(ids, torch.Tensor):
            ids = torch.tensor([ids], device=self.device)
        if decoding:
            return compute_thread.run(self._decoding_step, ids, cache, mask, positions, extra)
        return compute_thread.run(self._run_model, ids, cache, mask, positions, extra)

    def _decoding_step(self, ids: Any, cache: Any, mask: Any, positions: Any, extra: Any) -> Any:
        with decoding_step():
            return self._run_model(ids, cache, mask, positions, extra)

    def _run_model(self, ids: Any, cache: Any, mask: Any, positions: Any, extra: Any) -> Any:
        kwargs = {
            "input_ids": ids.to(self.device),
            "attention_mask": mask,
            "position_ids": positions,
            "past_key_values": cache,
            "use_cache": True,
            **extra,
        }
        if self._decoder is not None:
            return self._decoder(**kwargs).last_hidden_state[:, -1]
        return self.model(**kwargs, logits_to_keep=1).logits[:, -1]

    def _head_rows(self, cols: list[int] | None, fp32: bool = False) -> Any:
        """The output layer's rows for `cols` (all rows for None), or None without a split head."""
        if self._head is None:
            return None
        weight = self._head.weight if cols is None else self._head.weight[cols]
        return weight.float() if fp32 else weight

    def _project(self, out: Any, head: Any, cols: list[int] | None) -> Any:
        """Scores [batch, len(cols)] in fp32 from what `_forward` returned."""
        if head is None:
            logits = out if cols is None else out[:, cols]
            return logits.float()
        return compute_thread.run(_times_head, out, head)

    def _scores(self, out: Any, cols: list[int], *, fp32: bool = False) -> Any:
        return self._project(out, self._head_rows(cols, fp32=fp32), cols)

    def _prefill(self, rows: list[list[int]], new_tokens: int = 0) -> tuple[Any, Any, Any]:
        """Run the prompts; returns (`_forward` output for each row's last token, their cache,
        attention mask or None).

        The part every row shares is run once (or taken from the prefix cache) and copied to
        each row; rows of unequal length are padded between that part and their own tokens,
        with positions counted over real tokens only, so each row sees exactly its prompt.
        """
        import torch

        started = time.perf_counter()
        dev = self.device
        shortest = min(len(r) for r in rows)
        if shortest == 0:
            raise ModelError("cannot run an empty prompt")
        shared = rows[0][: shortest - 1]  # each row keeps >= 1 own token for its logits
        for r in rows[1:]:
            shared = shared[: common_prefix_length(shared, r)]
        done = 0
        hit: Prefix | None = None
        pc = self.prefix_cache
        if pc is not None:
            hit = pc.longest(shared)
            done = len(hit.ids) if hit else 0
        cached = done * len(rows)
        cache = self._new_cache(hit, 1, room=max(map(len, rows)) - done + new_tokens)
        self.stats.cached_tokens += cached
        self.stats.prompt_tokens += sum(len(r) for r in rows) - cached
        if len(rows) == 1:
            out = self._forward(rows[0][done:], cache)
            self.stats.prefill_s += time.perf_counter() - started
            return out, cache, None
        if len(shared) > done:
            self._forward(shared[done:], cache)
            done = len(shared)
        cache.batch_repeat_interleave(len(rows))
        tails = [r[done:] for r in rows]
        width = max(len(t) for t in tails)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(t)) + t for t in tails], device=dev)
        own = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in tails], device=dev)
        mask = torch.cat([own.new_ones(len(rows), done), own], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, done:]
        out = self._forward(ids, cache, mask, positions)
        self.stats.prefill_s += time.perf_counter() - started
        return out, cache, mask


def _times_head(out: Any, head: Any) -> Any:
    return (out.to(head.dtype) @ head.T).float()


def _kv_of(cache: Any) -> tuple[tuple[Any, Any], ...]:
    """A copy of what `cache` holds (its buffers have spare room and keep growing)."""
    return tuple((layer.keys.clone(), layer.values.clone()) for layer in cache.layers)


def full_attention_only(config: Any) -> bool:
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(text, "layer_types", None)
    if types:
        return all(t == "full_attention" for t in types)
    return getattr(text, "sliding_window", None) is None
