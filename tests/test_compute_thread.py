"""The compute thread: one thread owns torch in a serving process, so one OpenMP pool exists.

The serving process is a real child process (the OpenMP settings are read when torch loads),
running the real default LLM and embedder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from inference import compute_thread
from recochat.env import COMPUTE_THREADS, set_env_defaults

CHILD = r"""
import json, sys, threading
from pathlib import Path
from inference import compute_thread
from inference.llm import load_transformers_llm
from inference.settings import LLMSettings
from retrieval.embeddings import load_embedder

llm = load_transformers_llm(LLMSettings(), Path(sys.argv[1]))
embedder = load_embedder(run=compute_thread.run)
import torch

seen = []
def turn():  # as a Gradio worker thread runs one
    seen.append({
        "labels": llm.label_logprobs(llm.chat_prompt("Pick a letter for a heist film."), ["A", "B", "C"]),
        "stream": [t for t, _ in zip(llm.stream_ids(llm.chat_prompt("Name a film."), 12), range(12))],
        "vector": embedder.embed_query("a quiet film about the sea")[:8],
        "worker_threads": torch.get_num_threads(),
    })
t = threading.Thread(target=turn)
t.start()
t.join()
print(json.dumps({**seen[0], "enabled": compute_thread.enabled(),
                  "compute_threads": compute_thread.threads(),
                  "main_threads": torch.get_num_threads()}))
"""


def _child(env_setup: dict[str, str], model_cache) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    env.pop(COMPUTE_THREADS, None)
    env.update(env_setup)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(model_cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _serving_env() -> dict[str, str]:
    saved = dict(os.environ)
    try:
        for k in [k for k in os.environ if k.startswith("OMP_") or k == COMPUTE_THREADS]:
            del os.environ[k]
        set_env_defaults(serving=True)
        return {k: os.environ[k] for k in ("OMP_NUM_THREADS", COMPUTE_THREADS)}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_serving_process_has_one_pool_and_computes_what_a_plain_one_does(model_cache):
    cpus = len(os.sched_getaffinity(0))
    served = _child(_serving_env(), model_cache)
    plain = _child({"OMP_WAIT_POLICY": "PASSIVE"}, model_cache)  # as the tools and tests run
    assert served["enabled"] and not plain["enabled"]
    assert served["compute_threads"] == cpus
    assert served["main_threads"] == served["worker_threads"] == 1  # no second pool anywhere
    assert plain["worker_threads"] == cpus
    # The same kernels with the same thread count: the same numbers, to the last bit.
    assert served["labels"] == plain["labels"]
    assert served["stream"] == plain["stream"] and len(served["stream"]) == 12
    assert served["vector"] == plain["vector"]


@pytest.fixture
def compute(monkeypatch):
    """The compute thread switched on in this process (its own executor, shut down after)."""
    monkeypatch.setenv(COMPUTE_THREADS, "1")
    monkeypatch.setattr(compute_thread, "_executor", None)
    yield compute_thread
    if compute_thread._executor is not None:
        compute_thread._executor.shutdown(wait=True)


def test_calls_run_on_one_other_thread_and_nested_calls_run_inline(compute):
    here = threading.get_ident()
    where = {compute.run(threading.get_ident) for _ in range(3)}
    assert len(where) == 1 and here not in where
    assert compute.run(lambda: compute.run(threading.get_ident)) in where  # no deadlock
    assert not compute.on_compute_thread() and compute.run(compute.on_compute_thread)


def test_the_callers_grad_and_inference_modes_go_with_the_call(compute):
    import torch

    def modes():
        return torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    assert compute.run(modes) == (False, True)
    with torch.inference_mode():
        assert compute.run(modes) == (True, False)
    with torch.no_grad():
        assert compute.run(modes) == (False, False)


def test_an_error_reaches_the_caller_and_the_thread_goes_on(compute):
    def fail():
        raise ValueError("bad shape")

    with pytest.raises(ValueError, match="bad shape"):
        compute.run(fail)
    assert compute.run(lambda: 2 + 2) == 4


def test_without_the_setting_calls_run_inline(monkeypatch):
    monkeypatch.delenv(COMPUTE_THREADS, raising=False)
    monkeypatch.setattr(compute_thread, "_executor", None)
    assert compute_thread.run(threading.get_ident) == threading.get_ident()
    assert compute_thread._executor is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, {"OMP_NUM_THREADS": "1", COMPUTE_THREADS: str(len(os.sched_getaffinity(0)))}),
        ({"OMP_NUM_THREADS": "3"}, {"OMP_NUM_THREADS": "3", COMPUTE_THREADS: "3"}),
        ({COMPUTE_THREADS: "0"}, {COMPUTE_THREADS: "0", "OMP_WAIT_POLICY": "PASSIVE"}),
    ],
)
def test_serving_env_defaults(monkeypatch, given, expected):
    names = {"OMP_NUM_THREADS", "OMP_WAIT_POLICY", COMPUTE_THREADS}
    for k in names | {k for k in os.environ if k.startswith("OMP_")}:
        monkeypatch.setenv(k, "")  # so that monkeypatch restores what this test sets
        monkeypatch.delenv(k)
    for k, v in given.items():
        monkeypatch.setenv(k, v)
    set_env_defaults(serving=True)
    got = {k: v for k, v in os.environ.items() if k.startswith("OMP_") or k == COMPUTE_THREADS}
    assert got == expected
