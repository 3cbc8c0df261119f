"""Completion-only loss that computes logits only where a completion token is predicted.

A rerank example is a ~500-token prompt and a one-letter completion, so the LM head over every
position (4 x 500 x 49k logits per micro-batch) costs more than the LoRA layers themselves.
The body runs over the whole sequence as usual; the head runs only at the positions whose next
token is labelled (`logits_to_keep` with the union of those positions over the batch). The loss
is the same token-level cross-entropy as trl's completion-only loss.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

IGNORE = -100


def completion_positions(labels: Any) -> Any:
    """Positions t whose logits predict a labelled token t+1, in any row of the batch."""
    return (labels[:, 1:] != IGNORE).any(dim=0).nonzero().squeeze(-1)


def completion_loss(model: Any, inputs: dict[str, Any], num_items: Any = None) -> tuple:
    """(loss, logits at the kept positions, their targets); `num_items` normalises the sum across
    gradient accumulation like the Trainer's own losses (None: mean over this batch)."""
    import torch
    import torch.nn.functional as F

    labels = inputs["labels"]
    keep = completion_positions(labels)
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    logits = model(**forward, logits_to_keep=keep, use_cache=False).logits.float()
    target = labels[:, keep + 1]
    total = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    count = num_items if num_items is not None else (target != IGNORE).sum()
    return total / torch.as_tensor(count, device=total.device).clamp(min=1), logits, target


def completion_trainer() -> type:
    """trl's SFTTrainer with `completion_loss` (and its token accuracy) as the loss."""
    from trl import SFTTrainer

    class CompletionSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, logits, target = completion_loss(model, inputs, num_items_in_batch)
            mask = target != IGNORE
            if mask.any():
                correct = (logits.detach().argmax(-1) == target)[mask].float().mean().item()
                mode = "train" if model.training else "eval"
                self._metrics[mode]["mean_token_accuracy"].append(correct)
            return (loss, SimpleNamespace(logits=logits)) if return_outputs else loss

    return CompletionSFTTrainer
