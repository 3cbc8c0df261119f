"""`llm.backend = "openai"`: any OpenAI-compatible completions server (llama.cpp's
`python -m llama_cpp.server`, vLLM, ...) behind the methods of `inference.llm.LLM`.

Prompts are rendered and label/vocabulary ids computed with a local copy of the served
model's tokenizer (a transformers tokenizer); the server gets text on `/v1/completions`.

Label log-probabilities. Servers report the log-probability of the token they return, and of
their top-k tokens, either from the raw model output (llama.cpp's Python server, vLLM's
default) or after logit processors. `probe` finds out which, once, at startup:
- raw: one request biases every label by +100 (so the returned token is a label) with
  `logprobs = k`; labels missing from the top k each get one request that forces that label
  with its own +100 bias (the forced token's raw log-probability is always reported).
- processed: the bias leaves only labels in the top k, so one request gives them all.
Either way the values are renormalised over the labels, as `LLM.label_logprobs` does.

Constrained generation (`allowed_tokens`): a GBNF grammar spelling only the allowed tokens'
texts goes in the request field `grammar_field` (llama.cpp: `grammar`); where the probe finds
that the server ignores it, outputs are checked instead and one that leaves its vocabulary is
replaced by "" (the reason stage then writes its template reason), counted in
`constraint_fallbacks`. A server that cannot give log-probabilities fails at startup in one
line.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from inference.backends.greedy import finished, log_softmax
from inference.backends.vocab import (
    allowed_grammar,
    chat_messages,
    single_token_ids,
    vocabulary_ids,
)
from inference.errors import ModelError
from inference.generation import Generation, cut_text
from inference.llm import LLMStats

log = logging.getLogger(__name__)

FORCE = 100.0  # a logit bias that makes a token the greedy choice
_SENTENCE = re.compile(r"^(.*?[.!?])(?:\s|$)", re.S)


@dataclass
class OpenAIHTTPLLM:
    base_url: str  # e.g. http://127.0.0.1:8080/v1
    model: str  # the served model's name on that server
    tokenizer: Any  # the served model's transformers tokenizer (local files)
    api_key_env: str = "OPENAI_API_KEY"  # read at startup; local servers need none
    timeout_s: float = 60.0
    max_retries: int = 2  # the openai client's own retries with backoff
    top_logprobs: int = 20  # vLLM's default --max-logprobs
    grammar_field: str | None = "grammar"  # llama.cpp's name; None: never send a grammar
    extra_body: dict[str, Any] = field(default_factory=lambda: {"repeat_penalty": 1.1})
    parallel: int = 4  # requests in flight per call
    name: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    stats: LLMStats = field(default_factory=LLMStats)

    device = "remote"
    dtype = "server"

    def __post_init__(self) -> None:
        import openai

        self.name = self.name or f"{self.model or 'served model'} @ {self.base_url}"
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=os.environ.get(self.api_key_env) or "unused",
            timeout=self.timeout_s,
            max_retries=self.max_retries,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.parallel)
        self.eos_ids = {i for i in (self.tokenizer.eos_token_id,) if i is not None}
        self.logprob_mode = ""
        self.grammar_ok = False
        self.constraint_fallbacks = 0
        self.requests = 0
        self.probe()

    # -- startup ---------------------------------------------------------------------------
    def probe(self) -> None:
        """Check, once, that the server serves `model` and gives what ranking needs."""
        served = [m.id for m in self._call(lambda: self.client.models.list()).data]
        if not self.model and len(served) == 1:
            self.model = served[0]
            self.name = f"{self.model} @ {self.base_url}"
        if served and self.model not in served:
            raise ModelError(
                f"the server at {self.base_url} serves {served}, not {self.model!r}: set llm.model"
            )
        (forced,) = self.label_token_ids(["Q"])
        choice = self._complete("The", 1, logprobs=1, logit_bias={forced: FORCE})
        lp = choice.logprobs
        if lp is None or not lp.token_logprobs or lp.token_logprobs[0] is None:
            raise ModelError(
                f"the server at {self.base_url} returns no logprobs; ranking needs them "
                "(llama.cpp's server: --logits_all true)"
            )
        if choice.text != "Q":
            raise ModelError(f"the server at {self.base_url} ignores logit_bias; ranking needs it")
        self.logprob_mode = "processed" if lp.token_logprobs[0] > -1e-3 else "raw"
        if self.grammar_field:
            extra = {self.grammar_field: 'root ::= "yes"'}
            text = self._complete("Answer no:", 3, extra=extra).text
            self.grammar_ok = text.strip() == "yes"
        if not self.grammar_ok:
            log.warning(
                "%s ignores grammars: constrained outputs are checked and replaced on a miss",
                self.base_url,
            )

    # -- text ------------------------------------------------------------------------------
    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        return self.tokenizer.apply_chat_template(
            chat_messages(user_text, system), tokenize=False, add_generation_prompt=True
        )

    def label_token_ids(self, labels: list[str]) -> list[int]:
        return single_token_ids(labels, self._encode)

    def vocabulary_of(self, texts: list[str]) -> set[int]:
        return vocabulary_ids(texts, self._encode, self.eos_ids)

    # -- scoring ---------------------------------------------------------------------------
    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        return self.label_logprobs_rows([prompt], labels)[0]

    def label_logprobs_rows(self, prompts: list[str], labels: list[str]) -> list[list[float]]:
        ids = self.label_token_ids(labels)
        texts = [self.tokenizer.decode([i]) for i in ids]
        started = time.perf_counter()
        rows = list(self._pool.map(lambda p: self._label_row(p, ids, texts), prompts))
        self.stats.prefill_s += time.perf_counter() - started
        return rows

    def _label_row(self, prompt: str, ids: list[int], texts: list[str]) -> list[float]:
        k = min(len(ids), self.top_logprobs)
        choice = self._complete(prompt, 1, logprobs=k, logit_bias=dict.fromkeys(ids, FORCE))
        top = (choice.logprobs.top_logprobs or [None])[0] or {}
        found = {t: top[t] for t in texts if t in top}
        missing = [(i, t) for i, t in zip(ids, texts, strict=True) if t not in found]
        if missing and self.logprob_mode == "processed":
            raise ModelError(
                f"the server at {self.base_url} returned {len(found)} of {len(ids)} label "
                "log-probabilities: raise its top-logprobs limit (vLLM: --max-logprobs 26)"
            )
        for (_, text), value in zip(
            missing, self._pool_map_forced(prompt, [i for i, _ in missing]), strict=True
        ):
            found[text] = value
        return log_softmax([found[t] for t in texts])

    def _pool_map_forced(self, prompt: str, ids: list[int]) -> list[float]:
        # Called from a pool thread: run the forced requests inline (no nested pool waits).
        out = []
        for i in ids:
            choice = self._complete(prompt, 1, logprobs=1, logit_bias={i: FORCE})
            out.append(float(choice.logprobs.token_logprobs[0]))
        return out

    # -- generation ------------------------------------------------------------------------
    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed_tokens: list[set[int]] | None = None,
        one_sentence: bool = False,
    ) -> list[str]:
        if allowed_tokens is not None and len(allowed_tokens) != len(prompts):
            raise ValueError("allowed_tokens needs one set of token ids per prompt")
        started = time.perf_counter()
        jobs = [(p, allowed_tokens[i] if allowed_tokens else None) for i, p in enumerate(prompts)]
        texts = list(
            self._pool.map(
                lambda j: self._generate_one(*j, max_new_tokens, stop, one_sentence), jobs
            )
        )
        self.stats.decode_s += time.perf_counter() - started
        return texts

    def generate_ids(
        self, prompts: list[str], max_new_tokens: int, **kwargs: Any
    ) -> list[list[int]]:
        return [self._encode(t) for t in self.generate(prompts, max_new_tokens, **kwargs)]

    def _generate_one(
        self,
        prompt: str,
        allowed: set[int] | None,
        max_new_tokens: int,
        stop: str | None,
        one_sentence: bool,
    ) -> str:
        extra: dict[str, Any] = {}
        pieces: set[str] | None = None
        if allowed is not None:
            pieces = {self.tokenizer.decode([i]) for i in allowed if i not in self.eos_ids}
            if self.grammar_ok:
                extra[self.grammar_field] = allowed_grammar(pieces)
        choice = self._complete(prompt, max_new_tokens, stop=[stop] if stop else None, extra=extra)
        text = choice.text
        if one_sentence:
            m = _SENTENCE.match(text.strip())
            text = m.group(1) if m else text
        text = cut_text(text, stop)
        if pieces is not None and not spelled_by(text, pieces):
            with self.lock:
                self.constraint_fallbacks += 1
            log.warning("constrained output left its vocabulary: %r", text[:80])
            return ""
        return text

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
        """The generation streamed from the server (`stream=True`), each chunk's text as token
        ids of the local tokenizer as soon as it arrives; decoded in order they give the
        server's text. Without a server grammar, a chunk that leaves `allowed` ends the
        stream (counted in `constraint_fallbacks`). A per-step `constraint` cannot run on
        the server: its whole vocabulary is `allowed` (the reply's checks do the rest)."""
        if constraint is not None and allowed is None:
            allowed = constraint.vocabulary()
        extra: dict[str, Any] = {}
        pieces: set[str] | None = None
        if allowed is not None:
            pieces = {self.tokenizer.decode([i]) for i in allowed if i not in self.eos_ids}
            if self.grammar_ok:
                extra[self.grammar_field] = allowed_grammar(pieces)
        body = {**self.extra_body, **extra}
        kwargs: dict[str, Any] = {"temperature": 0.0, "extra_body": body, "stream": True}
        if stop:
            kwargs["stop"] = [stop]
        response = self._call(
            lambda: self.client.completions.create(
                model=self.model, prompt=prompt, max_tokens=max_new_tokens, **kwargs
            )
        )
        with self.lock:
            self.requests += 1
        text = ""
        started = time.perf_counter()
        try:
            for chunk in self._chunks(response):
                piece = chunk.choices[0].text if chunk.choices else ""
                if not piece:
                    continue
                text += piece
                if pieces is not None and not self.grammar_ok and not spelled_by(text, pieces):
                    with self.lock:
                        self.constraint_fallbacks += 1
                    log.warning("streamed output left its vocabulary: %r", text[:80])
                    return
                ids = self._encode(piece)
                with self.lock:
                    self.stats.generated_tokens += len(ids)
                yield from ids
                if finished(text, None, one_sentence):
                    return
        finally:
            response.close()
            self.stats.decode_s += time.perf_counter() - started

    def _chunks(self, response: Any) -> Iterator[Any]:
        """The stream's chunks; a connection lost mid-stream is a ModelError like any other."""
        import httpx
        import openai

        try:
            yield from response
        except (openai.APIError, httpx.HTTPError) as exc:
            raise ModelError(
                f"the LLM server at {self.base_url} broke off a streamed reply "
                f"({type(exc).__name__})"
            ) from None

    # -- transport -------------------------------------------------------------------------
    def cache_prefix(self, text: str) -> int:
        return 0  # the server keeps its own prefix cache

    def cache_head(self, marked_prompt: str, marker: str) -> int:
        return 0

    def _complete(
        self,
        prompt: str,
        max_tokens: int,
        *,
        logprobs: int | None = None,
        logit_bias: dict[int, float] | None = None,
        stop: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        body = {**self.extra_body, **(extra or {})}
        kwargs: dict[str, Any] = {"temperature": 0.0, "extra_body": body}
        if logprobs is not None:
            kwargs["logprobs"] = logprobs
        if logit_bias:
            kwargs["logit_bias"] = {str(k): v for k, v in logit_bias.items()}
        if stop:
            kwargs["stop"] = stop
        response = self._call(
            lambda: self.client.completions.create(
                model=self.model, prompt=prompt, max_tokens=max_tokens, **kwargs
            )
        )
        usage = response.usage
        with self.lock:
            self.requests += 1
            if usage is not None:
                self.stats.prompt_tokens += usage.prompt_tokens or 0
                self.stats.generated_tokens += usage.completion_tokens or 0
        return response.choices[0]

    def _call(self, fn: Any) -> Any:
        import openai

        try:
            return fn()
        except openai.APIConnectionError as exc:  # includes timeouts
            raise ModelError(
                f"the LLM server at {self.base_url} is unreachable ({type(exc).__name__}, "
                f"after {self.max_retries} retries)"
            ) from None
        except openai.APIStatusError as exc:
            detail = str(exc).splitlines()[0][:200]
            raise ModelError(
                f"the LLM server at {self.base_url} answered {exc.status_code}: {detail}"
            ) from None

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)


def spelled_by(text: str, pieces: set[str]) -> bool:
    """Whether `text` is a concatenation of `pieces` (what the grammar allows)."""
    if not text:
        return True
    longest = max((len(p) for p in pieces), default=0)
    reach = [False] * (len(text) + 1)
    reach[0] = True
    for i in range(len(text)):
        if reach[i]:
            for j in range(i + 1, min(len(text), i + longest) + 1):
                if not reach[j] and text[i:j] in pieces:
                    reach[j] = True
    return reach[-1]
