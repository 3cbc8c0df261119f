"""The CLI options every serving subcommand shares, and the `Settings` they build.

`recochat index/ask/chat` (recochat/cli.py) and `recochat bench` (evaluation/bench.py) add
the same "model and store" option group; `settings_from` layers those flags over
recochat.toml and the RECOCHAT_* env vars.
"""

from __future__ import annotations

import argparse
from typing import Any

from chatbot.config import Settings, load_settings
from inference.settings import BACKENDS, RERANK_MODES


def add_settings_options(p: argparse.ArgumentParser) -> None:
    """The "model and store" option group (each flag overrides one setting)."""
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
    g.add_argument("--backend", choices=BACKENDS, help="LLM engine (llm.backend)")
    g.add_argument(
        "--generate-backend",
        choices=BACKENDS,
        help="engine for the reply and other generation, ranking staying on --backend "
        "(llm.generate_backend)",
    )
    g.add_argument("--base-url", help="openai backend: the server's API root (llm.base_url)")
    g.add_argument("--gguf", help="llamacpp backend: the GGUF file (llm.gguf)")
    g.add_argument(
        "--batching",
        action="store_const",
        const=True,
        help="merge concurrent sessions' generation into shared batches (llm.batching)",
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


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The settings overrides of parsed `add_settings_options` flags (None = not given)."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    return {
        "home": get("home"),
        "retrieval.chroma": get("chroma"),
        "retrieval.collection": get("collection"),
        "llm.model": get("model"),
        "llm.adapter": get("adapter"),
        "llm.load_in_4bit": get("load_in_4bit"),
        "llm.rerank_mode": get("rerank_mode"),
        "llm.backend": get("backend"),
        "llm.generate_backend": get("generate_backend"),
        "llm.base_url": get("base_url"),
        "llm.gguf": get("gguf"),
        "llm.batching": get("batching"),
        "retrieval.k_final": get("k_final"),
        "retrieval.diversity": get("diversity"),
        "reasons": get("reasons"),
    }


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(overrides_from(args))
