"""Labelled dialogue acts of OpenDialKG seeker turns: keys and labels in the repo, text from ../shared.

`evaluation/data/dialogue_acts_opendialkg.jsonl` has the rows of `dialogue_acts.jsonl`
(`{"dialog_id", "utterance", "round", "sample", "act", "slot"}`), labelled under the same guide
(`evaluation/act_labels.py`). OpenDialKG's two public files split one dialogue's turns between
them (543 dialogues are in both), so a dialogue's utterances are read from the longest context
either file holds for it, and each round is drawn from the dialogues of one `split_of` split
none of whose turns is labelled: rounds 10 (train), 11 (test), 12-14 (dev) and 15-18 (test);
round 18 holds out the served head (docs/dialogue_acts.md).
OpenDialKG writes titles without a year, and its `entity` annotations miss some; the titles an
utterance names are the catalog names that occur in it as whole words: an annotated one
(a short one only with its capitals), or any of at least two words and ten characters. This is
the counterpart of ReDial's "Title (year)" markup; the product links titles itself
(`MentionFinder`), as it does on ReDial.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from dialogues.split import split_of
from evaluation.act_labels import LabelledUtterance, people_counter
from retrieval.errors import RetrievalError

FILES = ("train_data_processed.jsonl", "valid_data_processed.jsonl")
PREFIX = "odkg:"  # group key of an OpenDialKG dialogue: its ids overlap ReDial's


def labels_path() -> Path:
    return Path(__file__).parent / "data" / "dialogue_acts_opendialkg.jsonl"


def dialogues(data_dir: str | Path) -> dict[str, tuple[list[str], frozenset[str]]]:
    """Per dialog_id: its longest context over both files, and the catalog titles it may name."""
    root = Path(data_dir)
    missing = [root / f for f in (*FILES, "id2info.json") if not (root / f).is_file()]
    if missing:
        raise RetrievalError(f"OpenDialKG file {missing[0]} not found: pass its folder")
    names = {v["name"] for v in json.loads((root / "id2info.json").read_text("utf-8")).values()}
    longest: dict[str, list[str]] = {}
    entities: dict[str, set[str]] = {}
    for name in FILES:
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            key, context = str(obj["dialog_id"]), list(obj.get("context") or [])
            if len(context) > len(longest.get(key, [])):
                longest[key] = context
            entities.setdefault(key, set()).update(e for e in obj.get("entity") or () if e in names)
    plain = frozenset(n for n in names if " " in n.strip() and len(n) >= 10)
    return {k: (c, plain | frozenset(entities.get(k, ()))) for k, c in longest.items()}


def titles_in(text: str, titles: frozenset[str]) -> frozenset[str]:
    """The annotated titles that `text` names: whole words, case-insensitively unless short."""
    found = set()
    low = text.lower()
    for title in titles:
        if title.lower() not in low:
            continue
        flags = re.IGNORECASE if len(title) >= 5 or " " in title else 0
        if re.search(rf"(?<!\w){re.escape(title)}(?!\w)", text, flags):
            found.add(title.lower())
    return frozenset(found)


def load_labelled(data_dir: str | Path, path: str | Path | None = None) -> list[LabelledUtterance]:
    """The labelled OpenDialKG utterances with their text; `split` is "odkg" (parts odkg10, ...)."""
    known = dialogues(data_dir)
    people = people_counter(Path(data_dir) / "id2info.json", "opendialkg")
    out = []
    for line in Path(path or labels_path()).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        context, titles = known.get(row["dialog_id"], ([], frozenset()))
        i = row["utterance"]
        if i >= len(context) or i % 2:
            raise RetrievalError(
                f"labelled utterance {row['dialog_id']}:{i} is not a seeker turn of the "
                f"OpenDialKG files in {data_dir}: pass the folder the labels were made from"
            )
        out.append(
            LabelledUtterance(
                dialog_id=PREFIX + row["dialog_id"],
                utterance=i,
                split="odkg",
                sample=row.get("sample", "natural"),
                round=int(row["round"]),
                act=row["act"],
                slot=row.get("slot"),
                text=context[i],
                context=tuple(context[:i]),
                mentions=tuple(titles_in(u, titles) for u in context[: i + 1]),
                people=people(context[i]),
            )
        )
    return out


def sample_fresh(
    data_dir: str | Path, n: int, seed: int, split: str, path: str | Path | None = None
) -> list[tuple[str, int]]:
    """A natural sample of `n` seeker turns of the `split` dialogues none of whose turns is
    labelled yet, drawn by `random.Random(seed)` from the pool in (dialog_id, utterance) order."""
    labels = Path(path or labels_path())
    lines = labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else []
    labelled = {json.loads(line)["dialog_id"] for line in lines if line.strip()}
    pool = sorted(
        (key, i)
        for key, (context, _) in dialogues(data_dir).items()
        if key not in labelled and split_of(key) == split
        for i in range(0, len(context), 2)
        if context[i].strip()
    )
    return sorted(random.Random(seed).sample(pool, n), key=lambda k: (int(k[0]), k[1]))
