"""`recochat eval`: replay dialogue turns through the product and baselines, write a report.

    recochat eval --dataset redial --split test --limit 500 --out runs/eval/redial-test
    recochat eval --dataset opendialkg --limit 500 --out runs/eval/opendialkg-all
    RECOCHAT_CONFIG=configs/opendialkg.toml recochat eval --dataset opendialkg \
        --systems retrieval --out runs/eval/opendialkg-tuned   # weights chosen on its train file
    recochat eval --catalog ../shared/data/redial/id2info.json --catalog-format redial \
        --dialogues ../shared/data/redial/valid_data_processed.jsonl --format redial \
        --split test --train-split --limit 500 --out runs/eval/redial-test   # the same, spelt out

`--dataset` fills the catalog, dialogue and train flags of a public dataset under
`--data-dir` (`evaluation.datasets`); flags given explicitly win.

The catalog is indexed into a collection named after a hash of the catalog file, format,
field map and embedder, so a rerun reuses the vectors. Collaborative signals come only from
`--train` (minus any dialogue that is also in `--dialogues`) or from the train split of the
evaluated file (`--train-split`); without either, only the catalog's popularity field is used.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from dialogues.importers import load_rec_turns
from dialogues.schema import FORMATS, RecTurn
from dialogues.split import split_turns
from evaluation import metrics
from evaluation.baselines import NaiveLLMSystem, PopularitySystem, train_popularity
from evaluation.datasets import DATASETS, DEFAULT_DATA_DIR
from evaluation.protocol import EvalTurn, resolve_turn, sample_by_dialogue
from evaluation.report import write_report
from evaluation.runner import K_EVAL, listed_ids, replay, score
from evaluation.system_adapters import RecommenderSystem
from inference.settings import RERANK_MODES
from retrieval.catalog import CATALOG_FORMATS
from retrieval.titles import TitleIndex, catalog_popularity
from retrieval.types import Item

log = logging.getLogger(__name__)

SYSTEMS = ("full", "retrieval", "popularity", "naive-llm")
LLM_SYSTEMS = frozenset({"full", "naive-llm"})


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval",
        help="Replay dialogue turns through the recommender and baselines; write a report.",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        help="A public dataset under --data-dir: sets --catalog, --dialogues, their formats, "
        "the train signal (ReDial: --train-split; OpenDialKG: its train file) and the split.",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="Where --dataset finds the shared datasets.",
    )
    p.add_argument("--catalog", type=Path, help="Catalog file to index (or --dataset).")
    p.add_argument("--catalog-format", choices=CATALOG_FORMATS, help="Default: from the suffix.")
    p.add_argument("--dialogues", type=Path, help="Dialogues to replay (or --dataset).")
    p.add_argument("--format", choices=FORMATS, help="Format of --dialogues (default: jsonl).")
    p.add_argument("--train", type=Path, help="Dialogues whose turns feed collaborative signals.")
    p.add_argument("--train-format", choices=FORMATS, help="Format of --train (default: --format).")
    p.add_argument(
        "--train-split",
        action="store_true",
        help="Take collaborative signals from the train split of --dialogues (needs --split dev "
        "or test).",
    )
    p.add_argument(
        "--split",
        choices=("all", "train", "dev", "test"),
        help="Evaluate one split of the hash split by dialogue (default: all, or the "
        "dataset's reported split).",
    )
    p.add_argument("--split-seed", type=int, default=0, help="Seed of the split (as in training).")
    p.add_argument(
        "--limit", type=int, help="Evaluate N turns sampled by whole dialogues (default: all)."
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of the --limit sample.")
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"Comma-separated systems from: {', '.join(SYSTEMS)}.",
    )
    p.add_argument("--adapter", type=Path, help="LoRA adapter dir for the LLM (full, naive-llm).")
    p.add_argument(
        "--rerank-prior",
        type=float,
        help="Weight of the retrieval-rank prior in the LLM rerank (default: llm.rerank_prior).",
    )
    p.add_argument(
        "--rerank-mode",
        choices=RERANK_MODES,
        help="LLM reranker: lettered list or one yes/no per candidate (default: llm.rerank_mode).",
    )
    p.add_argument(
        "--reasons",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Generate and check reasons on the full system (--no-reasons: ranking only, faster).",
    )
    p.add_argument(
        "--replies",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Write and check the reply of each turn on the full system: the report's "
        "'conversation' metrics (--no-replies: skip them, faster).",
    )
    p.add_argument(
        "--reply-adapter",
        type=Path,
        help="LoRA adapter dir of the reply writer (default: llm.reply_adapter).",
    )
    p.add_argument("--out", required=True, type=Path, help="Output dir for the report.")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=run_eval)
    return p


class EvalArgsError(ValueError):
    """Flags that cannot work together; the message names the fix."""


def parse_systems(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown or not names:
        raise EvalArgsError(f"unknown system(s) {unknown or text!r}: use {', '.join(SYSTEMS)}")
    return list(dict.fromkeys(names))


def apply_dataset(args: argparse.Namespace) -> None:
    """Fill the data flags of `--dataset` that were not given; check the required ones."""
    if args.dataset:
        ds = DATASETS[args.dataset]
        root = Path(args.data_dir)
        if not (root / ds.dialogues).is_file():
            raise EvalArgsError(
                f"{root / ds.dialogues} not found: pass --data-dir (the shared datasets)"
            )
        if args.catalog is None:
            args.catalog, args.catalog_format = root / ds.catalog, ds.catalog_format
        if args.dialogues is None:
            args.dialogues, args.format = root / ds.dialogues, args.format or ds.format
        if args.split is None:
            args.split = ds.split
        if ds.train is None:
            args.train_split = args.train_split or (
                args.train is None and args.split in ("dev", "test")
            )
        elif args.train is None and not args.train_split:
            args.train = root / ds.train
    if args.catalog is None or args.dialogues is None:
        raise EvalArgsError("pass --catalog and --dialogues, or --dataset")
    args.format = args.format or "jsonl"
    args.split = args.split or "all"


def catalog_key(path: Path, fmt: str | None, field_map: Any, embedder: str) -> str:
    """Collection name for a catalog: same file, format, field map and embedder → same index."""
    h = hashlib.sha256(Path(path).read_bytes())
    h.update(json.dumps([fmt, repr(field_map), embedder]).encode())
    return f"eval-{h.hexdigest()[:16]}"


def _train_turns(args: argparse.Namespace, all_turns: list[RecTurn]) -> tuple[list[RecTurn], int]:
    """Turns for collaborative signals, and how many were dropped as overlapping the eval file."""
    if args.train_split:
        return split_turns(all_turns, "train", args.split_seed), 0
    if args.train is None:
        return [], 0
    if args.train.resolve() == args.dialogues.resolve():
        raise EvalArgsError(
            "--train is the --dialogues file: use --train-split with --split dev or test instead"
        )
    turns, rejects = load_rec_turns(args.train, args.train_format or args.format)
    if rejects:
        log.warning("--train: skipped %d malformed line(s)", len(rejects))
    # Some public files split by turn, not by dialogue: a train turn of an evaluated dialogue
    # would leak its neighbours' answers into the co-occurrence signal.
    evaluated = {t.dialog_id for t in all_turns}
    kept = [t for t in turns if t.dialog_id not in evaluated]
    if len(kept) < len(turns):
        log.warning(
            "--train: dropped %d turn(s) of dialogues that are also in --dialogues",
            len(turns) - len(kept),
        )
    return kept, len(turns) - len(kept)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole evaluation described by parsed `eval` flags; returns the report dict."""
    from chatbot.config import load_settings
    from chatbot.indexing import field_map
    from retrieval.catalog import load_catalog

    apply_dataset(args)
    systems = parse_systems(args.systems)
    if args.train_split and args.split not in ("dev", "test"):
        raise EvalArgsError("--train-split needs --split dev or --split test")
    if args.train_split and args.train is not None:
        raise EvalArgsError("use either --train or --train-split, not both")
    if args.limit is not None and args.limit < 1:
        raise EvalArgsError("--limit must be at least 1")

    knobs = {
        "llm.adapter": args.adapter,
        "llm.reply_adapter": args.reply_adapter,
        "llm.rerank_prior": args.rerank_prior,
        "llm.rerank_mode": args.rerank_mode,
        "reasons": args.reasons,
    }
    base = load_settings(knobs)
    fmap = field_map(base)
    collection = catalog_key(args.catalog, args.catalog_format, fmap, base.retrieval.embedder)
    settings = load_settings({**knobs, "retrieval.collection": collection})

    out_dir = Path(args.out)
    catalog = load_catalog(
        args.catalog, args.catalog_format, fmap, rejects_path=out_dir / "catalog_rejects.jsonl"
    )
    items = catalog.items
    by_id: dict[str, Item] = {it.item_id: it for it in items}
    cat_pop = catalog_popularity(items)  # the loader stores popularity under this canonical key
    titles = TitleIndex(items, cat_pop)

    all_turns, rejects = load_rec_turns(
        args.dialogues, args.format, rejects_path=out_dir / "dialogue_rejects.jsonl"
    )
    train_turns, dropped = _train_turns(args, all_turns)
    chosen = sample_by_dialogue(split_turns(all_turns, args.split, args.split_seed), args.limit,
                                args.seed)  # fmt: skip
    if not chosen:
        raise EvalArgsError(
            f"no recommender turns in {args.dialogues} (split {args.split}): check --format "
            "and --split"
        )
    turns: list[EvalTurn] = [resolve_turn(t, titles) for t in chosen]

    from retrieval.collab import CollabSignals
    from retrieval.entity_cooc import learn_entity_cooc
    from retrieval.entity_links import EntityLinker

    # Always explicit: the recommender must never fall back to the home's collab file, which
    # may have been learned from the very dialogues evaluated here.
    collab = CollabSignals.from_catalog(items)
    if train_turns:
        names = {n for t in train_turns for n in (*t.gold, *t.mentioned)}
        title_to_id = {n: i for n in names if (i := titles.lookup(n)) is not None}
        collab = CollabSignals.from_turns(train_turns, title_to_id)
        collab = collab.with_entities(learn_entity_cooc(train_turns, EntityLinker(items),
                                                        title_to_id))  # fmt: skip
    rec = _index_and_build(settings, items, collab, need_llm=bool(LLM_SYSTEMS & set(systems)),
                           progress=args.progress)  # fmt: skip

    train_pop = train_popularity(train_turns, titles) if train_turns else {}
    popularity = {i: train_pop.get(i, 0.0) for i in by_id} if train_pop else cat_pop
    if not any(popularity.values()):
        log.warning("no popularity signal (no --train and no catalog popularity field)")
    runners = _make_systems(systems, rec, by_id, popularity, cat_pop, titles, settings)

    def check_reason(reason: str, item_id: str, turn: Any) -> bool:
        from chatbot.reply.reason_checks import unsupported_claims

        item = by_id.get(item_id)
        return item is not None and bool(
            unsupported_claims(reason, item, turn.reason_support(by_id))
        )

    runs = replay(runners, turns, check_reason=check_reason, progress=args.progress)
    head = metrics.head_items(popularity) if any(popularity.values()) else None
    ids = sorted(listed_ids(runs, turns) & by_id.keys())
    vectors = dict(zip(ids, rec.store.embeddings(ids), strict=True)) if ids else {}
    report: dict[str, Any] = {
        "systems": {
            run.name: score(run, turns, catalog_size=len(by_id), head=head, vectors=vectors)
            for run in runs
        }
    }
    full = next((run for run in runs if run.name == "full"), None)
    if args.replies and full is not None:
        report["systems"]["full"]["conversation"] = _conversation(settings, rec, items, full, turns)
    report["catalog_items"] = len(by_id)
    report["dialogues"] = {
        "path": str(args.dialogues),
        "format": args.format,
        "split": args.split,
        "dialogues": len({t.turn.dialog_id for t in turns}),
        "turns": len(turns),
        "malformed_lines": len(rejects),
        "gold_not_in_catalog": sum(t.n_unmapped for t in turns),
        "novel_turns": sum(1 for t in turns if t.novel_gold),
        "novel_gold": sum(len(t.novel_gold) for t in turns),
    }
    from inference.model_files import rerank_mode_of

    report["config"] = {
        "systems": systems,
        "catalog": str(args.catalog),
        "catalog_format": args.catalog_format,
        "catalog_rejected_rows": len(catalog.rejects),
        "collection": collection,
        "train": "train-split" if args.train_split else (str(args.train) if args.train else None),
        "train_turns": len(train_turns),
        "train_turns_dropped_as_overlap": dropped,
        "popularity_source": "train" if train_pop else "catalog",
        "split_seed": args.split_seed,
        "limit": args.limit,
        "seed": args.seed,
        "k_eval": K_EVAL,
        "llm": settings.llm.model,
        "adapter": str(args.adapter) if args.adapter else None,
        "reply_adapter": str(settings.llm.reply_adapter) if settings.llm.reply_adapter else None,
        "replies": args.replies,
        "rerank_prior": settings.llm.rerank_prior,
        "rerank_mode": rerank_mode_of(settings.llm),  # what the Recommender runs
        "reasons": settings.reasons,
        "embedder": settings.retrieval.embedder,
        "k_candidates": settings.retrieval.k_candidates,
        "k_final": settings.retrieval.k_final,
        "fusion_weights": dataclasses.asdict(rec.weights),
        "query_window": settings.retrieval.query_window,
    }
    write_report(out_dir, report, runs, turns)
    return report


def _conversation(
    settings: Any, rec: Any, items: list[Item], run: Any, turns: list[EvalTurn]
) -> dict[str, Any]:
    """The conversation metrics of the system that writes replies (the product)."""
    from chatbot.reply.reply_llm import build_reply_writer
    from chatbot.understanding.mentions import MentionFinder
    from evaluation.conversation import conversation_metrics

    writer = build_reply_writer(settings, rec.llm, MentionFinder.of(items))
    rankings = [r.ranked["novel"] for r in run.records]
    by_id = {it.item_id: it for it in items}
    return conversation_metrics(writer, turns, rankings, by_id, k_picks=settings.retrieval.k_final)


def _make_systems(
    names: list[str], rec: Any, by_id: dict[str, Item], popularity: dict[str, float],
    cat_pop: dict[str, float], titles: TitleIndex, settings: Any,
) -> list[Any]:  # fmt: skip
    runners: list[Any] = []
    for name in names:
        if name in ("full", "retrieval"):
            runners.append(RecommenderSystem(name, rec, use_llm=name == "full", k=K_EVAL))
        elif name == "popularity":
            runners.append(PopularitySystem(by_id, popularity, cat_pop))
        else:
            runners.append(NaiveLLMSystem(rec.llm, titles, settings.prompts.dir))
    return runners


def _index_and_build(
    settings: Any, items: list[Item], collab: Any, *, need_llm: bool, progress: bool
) -> Any:
    """Index `items` into the eval collection (skipped when already complete), then build."""
    from chatbot.indexing import open_store
    from chatbot.turn import Recommender, build_recommender

    store = open_store(settings)
    if not holds(store, items):
        store.sync(items, progress=progress)
    if need_llm:
        return build_recommender(settings, collab=collab)
    return Recommender(settings, store, None, collab)  # retrieval/popularity: no LLM loaded


def holds(store: Any, items: list[Item]) -> bool:
    """Whether the store holds exactly `items` as they read now (a changed catalog reader
    changes the texts of the same file: the collection name alone cannot tell)."""
    stored = {it.item_id: (it.title, it.text) for it in store.all_items()}
    return stored == {it.item_id: (it.title, it.text) for it in items}


def run_eval(args: argparse.Namespace) -> int:
    """CLI entry: run, print where the report is; domain errors become one line on stderr."""
    import sys

    from chatbot.errors import USER_ERRORS

    try:
        report = evaluate(args)
    except (EvalArgsError, *USER_ERRORS) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    d = report["dialogues"]
    print(f"evaluated {d['turns']} turns ({d['malformed_lines']} malformed lines skipped)")
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0
