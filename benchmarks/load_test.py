"""Load test: many concurrent sessions against the Gradio server, checking session isolation.

    # start a server (index the demo catalog, `recochat chat` on a free loopback port), 24 x 10:
    python benchmarks/load_test.py --sessions 24 --turns 10 --no-reasons
    # a backend against transformers-unbatched in the same run (two servers, one after the
    # other; the figures side by side and the turns/s speed-up):
    python benchmarks/load_test.py --backend llamacpp --batching --sessions 20 --turns 10 \
        --home runs/load-home --json runs/load_llamacpp.json
    # ranking on transformers, the reply on in-process llama.cpp, against the same baseline:
    python benchmarks/load_test.py --backend transformers --generate-backend llamacpp \
        --sessions 20 --turns 10 --replay 2 --home runs/load-home --json runs/load_split.json
    # the same, after a baseline server without the compute thread (inference/compute_thread.py):
    python benchmarks/load_test.py --backend transformers --batching --compare-compute-thread \
        --sessions 20 --turns 10 --replay 2 --home runs/load-home --json runs/load_compute.json
    # or drive a server that is already running (started with the same catalog):
    python benchmarks/load_test.py --url http://127.0.0.1:7860/ --sessions 24 --turns 10

Each session is one `gradio_client.Client` in its own thread, sending its turns one after the
other as a person would, all sessions at once. Every session carries marker preferences that
no other session has: "since <year>" with a year unique to the session, plus "no <genre>", and
on its first turn a 👎 on its first pick and a 👍 on its second. Checked on every turn:
- the structured `filters` of each /recommend result are exactly the session's own (another
  session's constraint, or another session's result, shows up as a different label set);
- every pick satisfies the session's year and genre filters;
- the session never gets an item twice, nor its 👎 item;
- afterwards, /feedback from each session on an item only other sessions were shown is refused
  ("was not shown in this session"): no session sees another's items;
- `--replay K` sessions are re-run alone, in sequence, on fresh ids: their picks must equal the
  concurrent run's turn by turn (any influence of other sessions' traffic changes them). Their
  replies are compared too and counted, not failed: with `--batching` a reply decoded beside
  others may be worded differently in bf16 (inference/stream_batching.py).
Exit status 1 on any error, violation or replay mismatch. Latency is per turn as the client sees
it (queueing included); "server turn" is the recommender's own `timings_ms.total`.

The server's limits are deliberate (chatbot/config.py, ServerSettings): `server.concurrency`
turns run at once (default 2: the model is shared and serialises its forward passes, so more
only adds contention on a small CPU; 16 with `llm.batching`, whose concurrent replies decode as
one batch), `server.max_queue` requests wait before new ones are
refused (default 64). Set them for the started server with --concurrency / --max-queue.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradio_client import Client
from gradio_client.exceptions import AppError

from recochat.env import COMPUTE_THREADS, set_env_defaults

GENRES = [
    "drama",
    "comedy",
    "family",
    "thriller",
    "crime",
    "action",
    "mystery",
    "horror",
    "fantasy",
    "adventure",
    "romance",
    "animation",
    "music",
    "western",
    "sci-fi",
    "war",
]
FOLLOW_UPS = [  # add no constraint: the session's filters must stay exactly its markers
    "Show me a few more",
    "What else do you have?",
    "More like these",
    "Go on",
    "Another few, please",
    "Keep them coming",
    "Any more ideas?",
    "Next ones",
    "A few more please",
]


@dataclass
class Session:
    index: int
    sid: str
    year: int
    genre: str
    messages: list[str]
    picks: list[list[str]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    feedback_calls: int = 0
    down: str | None = None

    @property
    def labels(self) -> list[str]:
        return [f"no {self.genre}", f"from {self.year}"]


def make_sessions(n: int, turns: int, run_id: str) -> list[Session]:
    out = []
    for i in range(n):
        year, genre = 1970 + i, GENRES[i % len(GENRES)]
        first = f"A good movie since {year}, but no {genre} please"
        rest = [FOLLOW_UPS[(i + t) % len(FOLLOW_UPS)] for t in range(turns - 1)]
        out.append(Session(i, f"load-{run_id}-{i}", year, genre, [first, *rest]))
    return out


def run_session(url: str, s: Session, catalog: dict[str, dict], auth: tuple | None) -> Session:
    client = Client(url, auth=auth, verbose=False)
    seen: set[str] = set()
    for turn, message in enumerate(s.messages):
        start = time.perf_counter()
        try:
            result = client.predict(message, s.sid, api_name="/recommend")
        except Exception as exc:  # every failure counts; the message says which
            s.errors.append(f"turn {turn}: {type(exc).__name__}: {exc}")
            s.picks.append([])
            s.replies.append("")
            continue
        s.latencies_ms.append((time.perf_counter() - start) * 1000)
        s.server_ms.append(float(result.get("timings_ms", {}).get("total", 0.0)))
        ids = [r["item_id"] for r in result["recommendations"]]
        s.picks.append(ids)
        s.replies.append(result.get("reply", ""))
        check_turn(s, turn, result, ids, seen, catalog)
        seen.update(ids)
        if turn == 0 and len(ids) >= 2:
            s.down = ids[0]
            for item_id, signal in ((ids[0], "down"), (ids[1], "up")):
                try:
                    client.predict(s.sid, item_id, signal, api_name="/feedback")
                    s.feedback_calls += 1
                except Exception as exc:
                    s.errors.append(f"feedback {signal}: {type(exc).__name__}: {exc}")
    return s


def check_turn(s: Session, turn: int, result: dict, ids: list[str], seen: set, catalog) -> None:
    def bad(what: str) -> None:
        s.violations.append(f"{s.sid} turn {turn}: {what}")

    filters = result.get("filters")  # structured: the session's active filters
    if filters is None:
        bad("the /recommend result has no filters")
    elif filters != s.labels:
        bad(f"filters {filters!r}, expected {s.labels!r}")
    for item_id in ids:
        row = catalog.get(item_id)
        if row is None:
            bad(f"{item_id} is not in the catalog")
            continue
        if int(row.get("year") or 0) < s.year or s.genre in row.get("genres", []):
            bad(f"{item_id} ({row.get('year')}, {row.get('genres')}) breaks the session's filters")
        if item_id in seen:
            bad(f"{item_id} shown twice")
        if item_id == s.down:
            bad(f"{item_id} was 👎 but came back")


def probe_feedback(url: str, sessions: list[Session], auth: tuple | None) -> list[str]:
    """Each session's /feedback on an item only other sessions saw must be refused."""
    client = Client(url, auth=auth, verbose=False)
    shown = {s.sid: {i for picks in s.picks for i in picks} for s in sessions}
    violations = []
    for s in sessions:
        others = set().union(*(v for k, v in shown.items() if k != s.sid)) - shown[s.sid]
        if not others:
            continue
        item_id = min(others)
        try:
            client.predict(s.sid, item_id, "down", api_name="/feedback")
            violations.append(f"{s.sid}: feedback on {item_id}, never shown to it, was accepted")
        except AppError as exc:
            if "was not shown in this session" not in str(exc):
                violations.append(f"{s.sid}: unexpected feedback error {exc}")
    return violations


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    args: argparse.Namespace, engine: list[str] | None = None, env_extra: dict | None = None
) -> tuple[str, subprocess.Popen]:
    """Index, then `recochat chat` on a free port; `engine`: its LLM backend flags;
    `env_extra`: its environment variables (the compute-thread-off baseline)."""
    env = {**os.environ, **(env_extra or {})}  # `python -m recochat` sets the other defaults
    if args.concurrency:  # else the server's default (2; 16 with llm.batching)
        env["RECOCHAT_SERVER__CONCURRENCY"] = str(args.concurrency)
    env["RECOCHAT_SERVER__MAX_QUEUE"] = str(args.max_queue)
    common = ["--home", args.home] if args.home else []
    if not args.reasons:
        common.append("--no-reasons")
    cli = [sys.executable, "-m", "recochat"]
    print(f"indexing {args.catalog} ...", flush=True)
    subprocess.run([*cli, "index", "--catalog", args.catalog, *common], env=env, check=True)
    port = free_port()
    log = open(args.server_log, "a")  # noqa: SIM115 (lives as long as the server)
    server = subprocess.Popen(
        [*cli, "chat", "--host", "127.0.0.1", "--port", str(port), *common, *(engine or [])],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 900  # a first run converts the model (minutes on a small CPU)
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}: see {args.server_log}")
        try:
            Client(url, verbose=False)
            return url, server
        except Exception:
            time.sleep(1)
    server.terminate()
    sys.exit(f"the server did not answer within 15 minutes: see {args.server_log}")


def load_catalog_rows(name: str) -> dict[str, dict]:
    from retrieval.catalog import demo_catalog_path, load_catalog

    path = demo_catalog_path() if name == "demo" else Path(name)
    return {it.item_id: dict(it.metadata) for it in load_catalog(path).items}


def main(argv: list[str] | None = None) -> int:
    set_env_defaults(serving=True)  # before anything loads torch; the servers inherit it
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", help="a running server; default: start one on a free port")
    p.add_argument("--sessions", type=int, default=24)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--replay", type=int, default=2, help="sessions re-run alone to compare")
    p.add_argument("--catalog", default="demo", help="catalog the server has indexed")
    p.add_argument("--home", help="data dir of the started server (default: its own default)")
    p.add_argument("--no-reasons", dest="reasons", action="store_false", help="skip LLM reasons")
    p.add_argument(
        "--concurrency",
        type=int,
        help="server.concurrency of the started servers (default: theirs, 2; 16 with batching)",
    )
    p.add_argument("--max-queue", type=int, default=64, help="server.max_queue when started")
    p.add_argument("--auth", help="user:pass of the server")
    p.add_argument("--server-log", default="load_test_server.log")
    p.add_argument("--json", dest="json_out", help="also write the figures to this file")
    p.add_argument(
        "--backend",
        choices=["transformers", "llamacpp", "openai"],
        help="LLM backend of the started server; run after a transformers-unbatched baseline "
        "in the same run (turns/s side by side)",
    )
    p.add_argument(
        "--generate-backend",
        choices=["transformers", "llamacpp", "openai"],
        help="llm.generate_backend of the --backend server (the reply on another engine)",
    )
    p.add_argument("--batching", action="store_true", help="llm.batching on the --backend server")
    p.add_argument("--base-url", help="openai: a running server (default: start llama.cpp's)")
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --backend: first run transformers-unbatched",
    )
    p.add_argument(
        "--compare-compute-thread",
        action="store_true",
        help="with --backend: first run transformers-unbatched with RECOCHAT_COMPUTE_THREADS=0 "
        "(torch on every Gradio worker thread, as before the compute thread)",
    )
    args = p.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None

    catalog = load_catalog_rows(args.catalog)
    if args.url or not args.backend:
        figures, failures = run_load(args, args.url, None, catalog, auth)
        print_figures(figures, failures)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        return 1 if failures else 0
    runs: dict[str, Any] = {}
    ok = True
    for label, engine, env_extra in engines(args):
        print(f"== {label} ==", flush=True)
        llama = None
        if "--base-url" in engine and engine[engine.index("--base-url") + 1] == "auto":
            from evaluation.backend_bench import start_llama_server

            llama, base = start_llama_server()
            engine[engine.index("--base-url") + 1] = base
        try:
            figures, failures = run_load(args, None, engine, catalog, auth, env_extra)
        finally:
            if llama is not None:
                from evaluation.backend_bench import stop_process

                stop_process(llama)
        figures["engine"] = engine
        figures["env"] = env_extra
        print_figures(figures, failures)
        runs[label] = figures
        ok = ok and not failures
    if len(runs) >= 2:
        *bases, cand = runs.values()
        for name, base in zip(list(runs), bases, strict=False):
            speedup = cand["turns_per_s"] / base["turns_per_s"] if base["turns_per_s"] else None
            key = "speedup_turns_per_s" + ("" if name == "transformers-unbatched" else "_vs_off")
            runs[key] = speedup
            print(f"speed-up over {name}: {speedup:.2f}x turns/s (target >= 3x)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1


def engines(args: argparse.Namespace) -> list[tuple[str, list[str], dict]]:
    """(label, server flags, server env): transformers-unbatched first (the baseline; with
    --compare-compute-thread, first without the compute thread), then --backend."""
    flags = ["--backend", args.backend]
    label = args.backend
    if args.generate_backend:
        flags += ["--generate-backend", args.generate_backend]
        label += f" (generation on {args.generate_backend})"
    if "openai" in (args.backend, args.generate_backend):
        flags += ["--base-url", args.base_url or "auto"]
    if args.batching:
        flags.append("--batching")
        label += " + batching"
    baseline = ("transformers-unbatched", ["--backend", "transformers"], {})
    off = [("transformers-unbatched, compute thread off", baseline[1], {COMPUTE_THREADS: "0"})]
    off = off if args.compare_compute_thread else []
    if not args.baseline or flags == baseline[1]:
        return [*off, (label, flags, {})]
    return [*off, baseline, (label, flags, {})]


def run_load(
    args: argparse.Namespace,
    url: str | None,
    engine: list[str] | None,
    catalog: dict[str, dict],
    auth: Any,
    env_extra: dict | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """One load run (+ isolation probes and the replay check): its figures and failures."""
    server = None
    if url is None:
        url, server = start_server(args, engine, env_extra)
    try:
        run_id = f"{os.getpid()}-{int(time.time())}"
        sessions = make_sessions(args.sessions, args.turns, run_id)
        print(f"{len(sessions)} sessions x {args.turns} turns against {url}", flush=True)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
            done = list(pool.map(lambda s: run_session(url, s, catalog, auth), sessions))
        wall = time.perf_counter() - start
        violations = [v for s in done for v in s.violations]
        violations += probe_feedback(url, done, auth)
        replayed, mismatches, replies_changed = 0, [], 0
        for s in done[: args.replay]:
            alone = Session(s.index, f"{s.sid}-replay", s.year, s.genre, s.messages)
            run_session(url, alone, catalog, auth)
            replayed += 1
            for turn, (a, b) in enumerate(zip(s.picks, alone.picks, strict=True)):
                if a != b:
                    mismatches.append(f"{s.sid} turn {turn}: {a} concurrently, {b} alone")
            # not a failure: batched decoding may change a bf16 reply's wording (a figure)
            replies_changed += sum(a != b for a, b in zip(s.replies, alone.replies, strict=True))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    errors = [e for s in done for e in s.errors]
    latencies = [x for s in done for x in s.latencies_ms]
    server_ms = [x for s in done for x in s.server_ms]
    figures: dict[str, Any] = {
        "url": url,
        "sessions": len(done),
        "turns_per_session": args.turns,
        "turns_ok": len(latencies),
        "errors": len(errors),
        "feedback_calls": sum(s.feedback_calls for s in done),
        "violations": len(violations),
        "replayed_sessions": replayed,
        "replay_mismatched_turns": len(mismatches),
        "replay_changed_replies": replies_changed,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "max": max(latencies, default=float("nan")),
        },
        "server_total_ms": {"p50": percentile(server_ms, 50), "p95": percentile(server_ms, 95)},
        "wall_s": wall,
        "turns_per_s": len(latencies) / wall,
        "reasons": args.reasons if server else None,
        "concurrency": args.concurrency if server else None,
        "max_queue": args.max_queue if server else None,
    }
    return figures, errors + violations + mismatches


def print_figures(figures: dict[str, Any], failures: list[str]) -> None:
    lat = figures["latency_ms"]
    print(
        f"turns: {figures['turns_ok']} ok, {figures['errors']} errors; feedback calls: "
        f"{figures['feedback_calls']}"
    )
    print(
        f"turn latency (client): p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, "
        f"max {lat['max']:.0f} ms; server turn p50 {figures['server_total_ms']['p50']:.0f} ms"
    )
    print(
        f"throughput: {figures['turns_per_s']:.2f} turns/s ({figures['turns_ok']} turns in {figures['wall_s']:.1f} s)"
    )
    print(
        f"isolation: {figures['violations']} violations (filters and repeats on every turn, "
        f"{figures['sessions']} feedback probes)"
    )
    print(
        f"replay: {figures['replay_mismatched_turns']} of {figures['replayed_sessions'] * figures['turns_per_session']} turns differ when "
        f"{figures['replayed_sessions']} sessions are re-run alone; "
        f"{figures['replay_changed_replies']} replies worded differently"
    )
    for line in failures[:20]:
        print("  " + line)


if __name__ == "__main__":
    raise SystemExit(main())
