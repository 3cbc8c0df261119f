"""The output dir of a fine-tuning run.

- `adapter_model.safetensors`: LoRA weights (best dev checkpoint), served with `llm.adapter`
- `adapter_config.json`: peft config (base model, rank, targets)
- `recochat_finetune.json`: config used, data hash, seeds, split sizes, dev metrics, timings
- `loss.png`: train and dev loss per optimizer step
- `examples/train.jsonl`, `examples/dev.jsonl`: the exact prompt/completion pairs used
- `checkpoint-N/`: the last and the best checkpoints (for resuming; pruned to two)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from inference.model_files import ADAPTER_RECORD

log = logging.getLogger(__name__)

RECORD = ADAPTER_RECORD  # the chatbot reads the trained rerank mode from it
LOSS_PLOT = "loss.png"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def save_adapter(model: Any, out: Path) -> None:
    """Write the (best) LoRA adapter as safetensors + adapter_config.json."""
    model.save_pretrained(str(out), safe_serialization=True)
    missing = [f for f in ADAPTER_FILES if not (out / f).is_file()]
    if missing:
        raise RuntimeError(f"adapter save wrote no {', '.join(missing)} in {out}")


def write_record(out: Path, record: dict[str, Any]) -> Path:
    """Write `recochat_finetune.json` atomically."""
    path = out / RECORD
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def loss_points(log_history: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], ...]:
    """(step, train loss) and (step, dev loss) points of a Trainer log history."""
    train = [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e]
    dev = [(int(e["step"]), float(e["eval_loss"])) for e in log_history if "eval_loss" in e]
    return train, dev


def plot_loss(log_history: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Train and dev loss per optimizer step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    train, dev = loss_points(log_history)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        if train:
            ax.plot(*zip(*train, strict=True), label="train loss", marker=".")
        if dev:
            ax.plot(*zip(*dev, strict=True), label="dev loss", marker="o")
        if not train and not dev:
            ax.text(0.5, 0.5, "no steps logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss (completion tokens)")
        ax.set_title(title or "recochat finetune")
        ax.grid(alpha=0.3)
        if train or dev:
            ax.legend()
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
