"""Attention row by row over each row's own keys: a padded batch that computes like lone rows.

A decoding batch (`inference.stream_batching`) holds rows of unequal length, left-padded in one
cache. Attention with a padding mask rounds differently in bf16 from attention over the row's
keys alone, which is enough to change a greedy reply. Inside `rows_attention(model, starts)`,
each layer's attention runs once per row, over that row's keys from `starts[row]` on, with no
mask, through the model's own attention function: exactly the call a lone row makes. Every
other part of the step (projections, MLP, norms) stays batched; those compute each row alike
whatever the batch holds.

Used while the caller holds the model's lock (the implementation name is swapped on the
model's config for the duration of one forward pass, then restored).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAME = "recochat_rows"
_REGISTERED: list[bool] = []


@contextmanager
def rows_attention(model: Any, starts: list[int]) -> Iterator[dict[str, Any]]:
    """Forward kwargs under which `model`'s attention runs row by row from `starts`; rows
    past `len(starts)` (padding rows whose output is never read) copy the last row's."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    _register()
    config = model.config
    before = config._attn_implementation
    base = ALL_ATTENTION_FUNCTIONS.get_interface(before, None)
    if base is None:  # eager: the model's own function, by the same lookup its layers use
        from transformers.models.llama.modeling_llama import eager_attention_forward

        base = eager_attention_forward
    config._attn_implementation = NAME
    try:
        yield {"row_starts": starts, "row_attention": base}
    finally:
        config._attn_implementation = before


def _row_attention(module, query, key, value, attention_mask, **kwargs):
    import torch

    starts = kwargs.pop("row_starts")
    base = kwargs.pop("row_attention")
    outs = []
    for b, start in enumerate(starts):
        out, _ = base(
            module, query[b : b + 1], key[b : b + 1, :, start:], value[b : b + 1, :, start:],
            None, **kwargs,
        )  # fmt: skip
        outs.append(out)
    outs += [outs[-1]] * (query.shape[0] - len(starts))  # rows never read: any values do
    return torch.cat(outs), None


def _register() -> None:
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, _row_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # built, then unused: rows need no mask
    _REGISTERED.append(True)
