"""Is one act classifier's lead over another real? Paired bootstrap on the same labelled turns.

    python benchmarks/act_paired.py runs/dialogue_acts_round12.json:head \
        runs/dialogue_acts_round12_previous_head.json:head --split odkg12

Each argument is `REPORT:METHOD` (a report of benchmarks/dialogue_acts.py); the first is the
candidate, the second the baseline. A turn is right when its key is not among the method's
`wrong` ones. The turns are the part's `keys` (from whichever report lists them: reports made
before the field existed do not); both reports must cover the same turns. Printed: both
accuracies, the turns each gets right alone, and a 95% interval of the difference that
resamples whole dialogues (evaluation.paired.mean_diff_ci, 10,000 draws, seed 0).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation.paired import mean_diff_ci


def _load(spec: str, split: str) -> dict:
    path, _, method = spec.rpartition(":")
    if not path or not Path(path).is_file():
        raise SystemExit(f"error: {spec!r} is not REPORT:METHOD with an existing report file")
    methods = json.loads(Path(path).read_text(encoding="utf-8"))["methods"]
    if method not in methods or split not in methods[method]["splits"]:
        raise SystemExit(f"error: {path} has no method {method!r} with part {split!r}")
    return methods[method]["splits"][split]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("candidate", help="REPORT:METHOD")
    ap.add_argument("baseline", help="REPORT:METHOD")
    ap.add_argument("--split", required=True, help="the part both reports scored (odkg12)")
    args = ap.parse_args(argv)
    a, b = _load(args.candidate, args.split), _load(args.baseline, args.split)
    keys = a.get("keys") or b.get("keys")
    if not keys or a["n"] != len(keys) or b["n"] != len(keys):
        raise SystemExit("error: the two reports do not cover the same listed turns")
    wrong_a = {w.split()[0] for w in a["wrong"]}
    wrong_b = {w.split()[0] for w in b["wrong"]}
    ok_a = [float(k not in wrong_a) for k in keys]
    ok_b = [float(k not in wrong_b) for k in keys]
    dialogues = [k.rsplit(":", 1)[0] for k in keys]
    lo, hi = mean_diff_ci(ok_a, ok_b, dialogues)
    print(
        f"{args.split} n={len(keys)}: candidate {sum(ok_a) / len(keys):.3f}, baseline "
        f"{sum(ok_b) / len(keys):.3f}; right only by the candidate "
        f"{sum(x > y for x, y in zip(ok_a, ok_b, strict=True))}, only by the baseline "
        f"{sum(y > x for x, y in zip(ok_a, ok_b, strict=True))}; difference 95% CI "
        f"[{lo:+.3f}, {hi:+.3f}] (paired bootstrap by dialogue)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
