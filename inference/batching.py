"""`llm.batching`: concurrent sessions' generation shares forward passes.

Streamed replies (`stream_ids` / `stream_text`) on the transformers engine are decoded as one
continuous batch (`inference.stream_batching`): every session's reply is a row, rows join and
leave between steps, one forward pass per step serves them all. Other engines stream as they
are (llama.cpp in-process decodes one sequence at a time; an HTTP server batches on its side).

A `generate` / `generate_ids` call waits up to `window_s` for calls from other threads with the
same decoding options (`max_new_tokens`, `stop`, `one_sentence`); the first caller then runs
them all as one batch on the wrapped engine and hands each caller its own rows. On
transformers that is one batched forward per step for every session's reasons; llama.cpp and
HTTP engines get the rows one call.

Ranking (`label_logprobs`, `label_logprobs_rows`) is passed through unmerged: a row's scores
would otherwise depend on what it was batched with (padding and the shared-prefix split move
bf16/int8 scores), which the load test's replay check forbids (0 of 20 replayed picks may
change). Those calls are short and run under the engine's own lock, one after the other.
Everything else (`chat_prompt`, `stats`, ...) is the wrapped engine's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from inference.generation import Generation
from inference.stream_batching import StreamBatcher


@dataclass
class _Job:
    prompts: list[str]
    allowed: list[set[int]] | None
    done: threading.Event = field(default_factory=threading.Event)
    result: list[list[int]] | None = None
    error: BaseException | None = None


class BatchingLLM:
    """Wraps an engine with `LLM`'s methods; merges generation across threads."""

    def __init__(self, inner: Any, window_s: float = 0.008, max_rows: int = 32) -> None:
        self.inner = inner
        self.window_s = window_s
        self.max_rows = max_rows
        self._cond = threading.Condition()
        self._queues: dict[tuple, list[_Job]] = {}
        self.batches = 0  # merged calls run
        self.merged_calls = 0  # caller calls that shared a batch with another
        writer = getattr(inner, "writer", inner)  # a task split streams on its writer
        self.streams = StreamBatcher(writer, max_rows) if _is_transformers(writer) else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    generate = Generation.generate  # the text of the merged `generate_ids`, cut at `stop`
    stream_text = Generation.stream_text  # text pieces of `stream_ids`

    def stream_ids(self, prompt: str, max_new_tokens: int, **kwargs: Any) -> Iterator[int]:
        """The engine's `stream_ids`; on transformers, a row of the shared decoding batch."""
        if self.streams is None:
            return self.inner.stream_ids(prompt, max_new_tokens, **kwargs)
        return self.streams.stream_ids(prompt, max_new_tokens, **kwargs)

    def generate_ids(
        self,
        prompts: list[str],
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed_tokens: list[set[int]] | None = None,
        one_sentence: bool = False,
    ) -> list[list[int]]:
        if allowed_tokens is not None and len(allowed_tokens) != len(prompts):
            raise ValueError("allowed_tokens needs one set of token ids per prompt")
        if not prompts:
            return []
        key = (max_new_tokens, stop, one_sentence, allowed_tokens is not None)
        job = _Job(list(prompts), allowed_tokens)
        with self._cond:
            queue = self._queues.setdefault(key, [])
            queue.append(job)
            leader = len(queue) == 1
        if not leader:
            job.done.wait()
            if job.error is not None:
                raise job.error
            assert job.result is not None
            return job.result
        time.sleep(self.window_s)  # let other sessions' calls join
        with self._cond:
            jobs = self._take(key)
        self._run(jobs, max_new_tokens, stop, one_sentence)
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _take(self, key: tuple) -> list[_Job]:
        """The leader's batch: queued jobs up to `max_rows` rows; the rest get a new leader."""
        queue = self._queues.pop(key)
        jobs, rows = [], 0
        while queue and (not jobs or rows + len(queue[0].prompts) <= self.max_rows):
            rows += len(queue[0].prompts)
            jobs.append(queue.pop(0))
        if queue:  # too many rows: the next one leads its own batch at once
            self._queues[key] = []
            threading.Thread(target=self._lead_rest, args=(key, queue), daemon=True).start()
        return jobs

    def _lead_rest(self, key: tuple, queue: list[_Job]) -> None:
        with self._cond:
            self._queues.setdefault(key, [])[:0] = queue
            jobs = self._take(key)
        self._run(jobs, key[0], key[1], key[2])

    def _run(self, jobs: list[_Job], max_new_tokens: int, stop: Any, one_sentence: bool) -> None:
        prompts = [p for j in jobs for p in j.prompts]
        allowed = [a for j in jobs for a in j.allowed] if jobs[0].allowed is not None else None
        try:
            rows = self.inner.generate_ids(
                prompts, max_new_tokens, stop=stop, allowed_tokens=allowed,
                one_sentence=one_sentence,
            )  # fmt: skip
        except BaseException as exc:  # each caller re-raises it in its own thread
            for j in jobs:
                j.error = exc
                j.done.set()
            return
        self.batches += 1
        if len(jobs) > 1:
            self.merged_calls += len(jobs)
        start = 0
        for j in jobs:
            j.result = rows[start : start + len(j.prompts)]
            start += len(j.prompts)
            j.done.set()


def _is_transformers(engine: Any) -> bool:
    from inference.llm import LLM

    return isinstance(engine, LLM)
