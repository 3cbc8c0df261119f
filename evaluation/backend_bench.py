"""`recochat bench --backends transformers,llamacpp,openai`: the bench once per backend, each in
its own child process (`recochat bench --backend X --no-scaling --no-naive --json`), side by
side. `A+B` ranks on engine A and writes on engine B (`llm.generate_backend`).

    recochat bench --backends transformers,llamacpp,openai,transformers+llamacpp --turns 24 \
        --out runs/bench-backends

`openai` runs against `python -m llama_cpp.server` serving the builtin GGUF, started on a free
loopback port for the run (or against `--base-url URL`, left as it is). Writes
`backends.json` (each child's bench.json under its backend, + the server's RSS) and
`backends.md` (the table), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from inference.settings import BACKENDS

log = logging.getLogger(__name__)

COLUMNS = [  # (header, path in a child's bench.json)
    ("first rec p50 ms", ("first_rec_ms", "p50")),
    ("first reply token p50 ms", ("first_reply_token_ms", "p50")),
    ("turn p50 ms", ("turn_ms", "p50")),
    ("turn p95 ms", ("turn_ms", "p95")),
    ("decode tok/s", ("decode_tokens_per_s",)),
    ("peak RSS MB", ("peak_rss_mb",)),
]


def run_backend_bench(args: argparse.Namespace) -> int:
    names = [b.strip() for b in str(args.backends).split(",") if b.strip()]
    unknown = [b for b in names if not _known(b)]
    if unknown:
        from chatbot.errors import ConfigError

        raise ConfigError(
            f"unknown backend(s) {unknown}: choose from {list(BACKENDS)}, A+B, or transformers@int4"
        )
    out = Path(args.out or "runs/bench-backends")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in names:
        server = None
        base_url = getattr(args, "base_url", None)
        if "openai" in name.split("+") and not base_url:
            server, base_url = start_llama_server()
        try:
            results[name] = _child(args, name, out / name, base_url)
            if server is not None:
                results[name]["server_rss_mb"] = _rss_mb(server.pid)
        finally:
            if server is not None:
                stop_process(server)
    (out / "backends.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = format_backends(results)
    (out / "backends.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0 if all("error" not in r for r in results.values()) else 1


def _known(name: str) -> bool:
    engines, _, weights = name.partition("@")
    parts = engines.split("+")
    if weights and (weights != "int4" or "transformers" not in parts):
        return False
    return len(parts) <= 2 and all(e in BACKENDS for e in parts)


def _child(args: argparse.Namespace, name: str, out: Path, base_url: str | None) -> dict:
    engines, _, weights = name.partition("@")
    ranking, _, generation = engines.partition("+")
    cmd = [
        sys.executable, "-m", "recochat", "bench", "--no-scaling", "--no-naive", "--json",
        "--turns", str(args.turns), "--catalog", args.catalog, "--backend", ranking,
        "--out", str(out),
    ]  # fmt: skip
    if generation:
        cmd += ["--generate-backend", generation]
    for flag, value in (
        ("--catalog-format", args.catalog_format),
        ("--home", args.home),
        ("--model", args.model),
        ("--adapter", args.adapter),
        ("--rerank-mode", args.rerank_mode),
        ("--gguf", args.gguf),
        ("--conversations", args.conversations),
        ("--conversations-format", args.conversations and args.conversations_format),
    ):
        if value:
            cmd += [flag, str(value)]
    if "openai" in (ranking, generation):
        cmd += ["--base-url", str(base_url)]
    if args.reasons is False:
        cmd.append("--no-reasons")
    if args.batching:
        cmd.append("--batching")
    log.info("bench %s: %s", name, " ".join(cmd))
    env = {**os.environ, "RECOCHAT_LLM__DECODE_WEIGHTS": weights} if weights else None
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    bench_json = out / "bench.json"
    if done.returncode != 0 or not bench_json.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": tail[0]}
    return json.loads(bench_json.read_text(encoding="utf-8"))


def format_backends(results: dict[str, Any]) -> str:
    lines = [
        "| backend | " + " | ".join(h for h, _ in COLUMNS) + " |",
        "| --- |" + " --- |" * len(COLUMNS),
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} |" + " |" * (len(COLUMNS) - 1))
            continue
        cells = [_cell(_get(r, path)) for _, path in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    loads = {n: r.get("load_avg") for n, r in results.items() if "error" not in r}
    lines.append("")
    lines.append(f"load average (start, end) per backend: {loads}")
    return "\n".join(lines)


def _get(r: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        r = r.get(key) if isinstance(r, dict) else None
    return r


def _cell(value: Any) -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _rss_mb(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llama_server(
    port: int | None = None, alias: str = "smollm2", timeout_s: float = 120
) -> tuple[subprocess.Popen, str]:
    """`python -m llama_cpp.server` on the builtin GGUF, on loopback; (process, base URL)."""
    import httpx

    from inference.errors import ModelError
    from inference.model_files import builtin_gguf_path

    port = port or free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(builtin_gguf_path()),
        "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "4096", "--verbose", "false",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ModelError("python -m llama_cpp.server exited at startup (run `make setup`)")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    stop_process(proc)
    raise ModelError(f"python -m llama_cpp.server did not come up in {timeout_s:.0f} s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
