"""`recochat fit-ranker`: fit the learned ranker (LightGBM lambdarank) on dialogues.

    recochat fit-ranker --dialogues ../shared/data/redial/valid_data_processed.jsonl \\
        --format redial --out runs/ranker
    RECOCHAT_RETRIEVAL__RANKER=runs/ranker recochat ask "something like Heat"

Fits on the train split of --dialogues (split by dialogue, `--split-seed`) and early-stops on
its dev split; the test split is never read. Features come from the indexed catalog of the home
(`recochat index` first), its interaction CF model when there is one, and the configured fusion
weights (the `rrf_*` features). Serve the result with `retrieval.ranker = "DIR"`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from finetune.data import TRAINING_FORMATS


def add_fit_ranker_parser(subparsers: Any) -> argparse.ArgumentParser:
    from chatbot.options import add_settings_options

    p = subparsers.add_parser(
        "fit-ranker",
        help="fit the learned ranker over every retrieval signal on dialogues",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dialogues", required=True, type=Path, help="dialogue file or feedback DB")
    p.add_argument(
        "--format", choices=TRAINING_FORMATS, default="jsonl", help="format of --dialogues"
    )
    p.add_argument("--out", required=True, type=Path, help="folder for model.txt + ranker.json")
    p.add_argument("--depth", type=int, default=100, help="each signal's top N in the pool")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split by dialogue")
    add_settings_options(p)
    p.set_defaults(func=run_fit_ranker)
    return p


def run_fit_ranker(args: argparse.Namespace) -> int:
    """Run the parsed `fit-ranker` command; domain errors propagate for the caller to print."""
    import dataclasses

    from chatbot.options import settings_from
    from chatbot.ranking.prepare import fusion_weights
    from finetune.ranker_fit import fit_from_dialogues
    from retrieval.interaction_cf import InteractionCF

    settings = settings_from(args)
    path = settings.interactions_path
    cf = InteractionCF.load(path) if path.is_file() else None
    weights = dataclasses.asdict(fusion_weights(settings.retrieval))
    report = fit_from_dialogues(
        settings,
        args.dialogues,
        args.format,
        args.out,
        cf=cf,
        weights={k: v for k, v in weights.items() if v},
        depth=args.depth,
        split_seed=args.split_seed,
    )
    print(
        f"ranker written to {args.out}: {report['rounds']} rounds, dev NDCG@10 "
        f"{report['dev_ndcg@10']:.3f}, {report['train_turns']} train turns, "
        f"{report['fit_seconds']:.0f} s{'' if cf else ' (no interaction CF in this home)'}"
    )
    print(f"serve it with RECOCHAT_RETRIEVAL__RANKER={args.out} or retrieval.ranker in the TOML")
    return 0
