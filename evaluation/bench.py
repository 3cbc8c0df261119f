"""`recochat bench`: per-stage latency of real turns, against a naive RAG chain, and scaling.

    recochat bench --turns 24 --out runs/bench                      # demo catalog + scaling
    recochat bench --turns 24 --no-scaling --out runs/bench-demo    # latency only (a minute)
    recochat bench --no-latency --scaling --out runs/scaling --json  # scaling only (minutes)
    recochat bench --catalog ../shared/data/redial/id2info.json --catalog-format redial \
        --home /tmp/redial-home --no-scaling --json

Replays a fixed set of multi-turn conversations through the served `Recommender.stream`
(cards, then reasons) and, turn for turn, through a naive LangChain RAG chain on the same LLM
(`evaluation.naive_rag`). Reports p50/p95 per stage, time to the first visible
recommendation, tokens/s, peak RSS, our/naive latency ratio and each side's out-of-catalog
rate. `--scaling` adds Chroma query p50 and index build rate at 1k/10k/100k synthetic items
(`evaluation.scaling`). A catalog that is not indexed in the home yet is indexed first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from evaluation.bench_report import format_table, plot_latency, summarize

WARMUP = ["I want a movie for tonight"]
# Fixed conversations, one user message per turn; titles exist in the demo catalog and ReDial.
CONVERSATIONS = [
    ["I loved Heat, something like it", "less violent please", "after 2000"],
    ["a funny animated movie for my kids", "something like Toy Story", "no sequels"],
    ["a scary movie but not too gory", "I liked Get Out", "something older, before 1990"],
    ["a mind-bending sci-fi film", "I liked Inception and The Matrix", "a slower one"],
    ["a romantic comedy for date night", "something lighter", "from the 90s"],
    ["a classic western", "I didn't like Unforgiven", "something with a great score"],
    ["a war movie based on true events", "like Saving Private Ryan", "shorter please"],
    ["a mystery with a clever twist", "I loved Knives Out", "not a sequel"],
]


class TimedEmbeddings(Embeddings):
    """Delegates to an `Embeddings`, adding up the time spent in `embed_query`."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self.ms = 0.0

    def embed_query(self, text: str) -> list[float]:
        started = time.perf_counter()
        try:
            return self.inner.embed_query(text)
        finally:
            self.ms += (time.perf_counter() - started) * 1000

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)


class TimedStore:
    """An `ItemStore` whose `search` time is added up, less the query embedding inside it
    (`TimedEmbeddings`); everything else passes through. Other embedding calls of a turn (the
    dialogue-act head embeds the message) are not Chroma's."""

    def __init__(self, store: Any, embedder: TimedEmbeddings) -> None:
        self._store = store
        self._embedder = embedder
        self.ms = 0.0

    def search(self, *args: Any, **kwargs: Any) -> Any:
        started, embedded = time.perf_counter(), self._embedder.ms
        try:
            return self._store.search(*args, **kwargs)
        finally:
            spent = (time.perf_counter() - started) * 1000
            self.ms += spent - (self._embedder.ms - embedded)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class TurnSample:
    ms: dict[str, float]
    n_recs: int
    out_of_catalog: int
    generated_tokens: int
    decode_s: float
    naive_ms: float = 0.0
    naive_cpu_ms: float = 0.0
    naive_titles: int = 0
    naive_missing: int = 0
    naive_tokens: int = 0
    naive_decode_s: float = 0.0
    message: str = ""
    naive_text: str = ""


@dataclass
class Bench:
    settings: Any
    rec: Any
    naive: Any
    embedder: TimedEmbeddings
    store: TimedStore
    samples: list[TurnSample] = field(default_factory=list)
    _ids: set[str] | None = None

    def turn(self, state: Any, naive_history: list[tuple[str, str]], message: str) -> TurnSample:
        llm = self.writing_llm()
        tokens0, decode0 = llm.stats.generated_tokens, llm.stats.decode_s
        self.embedder.ms = self.store.ms = 0.0
        cpu0 = time.process_time()
        updates = list(self.rec.stream(state, message))
        cpu = (time.process_time() - cpu0) * 1000
        final = updates[-1]
        ms = dict(final.timings_ms)
        ms["embedding"] = self.embedder.ms
        ms["chroma_query"] = self.store.ms
        ms["cpu"] = cpu
        known = self.catalog_ids()
        sample = TurnSample(
            ms=ms,
            n_recs=len(final.recommendations),
            out_of_catalog=sum(r.item_id not in known for r in final.recommendations),
            generated_tokens=llm.stats.generated_tokens - tokens0,
            decode_s=llm.stats.decode_s - decode0,
        )
        if self.naive is None:  # --no-naive
            return sample
        from dialogues.transcript import format_conversation

        naive_history.append(("user", message))
        tokens0, decode0 = llm.stats.generated_tokens, llm.stats.decode_s
        cpu0 = time.process_time()
        answer = self.naive.answer(format_conversation(naive_history))
        sample.naive_cpu_ms = (time.process_time() - cpu0) * 1000
        naive_history.append(("assistant", answer.text))
        sample.naive_ms = answer.total_ms
        sample.message, sample.naive_text = message, answer.text
        sample.naive_titles, sample.naive_missing = self.naive.out_of_catalog(answer.text)
        sample.naive_tokens = llm.stats.generated_tokens - tokens0
        sample.naive_decode_s = llm.stats.decode_s - decode0
        return sample

    def writing_llm(self) -> Any:
        """The engine that writes the reply, whose stats count its tokens: the reply LLM, the
        generation engine of a task split (`llm.generate_backend`), else the served LLM."""
        llm = self.rec.reply_llm or self.rec.llm
        return getattr(llm, "writer", llm)

    def catalog_ids(self) -> set[str]:
        if self._ids is None:
            self._ids = {it.item_id for it in self.store.all_items()}
        return self._ids

    def replay(
        self, conversations: Sequence[Sequence[str]], turns: int, log: Callable[[str], None]
    ) -> None:
        from chatbot.understanding.state import DialogueState

        list(self.rec.stream(DialogueState(), WARMUP[0]))  # lazies, the static prefix cache
        if self.naive is not None:
            self.naive.out_of_catalog("")  # builds its title index outside the timed turns
        while len(self.samples) < turns:
            for conversation in conversations:
                state, history = DialogueState(), []
                for message in conversation:
                    if len(self.samples) >= turns:
                        return
                    sample = self.turn(state, history, message)
                    self.samples.append(sample)
                    log(
                        f"turn {len(self.samples)}/{turns}: {sample.ms['total']:.0f} ms "
                        f"(first rec {sample.ms.get('first_rec', 0):.0f}), "
                        f"naive {sample.naive_ms:.0f} ms"
                    )  # naive 0 with --no-naive


def add_bench_parser(subparsers: Any) -> Any:
    from chatbot.options import add_settings_options
    from dialogues.schema import FORMATS
    from retrieval.catalog import CATALOG_FORMATS

    p = subparsers.add_parser(
        "bench", help="latency per stage vs a naive RAG chain, and catalog scaling"
    )
    p.add_argument("--catalog", default="demo", help="catalog file, or 'demo' (default)")
    p.add_argument("--catalog-format", choices=CATALOG_FORMATS, help="default: from the name")
    p.add_argument(
        "--conversations",
        help="dialogue file to replay (its user turns) instead of the built-in conversations",
    )
    p.add_argument("--conversations-format", default="jsonl", choices=FORMATS)
    p.add_argument("--turns", type=int, default=24, help="measured turns (after one warm-up)")
    p.add_argument(
        "--scaling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure Chroma query/index rate on synthetic catalogs (minutes at 100k)",
    )
    p.add_argument("--scaling-sizes", default="1000,10000,100000", help="comma-separated sizes")
    p.add_argument(
        "--latency",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replay the turns (--no-latency with --scaling: the scaling curve only, no LLM)",
    )
    p.add_argument(
        "--naive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also answer each turn with the naive RAG chain, for the ours/naive ratio",
    )
    p.add_argument("--json", action="store_true", help="print the JSON report instead of a table")
    p.add_argument("--out", help="directory for bench.json and PNG plots")
    p.add_argument(
        "--backends",
        help="comma-separated LLM backends to bench side by side, each in a child process "
        "(e.g. transformers,llamacpp,openai; openai starts llama.cpp's server unless "
        "--base-url; RANKING+GENERATION, e.g. transformers+llamacpp, splits the tasks; "
        "transformers@int4 decodes from 4-bit weights)",
    )
    add_settings_options(p)
    p.set_defaults(func=run_bench)
    return p


def run_bench(args: argparse.Namespace) -> int:
    from chatbot.options import settings_from

    if args.backends:
        from evaluation.backend_bench import run_backend_bench

        return run_backend_bench(args)
    settings = settings_from(args)
    sizes = [int(x) for x in str(args.scaling_sizes).split(",") if x.strip()]
    out = Path(args.out) if args.out else None
    log = (
        (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.verbose else (lambda _m: None)
    )
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if not args.latency:
        return _scaling_only(settings, sizes, out, args.json, log)
    load0 = round(os.getloadavg()[0], 2)
    bench, extra = build_bench(settings, args, log)
    conversations = load_conversations(args.conversations, args.conversations_format)
    bench.replay(conversations, args.turns, log)
    if args.scaling:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            extra.update(scaling_extra(bench.embedder.inner, sizes, Path(tmp), log))
    else:
        extra["retrieval_ms_at"] = {str(n): None for n in sizes}
        extra["index_items_per_s_at"] = {}
    extra["load_avg"] = [load0, round(os.getloadavg()[0], 2)]
    report = summarize(bench, extra)
    if out:
        (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        plot_latency(report, out / "latency.png")
        if report["scaling"]:
            from evaluation.scaling import ScalePoint, plot_scaling

            plot_scaling([ScalePoint(**p) for p in report["scaling"]], out / "scaling.png")
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _scaling_only(
    settings: Any, sizes: list[int], out: Path | None, as_json: bool, log: Callable[[str], None]
) -> int:
    """`--no-latency`: only the catalog scaling curve (no LLM is loaded)."""
    from evaluation.scaling import ScalePoint, plot_scaling
    from retrieval.embeddings import load_embedder

    load0 = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        report = scaling_extra(load_embedder(settings.retrieval.embedder), sizes, Path(tmp), log)
    report["load_avg"] = [load0, round(os.getloadavg()[0], 2)]
    if out:
        (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        plot_scaling([ScalePoint(**p) for p in report["scaling"]], out / "scaling.png")
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    for p in report["scaling"]:
        print(
            f"{p['size']:>7} items: query p50 {p['query_p50_ms']} ms, p95 {p['query_p95_ms']} "
            f"ms, filtered p50 {p['filtered_query_p50_ms']} ms; index {p['items_per_s']} items/s"
        )
    print(f"load average {report['load_avg'][0]} -> {report['load_avg'][1]}")
    return 0


def build_bench(settings: Any, args: argparse.Namespace, log: Callable[[str], None]):
    """Index the catalog if needed, then build the recommender and the naive chain once."""
    from chatbot.indexing import field_map, index_catalog
    from chatbot.turn import Recommender
    from evaluation.naive_rag import NaiveRAG
    from inference import compute_thread
    from inference.llm import load_llm
    from retrieval.catalog import demo_catalog_path, load_catalog
    from retrieval.collab import CollabSignals
    from retrieval.embeddings import load_embedder
    from retrieval.store import ItemStore

    path = demo_catalog_path() if args.catalog == "demo" else Path(args.catalog)
    embedder = TimedEmbeddings(load_embedder(settings.retrieval.embedder, run=compute_thread.run))
    raw = ItemStore(settings.chroma_location, settings.retrieval.collection, embedder)
    n_items = len(load_catalog(path, args.catalog_format, field_map(settings)).items)
    extra: dict[str, Any] = {"catalog": args.catalog, "items": n_items}
    if raw.count() != n_items:
        log(f"indexing {path} into {settings.home}")
        report = index_catalog(settings, path, fmt=args.catalog_format, progress=False, store=raw)
        extra["catalog_index_items_per_s"] = round(report.indexed / report.seconds, 1)
    collab = CollabSignals.load(settings.collab_path) if settings.collab_path.is_file() else None
    llm = load_llm(settings.llm, settings.model_cache)
    extra["threads"] = compute_thread.threads()  # where the forward passes run
    store = TimedStore(raw, embedder)
    rec = Recommender(settings, store, llm, collab)
    naive = NaiveRAG(llm, raw, prompt_dir=settings.prompts.dir) if args.naive else None
    return Bench(settings, rec, naive, embedder, store), extra


def scaling_extra(
    embedder: Any, sizes: Sequence[int], workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    from evaluation.scaling import run_scaling

    points = run_scaling(embedder, sizes, workdir, log=log)
    return {
        "scaling": [p.to_dict() for p in points],
        "retrieval_ms_at": {str(p.size): round(p.query_p50_ms, 2) for p in points},
        "index_items_per_s_at": {str(p.size): round(p.items_per_s, 1) for p in points},
    }


def load_conversations(path: str | None, fmt: str) -> list[list[str]]:
    """The user messages of each dialogue in `path` (default: the built-in conversations)."""
    if not path:
        return [list(c) for c in CONVERSATIONS]
    from dialogues.importers import load_dialogues

    out = []
    for dialogue in sorted(load_dialogues(path, fmt), key=lambda d: d.dialog_id):
        users = [t.text for t in dialogue.turns if t.role == "user" and t.text.strip()]
        if users:
            out.append(users)
    return out
