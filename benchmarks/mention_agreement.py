"""How well the chat's title matcher agrees with ReDial's own mention annotation.

    python benchmarks/mention_agreement.py --split dev --json runs/mentions_dev.json

For each dialogue of the split, every utterance of its longest context (the last
recommender turn) goes through the matcher the chat uses (`chatbot.understanding.mentions.MentionFinder`, built
over the ReDial catalog). A detected item agrees when its catalog name is in that turn's
`entity` list, the titles the dataset annotates as mentioned so far. Precision: agreeing
detections / detections; recall: agreeing / annotated catalog titles. The most frequent
disagreeing detections are listed, with the words that triggered them, to show what goes wrong.
Develop changes on `--split train` and report `dev`; the split is the eval's (by dialogue, seed 0).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from evaluation.datasets import DEFAULT_DATA_DIR
from recochat.env import set_env_defaults


def main() -> int:
    set_env_defaults()  # before anything loads torch or Chroma
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=("train", "dev", "test"), default="dev")
    ap.add_argument("--top", type=int, default=15, help="disagreeing detections to list")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="shared datasets")
    opts = ap.parse_args()
    data = opts.data_dir / "redial"
    if not data.is_dir():
        print(f"error: {data} not found: pass --data-dir (the shared datasets)")
        return 2

    from chatbot.understanding.mentions import MentionFinder
    from dialogues.importers import load_rec_turns
    from dialogues.split import split_of
    from retrieval.catalog import load_catalog

    items = load_catalog(data / "id2info.json", "redial").items
    index = MentionFinder.of(items)
    name_of = {it.item_id: it.title for it in items}
    names = set(name_of.values())
    turns, _ = load_rec_turns(data / "valid_data_processed.jsonl", "redial")
    last: dict[str, Any] = {}  # dialog_id -> its turn with the longest context
    for t in (t for t in turns if split_of(t.dialog_id, 0) == opts.split):
        if t.dialog_id not in last or len(t.context) > len(last[t.dialog_id].context):
            last[t.dialog_id] = t

    detected = agree = annotated = 0
    wrong: Counter[tuple[str, str]] = Counter()
    for turn in last.values():
        found: dict[str, str] = {}
        for utterance in turn.context:
            for m in index.find(utterance):
                end = utterance.find(" ", m.start + len(m.title.split("(")[0]))
                found.setdefault(m.item_id, utterance[m.start : end if end > 0 else None])
        truth = {n for n in turn.mentioned if n in names}
        annotated += len(truth)
        detected += len(found)
        for item_id, words in found.items():
            if name_of[item_id] in truth:
                agree += 1
            else:
                wrong[(name_of[item_id], words.strip())] += 1
    figures = {
        "split": opts.split,
        "dialogues": len(last),
        "detected": detected,
        "agree": agree,
        "annotated": annotated,
        "precision": round(agree / detected, 3) if detected else 0.0,
        "recall": round(agree / annotated, 3) if annotated else 0.0,
        "top_disagreements": [
            {"title": title, "text": words, "count": n}
            for (title, words), n in wrong.most_common(opts.top)
        ],
    }
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
