"""A probe: fine-tune the bundled MiniLM end to end as the act classifier, against the served
logistic-regression head, on the same grouped folds.

    PYTHONPATH=$PWD python benchmarks/act_encoder_finetune.py \
        --redial ../shared/data/redial/valid_data_processed.jsonl --folds 1 [--previous] \
        --out runs/act_encoder_finetune.json

Rows: label rounds 1-6 and the synthetic messages (as train_act_head.py fits the served head),
`GroupKFold(5)` by dialogue; the first --folds folds are run (one fold: ~4 min on 2 cores).
The model: MiniLM (all weights trained, AdamW 5e-5, linear decay, batch 16, --epochs), mean
pooled, then one linear layer over the pooled vector and the cue features; `--previous` puts
the recommender's previous turn first as a segment pair. The context mask of the served head
applies to both. Prints each fold's accuracy (all ReDial rows, and rounds 5-6) for the
fine-tuned encoder and for the served head refitted on the same training rows.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redial", type=Path, required=True, help="valid_data_processed.jsonl")
    ap.add_argument("--folds", type=int, default=1, help="how many of the 5 folds to run")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--previous", action="store_true", help="the previous turn as segment A")
    ap.add_argument("--out", type=Path, default=Path("runs/act_encoder_finetune.json"))
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from sklearn.model_selection import GroupKFold
    from transformers import AutoModel, AutoTokenizer

    from benchmarks.train_act_head import act_rows, design, fit, predict
    from chatbot.understanding.act_head import EMBEDDER, cue_features
    from chatbot.understanding.acts import ACTS, load_lexicon
    from recochat.env import set_env_defaults
    from retrieval.embeddings import load_embedder, resolve_model_dir

    set_env_defaults()
    torch.manual_seed(0)
    lex = load_lexicon()
    parts = ["train1", "train2", "dev", "test1", "test2", "test3", "test4", "train5", "train6"]
    data = act_rows(args.redial, parts, lex)
    texts, contexts, previous, groups = data.texts, data.contexts, data.previous, data.groups
    y, masks, redial, fresh = data.y, data.masks, data.labelled, data.of_rounds({5, 6})
    cues = torch.tensor(
        np.asarray([cue_features(t, c, lex) for t, c in zip(texts, contexts, strict=True)]),
        dtype=torch.float32,
    )
    path = resolve_model_dir(EMBEDDER)
    tok = AutoTokenizer.from_pretrained(path)
    if args.previous:
        enc = tok([p[-300:] or "-" for p in previous], texts, truncation="only_first",
                  max_length=128, padding=True, return_tensors="pt")  # fmt: skip
    else:
        enc = tok(texts, truncation=True, max_length=96, padding=True, return_tensors="pt")
    x_head = design(texts, contexts, lex, load_embedder(EMBEDDER), "cues")

    class Classifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(path, dtype=torch.float32)
            self.out = torch.nn.Linear(self.encoder.config.hidden_size + cues.shape[1], len(ACTS))

        def forward(self, rows_: np.ndarray) -> torch.Tensor:
            width = int(enc["attention_mask"][rows_].sum(1).max())
            att = enc["attention_mask"][rows_, :width]
            h = self.encoder(input_ids=enc["input_ids"][rows_, :width], attention_mask=att)
            m = att.unsqueeze(-1).float()
            pooled = (h.last_hidden_state * m).sum(1) / m.sum(1)
            return self.out(torch.cat([pooled, cues[rows_]], -1))

    def fine_tune(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        model = Classifier()
        opt = torch.optim.AdamW(
            [{"params": model.encoder.parameters(), "lr": 5e-5},
             {"params": model.out.parameters(), "lr": 2e-3}], weight_decay=0.01,
        )  # fmt: skip
        steps = args.epochs * math.ceil(len(train) / 16)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / steps))
        target, rng = torch.tensor(y), np.random.default_rng(0)
        model.train()
        for _ in range(args.epochs):
            order = rng.permutation(train)
            for i in range(0, len(order), 16):
                batch = order[i : i + 16]
                loss = torch.nn.functional.cross_entropy(model(batch), target[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        with torch.inference_mode():
            logits = np.concatenate([model(test[i : i + 64]).numpy()
                                     for i in range(0, len(test), 64)])  # fmt: skip
        return np.where(masks[test], logits, -np.inf).argmax(1)

    def score(pred: np.ndarray, test: np.ndarray) -> dict:
        ok = pred == y[test]
        return {"all": round(float(ok[redial[test]].mean()), 3),
                "rounds5-6": round(float(ok[fresh[test]].mean()), 3)}  # fmt: skip

    report: dict = {"epochs": args.epochs, "previous": args.previous, "folds": []}
    for k, (train, test) in enumerate(list(GroupKFold(n_splits=5).split(texts, y, groups))):
        if k >= args.folds:
            break
        head = predict(*fit(x_head[train], y[train], 3.0), x_head[test], masks[test])
        tuned = fine_tune(train, test)
        report["folds"].append({"fine-tuned encoder": score(tuned, test),
                                "served head": score(head, test)})  # fmt: skip
        print(f"fold {k}: {report['folds'][-1]}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
