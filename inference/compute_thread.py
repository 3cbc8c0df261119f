"""One long-lived thread runs the torch work of a serving process, so one OpenMP pool exists.

    from inference import compute_thread
    out = compute_thread.run(model, **inputs)   # on the compute thread, or inline

torch's OpenMP runtime (libgomp) gives every thread that runs a parallel region its own pool
of workers, and its workers stop spinning between regions once the pools outnumber the cores.
A Gradio server runs each turn on one of many worker threads, so without this every forward
pass paid for waking sleeping workers (a decoding step of the default model: 44-60 ms against
~28 ms with one pool; `benchmarks/omp_pools.py`).

Enabled by `RECOCHAT_COMPUTE_THREADS` (set for serving processes by
`recochat.env.set_env_defaults(serving=True)`, together with `OMP_NUM_THREADS=1` for every
other thread): the compute thread gets that many OpenMP threads. Without it, `run` calls
inline, as training, the tests and library use do.

The thread is a one-worker `concurrent.futures.ThreadPoolExecutor`: calls run in order, an
exception reaches the caller, and the interpreter waits for a running call at exit instead of
killing it mid forward pass. The caller's grad and inference modes (thread-local in torch) go
with each call. A call made on the compute thread itself runs inline, so nested calls cannot
deadlock; callers may hold their own locks while they wait, since the thread never takes one.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)

ENV = "RECOCHAT_COMPUTE_THREADS"  # set by recochat.env for serving processes

T = TypeVar("T")

_start_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_local = threading.local()


def configured_threads() -> int | None:
    """The compute thread's OpenMP thread count, or None when the thread is off."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        log.warning("%s=%r is not a number of threads: the compute thread is off", ENV, value)
        return None
    return n if n > 0 else None


def enabled() -> bool:
    return configured_threads() is not None


def on_compute_thread() -> bool:
    return getattr(_local, "inside", False)


def run(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on the compute thread (inline when it is off or already there)."""
    if on_compute_thread():
        return fn(*args, **kwargs)
    executor = _get_executor()
    if executor is None:
        return fn(*args, **kwargs)
    import torch

    modes = (torch.is_inference_mode_enabled(), torch.is_grad_enabled())
    return executor.submit(_call_in_modes, modes, fn, args, kwargs).result()


def set_threads(n: int) -> None:
    """Give the compute thread `n` OpenMP threads (`llm.threads`); other threads keep theirs."""
    if _get_executor() is None:
        import torch

        torch.set_num_threads(n)
        return
    run(_set_omp_threads, n)


def threads() -> int:
    """How many threads torch uses where the forward passes run."""
    import torch

    return run(torch.get_num_threads)


def _call_in_modes(modes: tuple[bool, bool], fn: Callable[..., T], args: Any, kwargs: Any) -> T:
    import torch

    inference, grad = modes
    with torch.inference_mode(inference), torch.set_grad_enabled(grad):
        return fn(*args, **kwargs)


def _get_executor() -> ThreadPoolExecutor | None:
    global _executor
    if _executor is not None:
        return _executor
    n = configured_threads()
    if n is None:
        return None
    with _start_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix="recochat-compute",
                initializer=_start,
                initargs=(n,),
            )
    return _executor


def _start(n: int) -> None:
    _local.inside = True
    import torch

    torch.get_num_threads()  # torch's own per-thread set-up first: OMP_NUM_THREADS for it
    _set_omp_threads(n)
    log.info("compute thread: %d OpenMP threads", torch.get_num_threads())


def _set_omp_threads(n: int) -> None:
    """`omp_set_num_threads(n)` for the calling thread only. `torch.set_num_threads` would also
    set torch's process-wide count, which every other thread copies at its first parallel op."""
    lib = _libgomp()
    if lib is None:  # not libgomp (or no /proc): torch's own setter, process-wide
        import torch

        torch.set_num_threads(n)
        return
    lib.omp_set_num_threads(ctypes.c_int(n))


def _libgomp() -> Any:
    """The OpenMP runtime torch loaded (found in this process's memory map), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line}
    except OSError:
        return None
    torch_own = sorted(p for p in paths if "/torch" in p) or sorted(paths)
    return ctypes.CDLL(torch_own[0]) if torch_own else None
