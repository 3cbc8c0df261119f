"""How consistently the dialogue-act guide is applied: a second, blind labelling of a seeded
sample of already-labelled turns, against the first labels.

    python benchmarks/label_agreement.py --out runs/label_agreement.json

`evaluation/data/dialogue_acts_relabel.jsonl` holds the second labels (keys and acts, no text)
of 100 turns drawn by `random.Random(11).sample` from the natural turns of label rounds 1-5
(sorted by dialog_id and utterance), labelled from each turn's dialogue and text under the
guide of `evaluation/act_labels.py`, without the first labels in view. Prints raw agreement,
Cohen's kappa (scikit-learn) and the agreement when refine and feedback count as one act, and
lists the disagreements (keys and acts only). Needs no ../shared: both files are keys.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation.act_labels import labels_path, read_acts, relabel_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/label_agreement.json"))
    args = ap.parse_args(argv)

    from sklearn.metrics import cohen_kappa_score

    first, second = read_acts(labels_path()), read_acts(relabel_path())
    missing = sorted(set(second) - set(first))
    if missing:
        raise SystemExit(f"error: relabelled turns {missing[:3]} have no first label")
    keys = sorted(second)
    a, b = [first[k] for k in keys], [second[k] for k in keys]
    same = sum(x == y for x, y in zip(a, b, strict=True))
    merged = sum(x == y or {x, y} == {"refine", "feedback"} for x, y in zip(a, b, strict=True))
    report = {
        "n": len(keys),
        "agreement": round(same / len(keys), 3),
        "cohen_kappa": round(float(cohen_kappa_score(a, b)), 3),
        "agreement_refine_feedback_merged": round(merged / len(keys), 3),
        "disagreements": [
            f"{d}:{u} first {x} second {y}"
            for (d, u), x, y in zip(keys, a, b, strict=True)
            if x != y
        ],
    }
    print(
        f"n={report['n']}: agreement {report['agreement']}, Cohen's kappa "
        f"{report['cohen_kappa']}, refine=feedback {report['agreement_refine_feedback_merged']}"
    )
    for line in report["disagreements"]:
        print(f"  {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
