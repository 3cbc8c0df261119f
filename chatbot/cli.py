"""`recochat` command line: thin subcommands over the library.

recochat index --catalog demo
recochat ask "something like Heat but less violent, after 2000" --session s.json
recochat chat --port 7860
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("recochat")

CATALOG_FORMATS = ["jsonl", "csv", "redial", "opendialkg"]


def _common(p: argparse.ArgumentParser) -> None:
    from chatbot.config import RERANK_MODES

    g = p.add_argument_group("model and store (override recochat.toml / RECOCHAT_* env)")
    g.add_argument("--home", help="data dir (Chroma store, model cache, feedback DB)")
    g.add_argument("--chroma", help="Chroma path or http://host:port")
    g.add_argument("--collection", help="Chroma collection name")
    g.add_argument("--model", help="base LLM: builtin, a local HF dir or a cached hub id")
    g.add_argument("--adapter", help="LoRA adapter dir from `recochat finetune`")
    g.add_argument(
        "--4bit",
        dest="load_in_4bit",
        action="store_const",
        const=True,
        help="load the LLM in 4-bit NF4 (bitsandbytes)",
    )
    g.add_argument(
        "--rerank-mode",
        choices=RERANK_MODES,
        help="LLM reranker: lettered list or one yes/no per candidate",
    )
    g.add_argument("--k", dest="k_final", type=int, help="recommendations per turn")
    g.add_argument("--diversity", type=float, help="MMR diversity in [0, 1]")
    g.add_argument(
        "--no-reasons",
        dest="reasons",
        action="store_const",
        const=False,
        help="template reasons only, no LLM time (faster)",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    get = lambda name: getattr(args, name, None)  # noqa: E731
    return {
        "home": get("home"),
        "retrieval.chroma": get("chroma"),
        "retrieval.collection": get("collection"),
        "llm.model": get("model"),
        "llm.adapter": get("adapter"),
        "llm.load_in_4bit": get("load_in_4bit"),
        "llm.rerank_mode": get("rerank_mode"),
        "retrieval.k_final": get("k_final"),
        "retrieval.diversity": get("diversity"),
        "reasons": get("reasons"),
    }


def settings_from(args: argparse.Namespace):
    from chatbot.config import load_settings

    return load_settings(_overrides(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recochat", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the item collection from a catalog")
    p.add_argument("--catalog", required=True, help="catalog file, or 'demo' for the bundled one")
    p.add_argument("--format", choices=CATALOG_FORMATS, help="default: from the file name")
    p.add_argument("--rejects", help="where rejected rows go (default: <home>/rejects.jsonl)")
    p.add_argument("--interactions", help="dialogue log to learn popularity/co-occurrence from")
    p.add_argument(
        "--interactions-format", default="jsonl", choices=["jsonl", "redial", "opendialkg"]
    )
    _common(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="run one chat turn in the terminal")
    p.add_argument("message", help="what you want, in words")
    p.add_argument("--session", help="JSON file keeping the dialogue state across calls")
    p.add_argument("--json", action="store_true", help="print the machine-readable result")
    _common(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="serve the Gradio chat UI and its API")
    p.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 7860)")
    p.add_argument("--auth", help="user:pass or a file of user:pass lines")
    _common(p)
    p.set_defaults(func=cmd_chat)

    # Subcommands owned by other packages register themselves (they import nothing heavy).
    from evaluation.bench import add_bench_parser
    from evaluation.cli import add_eval_parser
    from finetune.cli import add_finetune_parser

    add_eval_parser(sub)
    add_finetune_parser(sub)
    add_bench_parser(sub, _common)
    return parser


def _catalog_path(value: str) -> Path:
    if value == "demo":
        from retrieval.catalog import demo_catalog_path

        return demo_catalog_path()
    return Path(value)


def cmd_index(args: argparse.Namespace) -> int:
    from chatbot.indexing import index_catalog

    settings = settings_from(args)
    report = index_catalog(
        settings,
        _catalog_path(args.catalog),
        fmt=args.format,
        rejects=Path(args.rejects) if args.rejects else None,
        interactions=Path(args.interactions) if args.interactions else None,
        interactions_format=args.interactions_format,
        progress=sys.stderr.isatty() or True,
    )
    print(report.summary())
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from chatbot.recommender import build_recommender
    from chatbot.sessions import load_session_file, save_session_file
    from chatbot.state import DialogueState

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
    print(result.reply)
    for i, r in enumerate(result.recommendations, 1):
        print(f"{i}. {r.title} — {r.reason}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from chatbot.app import serve

    overrides = _overrides(args)
    overrides.update({"server.host": args.host, "server.port": args.port, "server.auth": args.auth})
    from chatbot.config import load_settings

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


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads
    # steal the cores the next forward pass needs (read once, when torch loads).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        _quiet_libraries()
    from chatbot.errors import RecochatError
    from retrieval.errors import RetrievalError

    try:
        return int(args.func(args) or 0)
    except (RecochatError, RetrievalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
