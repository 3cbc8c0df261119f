"""`recochat` command line: the top floor. Thin subcommands over the library.

recochat index --catalog demo
recochat ask "something like Heat but less violent, after 2000" --session s.json
recochat chat --port 7860
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recochat.env import set_env_defaults

log = logging.getLogger("recochat")


def _subcommand_hooks() -> list[Callable[[Any], Any]]:
    """`add_*_parser(subparsers)` hooks of the packages that own a subcommand.

    The packages never import this module: each registers its own subcommand here.
    """
    from evaluation.bench import add_bench_parser
    from evaluation.cli import add_eval_parser
    from finetune.cli import add_finetune_parser
    from finetune.export_cli import add_export_gguf_parser
    from finetune.ranker_cli import add_fit_ranker_parser

    return [
        add_eval_parser,
        add_finetune_parser,
        add_export_gguf_parser,
        add_bench_parser,
        add_fit_ranker_parser,
    ]


def build_parser() -> argparse.ArgumentParser:
    from chatbot.options import add_settings_options
    from dialogues.schema import FORMATS
    from retrieval.catalog import CATALOG_FORMATS
    from retrieval.interactions import RATING_FORMATS

    parser = argparse.ArgumentParser(prog="recochat", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the item collection from a catalog")
    p.add_argument("--catalog", required=True, help="catalog file, or 'demo' for the bundled one")
    p.add_argument("--format", choices=CATALOG_FORMATS, help="default: from the file name")
    p.add_argument("--rejects", help="where rejected rows go (default: <home>/rejects.jsonl)")
    p.add_argument(
        "--interactions",
        help="dialogue log to learn popularity/co-occurrence from, or a ratings log "
        "(rows user, item, [rating], [timestamp]) to learn interaction CF from",
    )
    p.add_argument(
        "--interactions-format",
        default="jsonl",
        choices=[*FORMATS, *RATING_FORMATS],
        help="a dialogue format, or ratings-csv | ratings-jsonl | movielens (ratings.csv)",
    )
    p.add_argument("--links", help="movielens: links.csv (default: beside ratings.csv)")
    p.add_argument("--movies", help="movielens: movies.csv, to match titles (default: beside)")
    p.add_argument(
        "--interactions-key",
        default="imdb_id",
        help="catalog field whose values key the log's items, besides the id and the title",
    )
    add_settings_options(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="run one chat turn in the terminal")
    p.add_argument("message", help="what you want, in words")
    p.add_argument("--session", help="JSON file keeping the dialogue state across calls")
    p.add_argument("--json", action="store_true", help="print the machine-readable result")
    add_settings_options(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="serve the Gradio chat UI and its API")
    p.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 7860)")
    p.add_argument("--auth", help="user:pass or a file of user:pass lines")
    add_settings_options(p)
    p.set_defaults(func=cmd_chat)

    for add_parser in _subcommand_hooks():  # they import nothing heavy
        add_parser(sub)
    return parser


def _catalog_path(value: str) -> Path:
    if value == "demo":
        from retrieval.catalog import demo_catalog_path

        return demo_catalog_path()
    return Path(value)


def cmd_index(args: argparse.Namespace) -> int:
    from chatbot.indexing import index_catalog
    from chatbot.options import settings_from

    settings = settings_from(args)
    report = index_catalog(
        settings,
        _catalog_path(args.catalog),
        fmt=args.format,
        rejects=Path(args.rejects) if args.rejects else None,
        interactions=Path(args.interactions) if args.interactions else None,
        interactions_format=args.interactions_format,
        links=Path(args.links) if args.links else None,
        movies=Path(args.movies) if args.movies else None,
        interactions_key=args.interactions_key,
        progress=True,
    )
    print(report.summary())
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from chatbot.options import settings_from
    from chatbot.serving.sessions import load_session_file, save_session_file
    from chatbot.turn import build_recommender
    from chatbot.understanding.state import DialogueState

    settings = settings_from(args)
    rec = build_recommender(settings)
    session = Path(args.session) if args.session else None
    state = load_session_file(session) if session else DialogueState(session_id="cli")
    result = rec.recommend(state, args.message)
    if session:
        save_session_file(state, session)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    print(result.reply)  # an answer or a greeting picks nothing: no list then
    for i, r in enumerate(result.recommendations, 1):
        print(f"{i}. {r.title} — {r.reason}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from chatbot.config import load_settings
    from chatbot.options import overrides_from
    from chatbot.serving.app import serve

    overrides = overrides_from(args)
    overrides.update({"server.host": args.host, "server.port": args.port, "server.auth": args.auth})
    serve(load_settings(overrides))
    return 0


def _quiet_libraries() -> None:
    """Model-loading progress bars and optional-kernel notices are noise in a CLI."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # Deprecation notices of libraries' own internals (e.g. peft calling transformers).
    warnings.filterwarnings("ignore", category=FutureWarning)


# Subcommands that run chat turns: one compute thread owns torch (see `recochat.env`).
SERVING_COMMANDS = frozenset({"chat", "ask", "bench", "eval"})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()  # imports nothing that reads the environment
    args = parser.parse_args(argv)
    set_env_defaults(serving=args.command in SERVING_COMMANDS)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        _quiet_libraries()
    from chatbot.errors import USER_ERRORS

    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
