"""Fit and cross-validate the act classifier's learned head (act_head.py) on the labelled acts.

    PYTHONPATH=$PWD python benchmarks/train_act_head.py \
        --redial ../shared/data/redial/valid_data_processed.jsonl \
        --out runs/act_head.json --report runs/act_head_cv.json

Features: the bundled MiniLM embedding of the message plus the rule features
(`act_head.rule_features`). Fitted on the labelled rounds named by --rounds (train, dev and
the spent test rounds; never a held-out round) and the hand-written synthetic messages.
Chooses the regularisation C by 5-fold cross-validation grouped by dialogue and writes the
fold accuracies; the weights file holds coefficients only, no text.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from chatbot.understanding.act_head import EMBEDDER, allowed_acts, rule_features
from chatbot.understanding.acts import ACTS, load_lexicon
from evaluation.act_labels import load_labelled, load_synthetic, turn_context

log = logging.getLogger("train_act_head")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redial", type=Path, required=True, help="valid_data_processed.jsonl")
    ap.add_argument("--out", type=Path, default=Path("runs/act_head.json"))
    ap.add_argument("--report", type=Path, default=Path("runs/act_head_cv.json"))
    ap.add_argument(
        "--rounds",
        default="train,dev,test1,test2,test3",
        help="labelled parts to fit on (split, or split+round); keep held-out rounds out",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    from recochat.env import set_env_defaults
    from retrieval.embeddings import load_embedder

    set_env_defaults()
    lex = load_lexicon()
    parts = args.rounds.split(",")
    rows = [
        u for u in load_labelled(args.redial) if u.split in parts or f"{u.split}{u.round}" in parts
    ]
    synthetic = load_synthetic()
    texts = [u.text for u in rows] + [s.text for s in synthetic]
    contexts = [turn_context(u, lex) for u in rows] + [s.context for s in synthetic]
    labels = [u.act for u in rows] + [s.act for s in synthetic]
    groups = [u.dialog_id for u in rows] + [f"synthetic-{i}" for i in range(len(synthetic))]
    log.info("embedding %d messages", len(texts))
    embedder = load_embedder(EMBEDDER)
    vecs = np.asarray([embedder.embed_query(t) for t in texts], dtype="float64")
    rules = np.asarray([rule_features(t, c, lex) for t, c in zip(texts, contexts, strict=True)])
    x = np.hstack([vecs, rules])
    y = np.asarray([ACTS.index(a) for a in labels])
    masks = np.asarray([[a in allowed_acts(c) for a in ACTS] for c in contexts])
    is_redial = np.asarray([True] * len(rows) + [False] * len(synthetic))

    report: dict = {"n": len(rows), "synthetic": len(synthetic), "cv": {}}
    rule_pred = rules[:, : len(ACTS)].argmax(1)
    report["cv"]["rules"] = round(float((rule_pred == y)[is_redial].mean()), 3)
    best_c, best_acc = None, -1.0
    for c in (0.3, 1.0, 3.0, 10.0, 30.0):
        correct = []
        for tr, te in GroupKFold(n_splits=5).split(x, y, groups):
            model = LogisticRegression(C=c, max_iter=3000).fit(x[tr], y[tr])
            proba = np.zeros((len(te), len(ACTS)))
            proba[:, model.classes_] = model.predict_proba(x[te])
            pred = np.where(masks[te], proba, -1).argmax(1)
            correct += list(zip(te, pred == y[te], strict=True))
        acc = float(np.mean([ok for i, ok in correct if is_redial[i]]))
        report["cv"][f"head C={c}"] = round(acc, 3)
        log.info("C=%s: grouped 5-fold accuracy on ReDial rows %.3f", c, acc)
        if acc > best_acc:
            best_c, best_acc = c, acc
    log.info("rules alone on the same rows: %.3f; chosen C=%s", report["cv"]["rules"], best_c)
    model = LogisticRegression(C=best_c, max_iter=3000).fit(x, y)
    coef = np.zeros((len(ACTS), x.shape[1]))
    intercept = np.full(len(ACTS), -30.0)  # an act never seen in training is never chosen
    coef[model.classes_] = model.coef_
    intercept[model.classes_] = model.intercept_
    args.out.write_text(
        json.dumps(
            {
                "acts": list(ACTS),
                "embedder": EMBEDDER,
                "C": best_c,
                "fitted_on": parts + ["synthetic"],
                "coef": [[round(float(v), 5) for v in row] for row in coef],
                "intercept": [round(float(v), 5) for v in intercept],
            }
        )
        + "\n",
        encoding="utf-8",
    )
    report["C"] = best_c
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s and %s", args.out, args.report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
