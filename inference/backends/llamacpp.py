"""`llm.backend = "llamacpp"`: a GGUF model run in-process by llama.cpp (`llama-cpp-python`).

Same methods and the same greedy rules as `inference.llm.LLM` (the transformers reference), on
one llama.cpp sequence:

- Prompts are tokenized by the GGUF's own vocabulary and chat template (the same files the
  builtin transformers model is converted from).
- Prefix reuse is split-invariant, as the reference's prefix cache: a prompt is evaluated as
  [registered head | part shared by the rows of this call | own tokens], each piece in its
  own `eval`, so its scores never depend on what other traffic left in the KV cache. Heads
  (`cache_head`) are kept as sequence states and restored when the KV cache holds another
  prompt.
- `generate_ids` decodes with `greedy.GreedyRow` on the logits of each step: allowed token
  ids are a hard mask, so a reason cannot leave its vocabulary.

Built with `make setup` (see the Makefile: the AMX paths are off, the native build crashes on
this CPU).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.backends.greedy import GreedyRow, decode_greedy, finished, log_softmax
from inference.backends.vocab import (
    chat_messages,
    render_chat,
    single_token_ids,
    vocabulary_ids,
)
from inference.errors import ModelError
from inference.generation import Generation
from inference.llm import LLMStats
from inference.prefix_cache import common_prefix_length

log = logging.getLogger(__name__)

N_BATCH = 512  # llama.cpp's default logical batch: a 700-token prompt runs in two pieces


@dataclass
class _Head:
    ids: tuple[int, ...]
    state: bytes  # llama_state_seq_get_data of sequence 0 holding exactly `ids`


@dataclass
class LlamaCppLLM:
    """A llama.cpp context over one GGUF file (+ an optional llama.cpp LoRA file)."""

    model_path: Path
    n_ctx: int = 4096
    threads: int = 0  # 0: llama.cpp's default
    lora_path: Path | None = None
    name: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    stats: LLMStats = field(default_factory=LLMStats)
    max_heads: int = 8

    device = "cpu"

    def __post_init__(self) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError(
                "llm.backend = 'llamacpp' needs llama-cpp-python: run `make setup` (it builds "
                "llama-cpp-python from source)"
            ) from None
        if not Path(self.model_path).is_file():
            raise ModelError(f"GGUF file {self.model_path} not found")
        kwargs: dict[str, Any] = {}
        if self.threads:
            kwargs.update(n_threads=self.threads, n_threads_batch=self.threads)
        if self.lora_path is not None:
            kwargs["lora_path"] = str(self.lora_path)
        self.llama = Llama(
            model_path=str(self.model_path),
            n_ctx=self.n_ctx,
            n_batch=N_BATCH,
            logits_all=False,
            verbose=False,
            **kwargs,
        )
        self.name = self.name or Path(self.model_path).name
        self.n_vocab = self.llama.n_vocab()
        meta = self.llama.metadata
        self._template = meta.get("tokenizer.chat_template")
        if not self._template:
            raise ModelError(f"{self.model_path} has no chat template (tokenizer.chat_template)")
        self.eos_ids = {self.llama.token_eos()}
        eot = self._special_id("<|im_end|>")
        if eot is not None:
            self.eos_ids.add(eot)
        self.dtype = _file_type(meta)
        self._heads: list[_Head] = []
        self._resident: _Parked | None = None  # the stream whose sequence the KV cache holds

    # -- text ------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special-token markup (chat template tags) is parsed."""
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def decode(self, ids: list[int]) -> str:
        return self.llama.detokenize(ids).decode("utf-8", errors="replace")

    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        special = {
            "bos_token": self.decode_special(self.llama.token_bos()),
            "eos_token": self.decode_special(self.llama.token_eos()),
        }
        return render_chat(self._template, chat_messages(user_text, system), **special)

    def decode_special(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    def label_token_ids(self, labels: list[str]) -> list[int]:
        return single_token_ids(labels, self._encode_plain)

    def vocabulary_of(self, texts: list[str]) -> set[int]:
        return vocabulary_ids(texts, self._encode_plain, self.eos_ids)

    # -- scoring ---------------------------------------------------------------------------
    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        return self.label_logprobs_rows([prompt], labels)[0]

    def label_logprobs_rows(self, prompts: list[str], labels: list[str]) -> list[list[float]]:
        """Log-probabilities (normalised over `labels`) of each label after each prompt."""
        label_ids = self.label_token_ids(labels)
        rows = [self.encode(p) for p in prompts]
        cut = _shared_length(rows)
        out = []
        with self.lock:
            for row in rows:
                logits = self._run(row, cut)
                out.append(log_softmax([float(logits[i]) for i in label_ids]))
        return out

    # -- generation ------------------------------------------------------------------------
    generate = Generation.generate  # the text of `generate_ids`, cut at `stop`

    def generate_ids(
        self,
        prompts: list[str],
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed_tokens: list[set[int]] | None = None,
        one_sentence: bool = False,
    ) -> list[list[int]]:
        """Greedy decoding with the reference rules, one prompt after the other."""
        if allowed_tokens is not None and len(allowed_tokens) != len(prompts):
            raise ValueError("allowed_tokens needs one set of token ids per prompt")
        rows = [self.encode(p) for p in prompts]
        cut = _shared_length(rows) if rows else 0
        out = []
        with self.lock:
            for b, row in enumerate(rows):
                first = self._run(row, cut)
                started = time.perf_counter()
                greedy = GreedyRow(row, self.n_vocab, allowed_tokens[b] if allowed_tokens else None)
                ids = decode_greedy(
                    greedy, first, self._step, self.decode, eos=self.eos_ids,
                    max_new_tokens=max_new_tokens, stop=stop, one_sentence=one_sentence,
                )  # fmt: skip
                self.stats.generated_tokens += len(ids)
                self.stats.decode_s += time.perf_counter() - started
                out.append(ids)
        return out

    stream_text = Generation.stream_text  # text pieces of `stream_ids` (the reply writer)

    def stream_ids(
        self,
        prompt: str,
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed: set[int] | None = None,
        one_sentence: bool = False,
        constraint: Any = None,
    ) -> Iterator[int]:
        """`generate_ids([prompt], ...)[0]`, each id yielded as soon as it is picked.

        The lock is held per step, never across a `yield`. When another request needs the KV
        cache in between, it first parks this stream's sequence state (`_park`), and the next
        step restores it: the tokens are exactly those of an uninterrupted run. `constraint`:
        as `LLM.stream_ids` (the reply's title-span constraint, applied to each step's logits).
        """
        if constraint is not None and allowed is None:
            allowed = constraint.vocabulary()
        row = self.encode(prompt)
        greedy = GreedyRow(row, self.n_vocab, allowed)
        seq = _Parked(list(row))
        with self.lock:
            logits = self._run(row)
            self._resident = seq
        try:
            for i in range(max_new_tokens):
                with self.lock:
                    started = time.perf_counter()
                    done_ids = seq.ids[len(row) :]
                    only = constraint.allowed(done_ids) if constraint is not None else None
                    token = greedy.pick(logits, only)
                    if token in self.eos_ids:
                        return
                    greedy.push(token)
                    out = [*done_ids, token]
                    done = finished(self.decode(out), stop, one_sentence)
                    last = done or i == max_new_tokens - 1
                    if not last:
                        self._resume(seq)
                        logits = self._step(token)
                        seq.ids.append(token)
                    self.stats.generated_tokens += 1
                    self.stats.decode_s += time.perf_counter() - started
                yield token
                if last:
                    return
        finally:
            with self.lock:
                if self._resident is seq:
                    self._resident = None  # nothing to park once the stream is over

    def _park(self) -> None:
        """Save the resident stream's sequence before the KV cache is used for anything else."""
        seq, self._resident = self._resident, None
        if seq is not None and self.llama.n_tokens == len(seq.ids):
            seq.state = self._save_seq()

    def _resume(self, seq: _Parked) -> None:
        """Make `seq` the sequence in the KV cache (restoring its parked state if needed)."""
        if self._resident is seq:
            return
        self._park()
        if seq.state is None:
            raise ModelError("a streamed sequence was evicted without being parked")
        self._load_seq(_Head(tuple(seq.ids), seq.state))
        seq.state = None
        self._resident = seq

    @property
    def tokenizer(self) -> _Tokenizer:
        """The decode/encode pair callers of `LLM.tokenizer` use, on the GGUF's vocabulary."""
        return _Tokenizer(self)

    # -- prefix reuse ----------------------------------------------------------------------
    def cache_prefix(self, text: str) -> int:
        return self._cache_ids(self.encode(text))

    def cache_head(self, marked_prompt: str, marker: str) -> int:
        """As `LLM.cache_head`: keep the static head of a template (its last token left out)."""
        head = marked_prompt.split(marker, 1)[0]
        return self._cache_ids(self.encode(head)[:-1])

    def _cache_ids(self, ids: list[int]) -> int:
        if not ids:
            return 0
        key = tuple(ids)
        with self.lock:
            if any(h.ids == key for h in self._heads):
                return len(ids)
            self._park()
            self.llama.reset()
            self._eval(ids, 0)
            self._heads.append(_Head(key, self._save_seq()))
            if len(self._heads) > self.max_heads:
                self._heads.pop(0)
        return len(ids)

    def _head_of(self, ids: list[int]) -> _Head | None:
        best = None
        for h in self._heads:
            n = len(h.ids)
            if n < len(ids) and (best is None or n > len(best.ids)) and tuple(ids[:n]) == h.ids:
                best = h
        return best

    def _run(self, ids: list[int], cut: int = 0) -> np.ndarray:
        """Evaluate `ids` as [head | ids[:cut] | rest] and return the last token's logits."""
        if not ids:
            raise ModelError("cannot run an empty prompt")
        if len(ids) > self.n_ctx:
            raise ModelError(f"prompt of {len(ids)} tokens exceeds the context of {self.n_ctx}")
        started = time.perf_counter()
        self._park()
        head = self._head_of(ids)
        h = len(head.ids) if head else 0
        bounds = sorted({b for b in (h, cut) if 0 < b < len(ids)})
        held = common_prefix_length(self.llama.input_ids[: self.llama.n_tokens].tolist(), ids)
        start = max((b for b in bounds if b <= held), default=0)
        if head is not None and start < h:
            self._load_seq(head)
            start = h
        self.stats.cached_tokens += start
        self.stats.prompt_tokens += len(ids) - start
        for b in [*(b for b in bounds if b > start), len(ids)]:
            self._eval(ids[start:b], start)
            start = b
        self.stats.prefill_s += time.perf_counter() - started
        return self._logits()

    def _step(self, token: int) -> np.ndarray:
        self._eval([token], self.llama.n_tokens)
        return self._logits()

    def _eval(self, ids: list[int], start: int) -> None:
        self.llama.n_tokens = start
        self.llama.eval(ids)

    def _logits(self) -> np.ndarray:
        ptr = self.llama._ctx.get_logits_ith(-1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def _save_seq(self) -> bytes:
        import llama_cpp

        ctx = self.llama._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        return ctypes.string_at(buf, n)

    def _load_seq(self, head: _Head) -> None:
        import llama_cpp

        self.llama._ctx.kv_cache_seq_rm(0, 0, -1)
        buf = (ctypes.c_uint8 * len(head.state)).from_buffer_copy(head.state)
        if llama_cpp.llama_state_seq_set_data(self.llama._ctx.ctx, buf, len(head.state), 0) == 0:
            raise ModelError("llama.cpp could not restore a cached prompt head")
        self.llama.input_ids[: len(head.ids)] = head.ids
        self.llama.n_tokens = len(head.ids)

    def _encode_plain(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _special_id(self, text: str) -> int | None:
        ids = self.encode(text)
        return ids[0] if len(ids) == 1 else None


@dataclass
class _Parked:
    ids: list[int]  # prompt + output fed so far
    state: bytes | None = None  # its sequence state while another request uses the cache


@dataclass
class _Tokenizer:
    """The slice of a transformers tokenizer that callers use, on the GGUF's vocabulary."""

    llm: LlamaCppLLM

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict:
        return {"input_ids": [self.llm._encode_plain(t) for t in texts]}

    @property
    def eos_token_id(self) -> int:
        return self.llm.llama.token_eos()

    @property
    def pad_token_id(self) -> int:
        return self.llm.llama.token_eos()

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.llm.eos_ids]
        return self.llm.decode(list(ids))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self.llm._encode_plain(text)


def _shared_length(rows: list[list[int]]) -> int:
    """Tokens every row shares, each row keeping at least one own token (0 for one row)."""
    if len(rows) < 2:
        return 0
    shortest = min(len(r) for r in rows)
    shared = rows[0][: max(shortest - 1, 0)]
    for r in rows[1:]:
        shared = shared[: common_prefix_length(shared, r)]
    return len(shared)


_FILE_TYPES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 7: "q8_0", 32: "bf16"}


def _file_type(meta: dict[str, str]) -> str:
    raw = meta.get("general.file_type")
    try:
        return _FILE_TYPES.get(int(raw), f"gguf type {raw}")
    except (TypeError, ValueError):
        return "gguf"
