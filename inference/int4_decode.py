"""4-bit weights for one-row decoding steps on CPU (`llm.decode_weights = "int4"`).

A batch-1 decoding step of a small model reads every weight once per token, and on a CPU that
read, not the arithmetic, is what the step waits for: ~70% of a bf16 step of the default model
is in its linear layers (`benchmarks/decode_weights.py`). With `decode_weights = "int4"`, each
packed decoder linear also keeps its weight as 4-bit integers with one scale and one offset per
`GROUP` inputs, and a call with one input row (one token of one sequence) runs ATen's
`_weight_int4pack_mm_for_cpu` on them: a quarter of the bytes, half the step with AMX, two
thirds on an AMD EPYC. On a CPU without bf16 units the model stays fp32, and the 4-bit weights
are an eighth of its bytes (the step's input and output are converted to and from bf16): 1.8x
the decoding speed on an AVX2-only AMD EPYC.

- The grid is Q4_1's: per 32 inputs, `w = q * step + low` with q in 0..15. The bundled model is
  a Q4_1 GGUF, so its weights come back as they were shipped (up to bf16 rounding of the
  step and offset); for another model this is ordinary 4-bit weight-only quantisation.
- Only a decoding step of one row uses them: the generation loop marks its forward passes
  (`decoding_step`), so prefill, ranking (even a prompt whose last token is all that is left
  after the prefix cache), the title spans the reply's constraint forces (several tokens in
  one forward pass) and batched decoding (two rows or more) stay on the model's own weights
  (bf16 or fp32), so picks do not change and batched decoding stays batch-invariant.
- The reply a one-row decode writes is that of slightly different weights: the same in its
  first words on a probe prompt, then its own (the checks and the title constraint apply as
  always).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

GROUP = 32
_step = threading.local()  # set by the generation loop around a decoding step's forward pass


@contextmanager
def decoding_step() -> Iterator[None]:
    """Marks the forward pass run inside it (on this thread) as a decoding step."""
    _step.on = True
    try:
        yield
    finally:
        _step.on = False


def in_decoding_step() -> bool:
    return getattr(_step, "on", False)


def available() -> bool:
    import torch

    ops = torch.ops.aten
    return hasattr(ops, "_weight_int4pack_mm_for_cpu") and hasattr(
        ops, "_convert_weight_to_int4pack_for_cpu"
    )


def int4_weights(weight: Any) -> tuple[Any, Any] | None:
    """(packed 4-bit weight, bf16 [in/GROUP, out, 2] steps and zeros) of a [out, in] weight;
    None when `in` is not a multiple of `GROUP`, `out` not one of 16 (the kernel's tiles) or
    the kernels are missing."""
    import torch

    out_features, in_features = weight.shape
    if in_features % GROUP or out_features % 16 or not available():
        return None
    blocks = weight.detach().float().reshape(out_features, in_features // GROUP, GROUP)
    low = blocks.amin(-1)
    step = ((blocks.amax(-1) - low) / 15).clamp(min=1e-8)
    q = torch.round((blocks - low[..., None]) / step[..., None]).clamp(0, 15)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        q.reshape(out_features, in_features).to(torch.int32), 1
    )
    zero = low + 8 * step  # the kernel computes (q - 8) * step + zero
    scales_zeros = torch.stack([step.t(), zero.t()], -1).to(torch.bfloat16).contiguous()
    return packed, scales_zeros


def int4_linear(x: Any, weights: tuple[Any, Any], out_features: int, bias: Any) -> Any:
    """`x @ W.T + bias` from `int4_weights`' output, for a bf16 `x` of any leading shape."""
    import torch

    packed, scales_zeros = weights
    flat = x.reshape(-1, x.shape[-1])
    y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, packed, GROUP, scales_zeros)
    if bias is not None:
        y = y + bias
    return y.reshape(*x.shape[:-1], out_features)
