"""CPU/GPU speed-ups for the loaded LLM that do not change what it computes.

- `resolve_dtype`: bf16 on CUDA and on CPUs with bf16 units (AMX / AVX512-BF16), where bf16
  matmuls run ~10x the fp32 rate; fp32 on other CPUs, which only emulate bf16.
- `pack_linears`: on CPU in bf16, each `nn.Linear` of the decoder keeps its weight pre-packed
  in oneDNN's blocked layout; a plain bf16 `F.linear` re-packs the weight on every call, which
  doubles the cost of a decoding step (measured: 70 vs 130 us for a 576x1536 layer at 5 rows).
  The packed layer computes the same values (checked on a probe input before it is used).
- `decode_weights = "int4"`: one-row decoding steps run from 4-bit weights
  (`inference.int4_decode`), 1.4-2x as fast per step; everything else stays on the packed bf16.
  On a CPU without bf16 units the model stays fp32 and unpacked, and each decoder linear keeps
  its fp32 weight for everything but those steps (`_make_int4_decoding_linear`): a step there reads
  an eighth of the bytes, which is what an fp32 step waits for.
- `split_head`: the decoder and its output layer, so a step scores only the vocabulary rows it
  needs (the reranker's letters in fp32, a reason's allowed words) instead of all 49k.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PACK_ROWS_HINT = 5  # rows per call oneDNN optimises the layout for: a batch of reasons


def cpu_has_bf16() -> bool:
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_dtype(name: str, device: str) -> Any:
    """The torch dtype for `llm.dtype` (`auto` or a dtype name) on `device`."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def _packing_available() -> bool:
    import torch

    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
    )


def _make_packed_linear(linear: Any, int4: bool = False) -> Any:
    import torch

    from inference.int4_decode import in_decoding_step, int4_linear, int4_weights

    class PackedLinear(torch.nn.Module):
        """`nn.Linear` with its weight kept in oneDNN's blocked layout (inference only); with
        `int4`, a one-row call inside a decoding step runs from 4-bit weights
        (`inference.int4_decode`)."""

        def __init__(self, dense: torch.nn.Linear) -> None:
            super().__init__()
            self.in_features, self.out_features = dense.in_features, dense.out_features
            w = dense.weight.detach()
            self.packed = torch.ops.mkldnn._reorder_linear_weight(w, PACK_ROWS_HINT)
            self.bias = None if dense.bias is None else dense.bias.detach()
            self.int4 = int4_weights(w) if int4 else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.int4 is not None and x.numel() == self.in_features and in_decoding_step():
                return int4_linear(x, self.int4, self.out_features, self.bias)
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    return PackedLinear(linear)


def pack_linears(model: Any, decode_weights: str = "bf16") -> int:
    """Replace the model's CPU decoder `nn.Linear`s (not its output layer, whose rows are
    gathered); returns how many. bf16 ones become packed ones (`decode_weights = "int4"`: their
    one-row decoding steps run from 4-bit weights, `inference.int4_decode`, when a probe agrees
    with bf16). fp32 ones are left as they are unless `decode_weights = "int4"`, which gives them
    the same 4-bit decoding steps (`_make_int4_decoding_linear`).

    Does nothing (returns 0) when the kernels are unavailable or a probe disagrees.
    """
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear
        and child is not head
        and child.weight.device.type == "cpu"
    ]
    bf16 = [t for t in targets if t[2].weight.dtype == torch.bfloat16]
    if bf16:
        return _pack_bf16(bf16, decode_weights)
    fp32 = [t for t in targets if t[2].weight.dtype == torch.float32]
    if fp32 and decode_weights == "int4":
        return _add_int4_decoding(fp32)
    return 0


def _pack_bf16(targets: list[tuple[Any, str, Any]], decode_weights: str) -> int:
    import torch

    if not _packing_available():
        return 0
    try:
        probe = targets[0][2]
        x = torch.randn(3, probe.in_features, dtype=torch.bfloat16)
        with torch.inference_mode():
            same = torch.allclose(
                _make_packed_linear(probe)(x).float(), probe(x).float(), atol=1e-2, rtol=1e-2
            )
        if not same:
            log.warning("packed bf16 linear disagrees with nn.Linear; keeping nn.Linear")
            return 0
        int4 = decode_weights == "int4" and _int4_agrees(probe, _make_packed_linear(probe, True))
        for parent, name, child in targets:
            setattr(parent, name, _make_packed_linear(child, int4))
    except (RuntimeError, AttributeError) as exc:  # an op missing from this torch build
        log.warning("cannot pack bf16 linears (%s); keeping nn.Linear", exc)
        return 0
    return len(targets)


def _add_int4_decoding(targets: list[tuple[Any, str, Any]]) -> int:
    try:
        probe = targets[0][2]
        if not _int4_agrees(probe, _make_int4_decoding_linear(probe)):
            return 0
        for parent, name, child in targets:
            setattr(parent, name, _make_int4_decoding_linear(child))
    except (RuntimeError, AttributeError) as exc:  # an op missing from this torch build
        log.warning("cannot run fp32 linears from 4-bit weights (%s): decoding in fp32", exc)
        return 0
    return len(targets)


def _make_int4_decoding_linear(linear: Any) -> Any:
    import torch

    from inference.int4_decode import in_decoding_step, int4_linear, int4_weights

    class Int4DecodingLinear(torch.nn.Module):
        """An fp32 `nn.Linear` whose one-row calls inside a decoding step run from 4-bit
        weights (in bf16, `inference.int4_decode`); every other call is the plain `F.linear`
        of its own weight, so prefill and ranking compute exactly what they did."""

        def __init__(self, dense: torch.nn.Linear) -> None:
            super().__init__()
            self.in_features, self.out_features = dense.in_features, dense.out_features
            self.weight = dense.weight
            self.bias = dense.bias
            self.int4 = int4_weights(dense.weight.detach())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.int4 is not None and x.numel() == self.in_features and in_decoding_step():
                y = int4_linear(x.to(torch.bfloat16), self.int4, self.out_features, None)
                y = y.to(x.dtype)
                return y if self.bias is None else y + self.bias
            return torch.nn.functional.linear(x, self.weight, self.bias)

    return Int4DecodingLinear(linear)


def _int4_agrees(probe: Any, wrapped: Any) -> bool:
    """Whether the 4-bit path of `wrapped` (`probe` with 4-bit decoding steps) computes what
    `probe`'s own weight does, to within 4-bit rounding (~8% on random weights; a kernel with
    another layout would be ~100% off); says why in one line if not."""
    import torch

    from inference.int4_decode import decoding_step

    if wrapped.int4 is None:
        log.warning(
            "llm.decode_weights = 'int4' needs 4-bit kernels and layers of multiples of 32 "
            "inputs and 16 outputs: decoding from the model's own weights"
        )
        return False
    x = torch.randn(1, probe.in_features, dtype=probe.weight.dtype)
    with torch.inference_mode(), decoding_step():
        want, got = probe(x).float(), wrapped(x).float()
    error = float((got - want).norm() / want.norm().clamp(min=1e-6))
    if error > 0.25:
        log.warning("4-bit weights disagree with the model's (error %.2f): not using them", error)
        return False
    return True


def split_head(model: Any) -> tuple[Any, Any]:
    """(decoder, output layer) when logits are exactly `output_layer(decoder(...))`, else
    (None, None)."""
    import torch

    config = getattr(model, "config", None)
    if any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale")):
        return None, None
    try:
        decoder = model.get_decoder()
        head = model.get_output_embeddings()
    except (AttributeError, ValueError, NotImplementedError):
        return None, None
    hidden = getattr(config, "hidden_size", None)
    if (
        decoder is None
        or decoder is model
        or type(head) is not torch.nn.Linear
        or head.bias is not None
        or not plain_matrix(head.weight, hidden)
    ):
        return None, None
    return decoder, head


def plain_matrix(weight: Any, width: Any) -> bool:
    """A dense [vocab, hidden] weight (not a packed 4-bit one) whose rows can be indexed."""
    import torch

    return (
        type(weight) in (torch.Tensor, torch.nn.Parameter)
        and weight.dim() == 2
        and weight.shape[1] == width
    )
