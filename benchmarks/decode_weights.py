"""Where a decoding step of the served LLM spends its time, and what int8 / int4 weights save.

    python benchmarks/decode_weights.py [--steps 40] [--json runs/decode_weights.json]

It loads the default LLM as `recochat chat` does (bf16 on CPUs
with bf16 units, decoder linears pre-packed for oneDNN, forward passes on the compute thread)
and measures, median of `--steps` batch-1 steps after a 200-token prompt:
- the share of the step's CPU time in the linear layers (torch.profiler), which tells whether
  the step is bound by reading the weights (memory) or by per-op overhead;
- the step with the same decoder linears computed from int8 weights with per-row scales
  (ATen's `_weight_int8pack_mm`, bf16 activations: half the bytes), and from the served int4
  weights (`llm.decode_weights = "int4"`, `inference/int4_decode.py`: a quarter);
- how many greedy tokens of a fixed reply prompt each agrees on with bf16 before they part.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

PROMPT = "Recommend one movie like Heat and say why, in one sentence."
HEAD = "Write the recommender's next message in this chat: one or two short, friendly sentences. "


def low_bit_weights(llm, dense) -> list:
    """Per packed decoder linear of `llm`: int8 weights with row scales, and the served int4
    weights (`inference.int4_decode`), both from `dense`."""
    import torch

    from inference.int4_decode import int4_weights

    weights = {
        name: m.weight.detach() for name, m in dense.named_modules() if type(m) is torch.nn.Linear
    }
    layers = []
    for name, module in llm.model.named_modules():
        if hasattr(module, "packed") and name in weights:
            w = weights[name].float()
            scale = w.abs().amax(1).clamp(min=1e-8) / 127
            module.int8 = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
            module.int8_scale = scale.to(torch.bfloat16)
            module.int4_saved = int4_weights(weights[name])
            layers.append(module)
    return layers


def use_weights(layers: list, kind: str) -> None:
    """Run one-row decoding steps of `layers` from `kind` ("bf16", "int8", "int4") weights."""
    import torch

    from inference.int4_decode import in_decoding_step

    for module in layers:
        if not hasattr(module, "bf16_forward"):
            module.bf16_forward = module.forward

        def int8_forward(x, m=module):
            if x.numel() != m.in_features or not in_decoding_step():  # as int4 is routed
                return m.bf16_forward(x)
            y = torch.ops.aten._weight_int8pack_mm(x.reshape(1, -1), m.int8, m.int8_scale)
            return y.reshape(*x.shape[:-1], m.out_features)

        module.int4 = module.int4_saved if kind == "int4" else None  # PackedLinear routes it
        module.forward = int8_forward if kind == "int8" else module.bf16_forward


def step_ms(llm, steps: int) -> float:
    import torch

    row = llm._encode(HEAD * 8)[:200]
    with torch.inference_mode():
        _, cache, _ = llm._prefill([row], steps + 8)
        token = torch.tensor([[row[-1]]])
        times = []
        for _ in range(steps):
            started = time.perf_counter()
            llm._forward(token, cache, decoding=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def linear_share(llm, steps: int) -> float:
    import torch

    from inference import compute_thread

    row = llm._encode(HEAD * 8)[:200]

    def profile():
        with torch.inference_mode():
            _, cache, _ = llm._prefill([row], steps + 8)
            token = torch.tensor([[row[-1]]])
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
                for _ in range(steps):
                    llm._forward(token, cache, decoding=True)
        return p

    events = compute_thread.run(profile).key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    linear = sum(e.self_cpu_time_total for e in events if "linear" in e.key or "mm" in e.key)
    return linear / total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from recochat.env import set_env_defaults

    set_env_defaults(serving=True)
    from inference.llm import load_llm
    from inference.model_files import load_base_model
    from inference.settings import LLMSettings

    cache = Path(tempfile.mkdtemp(prefix="decode-weights-"))
    settings = LLMSettings()
    llm = load_llm(settings, cache)
    dense, _ = load_base_model(settings, cache)
    layers = low_bit_weights(llm, dense)
    del dense
    if not layers:
        raise SystemExit(
            "error: the model's linears are not packed here (no bf16 CPU): nothing to compare"
        )
    prompt = llm.chat_prompt(PROMPT)
    out: dict = {
        "linears": len(layers),
        "linear_share_bf16": round(linear_share(llm, args.steps), 3),
    }
    replies = {}
    for kind in ("bf16", "int8", "int4", "bf16", "int8", "int4"):
        use_weights(layers, kind)
        out.setdefault("step_ms", {}).setdefault(kind, []).append(
            round(step_ms(llm, args.steps), 2)
        )
        replies.setdefault(kind, list(llm.stream_ids(prompt, 40, stop=None)))
    use_weights(layers, "bf16")
    base = replies["bf16"]
    for kind, ids in replies.items():
        agreed = next((i for i, (x, y) in enumerate(zip(base, ids, strict=False)) if x != y), None)
        out.setdefault("greedy_tokens_agreed", {})[kind] = (
            min(len(base), len(ids)) if agreed is None else agreed
        )
        out.setdefault("reply", {})[kind] = llm.tokenizer.decode(ids)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
