"""Label scoring: log-probabilities of single-token labels as the next token (the rerankers).

`LabelScoring` is a mixin of `inference.llm.LLM` over its `ForwardPass`: one batched prefill,
then only the labels' rows of the output layer, in fp32.
"""

from __future__ import annotations

from typing import Any

from inference.errors import ModelError


class LabelScoring:
    """`label_logprobs` / `label_logprobs_rows` of a loaded LLM."""

    tokenizer: Any
    lock: Any

    def label_token_ids(self, labels: list[str]) -> list[int]:
        ids = []
        for label in labels:
            toks = self.tokenizer.encode(label, add_special_tokens=False)
            if len(toks) != 1:
                raise ModelError(f"label {label!r} is not a single token for this tokenizer")
            ids.append(toks[0])
        return ids

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        """Log-probabilities (normalised over `labels`) of each label as the next token.

        Only the labels' rows of the output layer are computed, in fp32: bf16 logits are ~1/16
        apart near the top, which would tie close candidates.
        """
        return self.label_logprobs_rows([prompt], labels)[0]

    def label_logprobs_rows(self, prompts: list[str], labels: list[str]) -> list[list[float]]:
        """`label_logprobs` of several prompts in one batch; the part they share runs once."""
        import torch

        label_ids = self.label_token_ids(labels)
        rows = [self._encode(p) for p in prompts]
        with self.lock, torch.inference_mode():
            out, _, _ = self._prefill(rows)
            chosen = self._scores(out, label_ids, fp32=True)
        return torch.log_softmax(chosen, dim=-1).tolist()
