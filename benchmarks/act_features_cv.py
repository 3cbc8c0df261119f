"""Grouped cross-validation of other inputs for the act head: the recommender's previous turn
and the default LLM's hidden states, against the served inputs (message embedding + cues).

    PYTHONPATH=$PWD python benchmarks/act_features_cv.py \
        --redial ../shared/data/redial/valid_data_processed.jsonl --out runs/act_features_cv.json

Rows: the labelled parts named by --rounds (default rounds 1-5; never a held-out round) and
the hand-written synthetic messages, 5-fold `GroupKFold` by dialogue as in train_act_head.py,
scored on the ReDial rows (overall and on the round-5 rows). The same multinomial logistic
regression (`train_act_head.fit`) over each input set:
- served: the MiniLM embedding of the message and `cue_features`;
- + previous cues: whether the previous recommender turn exists, asks ("?"), names a title,
  its length, and which cue groups fire on it;
- + previous embedding: also its MiniLM embedding;
- joined: the MiniLM embedding of "previous | message" instead of the message's;
- llm: SmolLM2-135M hidden states (mean over tokens of the middle layer, or the last token
  of the second-to-last layer) of "User: message" or "Assistant: previous\\nUser: message",
  standardised, with the cues (slow: one forward pass per message, ~2 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from pathlib import Path

log = logging.getLogger("act_features_cv")
_TITLE_WITH_YEAR = re.compile(r"\((?:19|20)\d\d\)")


def previous_cues(previous: str, lex) -> list[float]:
    from chatbot.understanding.acts import CUE_GROUPS, normalize

    t = normalize(previous)
    return [
        float(bool(previous.strip())),
        float("?" in previous),
        float(bool(_TITLE_WITH_YEAR.search(previous))),
        math.log1p(len(t.split())) / 4,
    ] + [1.0 if lex.cues[g].search(t) else 0.0 for g in CUE_GROUPS]


def llm_states(prompts: list[str]):
    """(middle layer mean over tokens, second-to-last layer last token) per prompt."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from chatbot.config import load_settings
    from inference.model_files import convert_builtin

    path = convert_builtin(load_settings().model_cache)  # the default LLM, as served
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    mid, last = [], []
    with torch.inference_mode():
        for text in prompts:
            ids = tok(text, return_tensors="pt", truncation=True, max_length=192)
            states = model(**ids, output_hidden_states=True).hidden_states
            mid.append(states[len(states) // 2][0].mean(0).numpy())
            last.append(states[-2][0, -1].numpy())
    return np.asarray(mid, dtype="float64"), np.asarray(last, dtype="float64")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redial", type=Path, required=True, help="valid_data_processed.jsonl")
    ap.add_argument("--rounds", default="train1,train2,dev,test1,test2,test3,test4,train5")
    ap.add_argument("--no-llm", action="store_true", help="skip the LLM hidden-state inputs")
    ap.add_argument("--out", type=Path, default=Path("runs/act_features_cv.json"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import numpy as np
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    from benchmarks.train_act_head import act_rows, fit, predict
    from chatbot.understanding.act_head import EMBEDDER, cue_features
    from chatbot.understanding.acts import load_lexicon
    from recochat.env import set_env_defaults
    from retrieval.embeddings import load_embedder

    set_env_defaults()
    lex = load_lexicon()
    data = act_rows(args.redial, args.rounds.split(","), lex)
    texts, contexts, previous, groups = data.texts, data.contexts, data.previous, data.groups
    y, masks, redial, round5 = data.y, data.masks, data.labelled, data.of_rounds({5})
    folds = list(GroupKFold(n_splits=5).split(texts, y, groups))

    embedder = load_embedder(EMBEDDER)
    log.info("embedding %d messages and their previous turns", len(texts))
    message = np.asarray(embedder.embed_documents(texts), dtype="float64")
    prev = np.asarray(embedder.embed_documents([p or " " for p in previous]), dtype="float64")
    pairs = list(zip(previous, texts, strict=True))
    joined = np.asarray(
        embedder.embed_documents([f"{p} | {t}" if p else t for p, t in pairs]), dtype="float64"
    )
    cues = np.asarray([cue_features(t, c, lex) for t, c in zip(texts, contexts, strict=True)])
    prev_cues = np.asarray([previous_cues(p, lex) for p in previous])

    def cv(x, c: float, scale: bool = False) -> dict:
        pred = np.zeros(len(y), dtype=int)
        for tr, te in folds:
            xtr, xte = x[tr], x[te]
            if scale:
                scaler = StandardScaler().fit(xtr)
                xtr, xte = scaler.transform(xtr), scaler.transform(xte)
            pred[te] = predict(*fit(xtr, y[tr], c), xte, masks[te])
        ok = pred == y
        return {"all": round(float(ok[redial].mean()), 3),
                "round5": round(float(ok[round5].mean()), 3)}  # fmt: skip

    inputs = {
        "served (embedding + cues)": np.hstack([message, cues]),
        "+ previous cues": np.hstack([message, cues, prev_cues]),
        "+ previous cues + previous embedding": np.hstack([message, cues, prev_cues, prev]),
        "joined embedding + cues": np.hstack([joined, cues]),
    }
    report: dict = {"n": int(redial.sum()), "round5": int(round5.sum()), "cv": {}}
    for name, x in inputs.items():
        for c in (1.0, 3.0, 10.0):
            report["cv"][f"{name} C={c}"] = cv(x, c)
    if not args.no_llm:
        log.info("LLM hidden states of %d messages (one forward pass each)", len(texts))
        alone = llm_states([f"User: {t}" for t in texts])
        paired = llm_states([f"Assistant: {p}\nUser: {t}" if p else f"User: {t}" for p, t in pairs])
        for prompt, states in (("message", alone), ("previous + message", paired)):
            for layer, x in zip(("middle mean", "last token"), states, strict=True):
                for c in (0.01, 0.1):
                    report["cv"][f"llm {layer}, {prompt}, + cues C={c}"] = cv(
                        np.hstack([x, cues]), c, scale=True
                    )
    for name, s in report["cv"].items():
        log.info("%-58s grouped 5-fold %.3f (round-5 rows %.3f)", name, s["all"], s["round5"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
