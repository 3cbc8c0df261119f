"""Load the causal LLM once per process and run the two operations the product needs.

- `label_logprobs`: one forward pass, log-probabilities of single-token labels at the answer
  position (the reranker's scores).
- `generate`: batched greedy generation (reasons, the naive baseline), a plain decoding loop
  that stops each row at `stop` / end-of-sequence instead of running the full token budget.

Both reuse the keys/values of prompt prefixes already run (`inference.prefix_cache`): the static
chat template + system prompt + instruction header is computed once, and the part a batch of
reason prompts shares is run once for the whole batch. Compute is bf16 where the hardware has
bf16 units (`llm.dtype = "auto"`), fp32 elsewhere.

Weights are located and loaded by `inference.model_files`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.errors import ModelError
from inference.linear_packing import pack_linears, split_head
from inference.model_files import load_base_model, validate_adapter_dir
from inference.prefix_cache import Prefix, PrefixCache, common_prefix_length, growing_cache
from inference.settings import LLMSettings

log = logging.getLogger(__name__)

SENTENCE_END = (".", "!", "?")
REPETITION_PENALTY = 1.1
NO_REPEAT_NGRAM = 3


@dataclass
class LLMStats:
    """Counters since load (read deltas around a call): what ran, what the cache saved."""

    prompt_tokens: int = 0  # prompt tokens run through the model
    cached_tokens: int = 0  # prompt tokens whose keys/values came from the prefix cache
    generated_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0


@dataclass
class LLM:
    """A loaded model + tokenizer, shared by all requests of a process.

    `prefix_cache=None` runs every prompt from its first token (the reference path).
    """

    model: Any
    tokenizer: Any
    name: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    prefix_cache: PrefixCache | None = field(default_factory=PrefixCache, repr=False)
    stats: LLMStats = field(default_factory=LLMStats)

    def __post_init__(self) -> None:
        # Sliding-window layers drop old keys, so a stored prefix would not be reusable.
        if self.prefix_cache is not None and not _full_attention_only(self.model.config):
            self.prefix_cache = None
        self._decoder, self._head = split_head(self.model)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user_text})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def label_token_ids(self, labels: list[str]) -> list[int]:
        ids = []
        for label in labels:
            toks = self.tokenizer.encode(label, add_special_tokens=False)
            if len(toks) != 1:
                raise ModelError(f"label {label!r} is not a single token for this tokenizer")
            ids.append(toks[0])
        return ids

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        """Log-probabilities (normalised over `labels`) of each label as the next token.

        Only the labels' rows of the output layer are computed, in fp32: bf16 logits are ~1/16
        apart near the top, which would tie close candidates.
        """
        return self.label_logprobs_rows([prompt], labels)[0]

    def label_logprobs_rows(self, prompts: list[str], labels: list[str]) -> list[list[float]]:
        """`label_logprobs` of several prompts in one batch; the part they share runs once."""
        import torch

        label_ids = self.label_token_ids(labels)
        rows = [self._encode(p) for p in prompts]
        with self.lock, torch.inference_mode():
            out, _, _ = self._prefill(rows)
            chosen = self._scores(out, label_ids, fp32=True)
        return torch.log_softmax(chosen, dim=-1).tolist()

    def cache_prefix(self, text: str) -> int:
        """Run `text` (a static prompt head) once and keep its keys/values; returns its tokens."""
        return self._cache_ids(self._encode(text))

    def cache_head(self, marked_prompt: str, marker: str) -> int:
        """Cache the static head of a prompt template: `marked_prompt` is the template rendered
        with `marker` in its first variable. The head's last token is left out (it may merge
        with the text that follows), so real prompts always start with the cached ids."""
        head = marked_prompt.split(marker, 1)[0]
        return self._cache_ids(self._encode(head)[:-1])

    def _cache_ids(self, ids: list[int]) -> int:
        import torch

        if self.prefix_cache is None or not ids:
            return 0
        with self.lock, torch.inference_mode():
            hit = self.prefix_cache.longest(ids)
            if hit is None or len(hit.ids) < len(ids):
                cache = self._new_cache(hit, 1)
                self._forward(ids[len(hit.ids) if hit else 0 :], cache)
                self.prefix_cache.put(Prefix(tuple(ids), _kv_of(cache)))
        return len(ids)

    def vocabulary_of(self, texts: list[str]) -> set[int]:
        """Token ids that spell the words of `texts` (with and without a leading space)."""
        words = {w for t in texts for w in re.findall(r"\w+|[^\w\s]", t)}
        forms = {f for w in words for f in (w, w.lower(), w.capitalize())}
        variants = sorted(forms | {" " + f for f in forms})
        ids: set[int] = set()
        if variants:  # one batched call: the fast tokenizer runs them in Rust
            for row in self.tokenizer(variants, add_special_tokens=False)["input_ids"]:
                ids.update(row)
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed_tokens: list[set[int]] | None = None,
        one_sentence: bool = False,
    ) -> list[str]:
        """Greedy, batched generation; returns the new text of each prompt (cut at `stop`).

        `allowed_tokens[i]` restricts prompt i to those token ids (lexically constrained
        decoding): the output can only reuse words it was given. `one_sentence` ends a row at
        its first sentence end (., ! or ?), kept in the text.
        """
        ids = self.generate_ids(
            prompts,
            max_new_tokens,
            stop=stop,
            allowed_tokens=allowed_tokens,
            one_sentence=one_sentence,
        )
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        if stop:
            texts = [t.strip().split(stop)[0].strip() for t in texts]
        return [t.strip() for t in texts]

    def generate_ids(
        self,
        prompts: list[str],
        max_new_tokens: int,
        *,
        stop: str | None = "\n",
        allowed_tokens: list[set[int]] | None = None,
        one_sentence: bool = False,
    ) -> list[list[int]]:
        """The new token ids of each prompt (end-of-sequence excluded).

        Greedy with repetition penalty 1.1 and no repeated 3-gram over prompt + output, as
        `transformers`' `generate` does them. A row stops at end-of-sequence, as soon as its
        text contains `stop`, or (`one_sentence`) ends a sentence; the batch stops when every
        row has. With `allowed_tokens`, only
        the output-layer rows of allowed ids are computed.
        """
        import torch

        if not prompts:
            return []
        if allowed_tokens is not None and len(allowed_tokens) != len(prompts):
            raise ValueError("allowed_tokens needs one set of token ids per prompt")
        rows = [self._encode(p) for p in prompts]
        vocab = self.model.config.vocab_size
        eos = self._eos_ids()
        # The token space scored at each step: everything, or the union of allowed ids.
        cols: list[int] | None = None
        if allowed_tokens:
            cols = sorted({i for ids in allowed_tokens for i in ids if 0 <= i < vocab})
        col_of = {t: c for c, t in enumerate(cols)} if cols is not None else None
        width = len(cols) if cols is not None else vocab

        def col(token: int) -> int | None:
            return token if col_of is None else col_of.get(token)

        with self.lock, torch.inference_mode():
            out0, cache, mask = self._prefill(rows, max_new_tokens)
            started = time.perf_counter()
            head = self._head_rows(cols)
            dev = out0.device
            seen = torch.zeros(len(rows), width, dtype=torch.bool, device=dev)
            for b, row in enumerate(rows):
                seen[b, [c for c in map(col, row) if c is not None]] = True
            allowed = None
            if allowed_tokens:
                allowed = torch.full((len(rows), width), float("-inf"), device=dev)
                for b, ids in enumerate(allowed_tokens):
                    allowed[b, [c for c in map(col, ids) if c is not None]] = 0.0
            history = [list(r) for r in rows]
            ngrams = [_ngram_table(r) for r in rows]
            out: list[list[int]] = [[] for _ in rows]
            finished = [False] * len(rows)
            positions = mask.sum(-1, keepdim=True) if mask is not None else None
            hidden = out0
            for step in range(max_new_tokens):
                scores = self._project(hidden, head, cols)
                penalized = torch.where(
                    scores < 0, scores * REPETITION_PENALTY, scores / REPETITION_PENALTY
                )
                scores = torch.where(seen, penalized, scores)
                if allowed is not None:
                    scores = scores + allowed
                for b, hist in enumerate(history):
                    banned = ngrams[b].get(tuple(hist[-(NO_REPEAT_NGRAM - 1) :]))
                    if banned and not finished[b]:
                        banned_cols = [c for c in map(col, banned) if c is not None]
                        scores[b, banned_cols] = float("-inf")
                picked = scores.argmax(-1).tolist()
                feed = []
                for b, c in enumerate(picked):
                    token = c if cols is None else cols[c]
                    if finished[b] or token in eos:
                        finished[b] = True
                        feed.append(self.tokenizer.pad_token_id or 0)
                        continue
                    out[b].append(token)
                    history[b].append(token)
                    seen[b, c] = True
                    _ngram_add(ngrams[b], history[b])
                    feed.append(token)
                    text = self.tokenizer.decode(out[b]).strip()
                    if (stop and stop in text) or (one_sentence and text.endswith(SENTENCE_END)):
                        finished[b] = True
                if all(finished) or step == max_new_tokens - 1:
                    break
                step_ids = torch.tensor(feed, device=dev).unsqueeze(1)
                if mask is None:
                    hidden = self._forward(step_ids, cache)
                else:
                    mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
                    hidden = self._forward(step_ids, cache, mask, positions)
                    positions = positions + 1
            self.stats.generated_tokens += sum(len(o) for o in out)
            self.stats.decode_s += time.perf_counter() - started
        return out

    # -- internals -----------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen = getattr(self.model, "generation_config", None)
        extra = getattr(gen, "eos_token_id", None)
        ids.update(extra if isinstance(extra, list) else [extra])
        return {i for i in ids if i is not None}

    def _new_cache(self, prefix: Prefix | None, batch: int, room: int = 0) -> Any:
        """A fresh cache for one call: a copy of `prefix` per row, space for `room` tokens."""
        return growing_cache(self.model.config, prefix, batch, room)

    def _forward(self, ids: Any, cache: Any, mask: Any = None, positions: Any = None) -> Any:
        """Run `ids` after what `cache` holds. Returns the last position's final hidden state
        [batch, hidden] when the output layer is split off (`_project` scores it), else its
        logits [batch, vocab]."""
        import torch

        if not isinstance(ids, torch.Tensor):
            ids = torch.tensor([ids], device=self.device)
        kwargs = {
            "input_ids": ids.to(self.device),
            "attention_mask": mask,
            "position_ids": positions,
            "past_key_values": cache,
            "use_cache": True,
        }
        if self._decoder is not None:
            return self._decoder(**kwargs).last_hidden_state[:, -1]
        return self.model(**kwargs, logits_to_keep=1).logits[:, -1]

    def _head_rows(self, cols: list[int] | None, fp32: bool = False) -> Any:
        """The output layer's rows for `cols` (all rows for None), or None without a split head."""
        if self._head is None:
            return None
        weight = self._head.weight if cols is None else self._head.weight[cols]
        return weight.float() if fp32 else weight

    def _project(self, out: Any, head: Any, cols: list[int] | None) -> Any:
        """Scores [batch, len(cols)] in fp32 from what `_forward` returned."""
        if head is None:
            logits = out if cols is None else out[:, cols]
            return logits.float()
        return (out.to(head.dtype) @ head.T).float()

    def _scores(self, out: Any, cols: list[int], *, fp32: bool = False) -> Any:
        return self._project(out, self._head_rows(cols, fp32=fp32), cols)

    def _prefill(self, rows: list[list[int]], new_tokens: int = 0) -> tuple[Any, Any, Any]:
        """Run the prompts; returns (`_forward` output for each row's last token, their cache,
        attention mask or None).

        The part every row shares is run once (or taken from the prefix cache) and copied to
        each row; rows of unequal length are padded between that part and their own tokens,
        with positions counted over real tokens only, so each row sees exactly its prompt.
        """
        import torch

        started = time.perf_counter()
        dev = self.device
        shortest = min(len(r) for r in rows)
        if shortest == 0:
            raise ModelError("cannot run an empty prompt")
        shared = rows[0][: shortest - 1]  # each row keeps >= 1 own token for its logits
        for r in rows[1:]:
            shared = shared[: common_prefix_length(shared, r)]
        done = 0
        hit: Prefix | None = None
        pc = self.prefix_cache
        if pc is not None:
            hit = pc.longest(shared)
            done = len(hit.ids) if hit else 0
        cached = done * len(rows)
        cache = self._new_cache(hit, 1, room=max(map(len, rows)) - done + new_tokens)
        self.stats.cached_tokens += cached
        self.stats.prompt_tokens += sum(len(r) for r in rows) - cached
        if len(rows) == 1:
            out = self._forward(rows[0][done:], cache)
            self.stats.prefill_s += time.perf_counter() - started
            return out, cache, None
        if len(shared) > done:
            self._forward(shared[done:], cache)
            done = len(shared)
        cache.batch_repeat_interleave(len(rows))
        tails = [r[done:] for r in rows]
        width = max(len(t) for t in tails)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([[pad] * (width - len(t)) + t for t in tails], device=dev)
        own = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in tails], device=dev)
        mask = torch.cat([own.new_ones(len(rows), done), own], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, done:]
        out = self._forward(ids, cache, mask, positions)
        self.stats.prefill_s += time.perf_counter() - started
        return out, cache, mask


def _kv_of(cache: Any) -> tuple[tuple[Any, Any], ...]:
    """A copy of what `cache` holds (its buffers have spare room and keep growing)."""
    return tuple((layer.keys.clone(), layer.values.clone()) for layer in cache.layers)


def _full_attention_only(config: Any) -> bool:
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(text, "layer_types", None)
    if types:
        return all(t == "full_attention" for t in types)
    return getattr(text, "sliding_window", None) is None


def _ngram_table(ids: list[int]) -> dict[tuple[int, ...], set[int]]:
    table: dict[tuple[int, ...], set[int]] = {}
    n = NO_REPEAT_NGRAM
    for i in range(len(ids) - n + 1):
        table.setdefault(tuple(ids[i : i + n - 1]), set()).add(ids[i + n - 1])
    return table


def _ngram_add(table: dict[tuple[int, ...], set[int]], ids: list[int]) -> None:
    n = NO_REPEAT_NGRAM
    if len(ids) >= n:
        table.setdefault(tuple(ids[-n:-1]), set()).add(ids[-1])


def load_llm(settings: LLMSettings, cache_dir: Path) -> LLM:
    """Load the configured base model (+ LoRA adapter) for inference."""
    adapter = validate_adapter_dir(settings.adapter) if settings.adapter else None
    model, tokenizer = load_base_model(settings, cache_dir)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        if not settings.load_in_4bit:
            model = model.merge_and_unload()  # no adapter overhead per token at serving time
    model.eval()
    if not settings.load_in_4bit:
        packed = pack_linears(model)
        log.info("packed %d linear layers for oneDNN", packed)
    if model.generation_config is not None:
        # Greedy decoding: drop sampling knobs shipped with the model to avoid warnings.
        for key in ("temperature", "top_p", "top_k"):
            setattr(model.generation_config, key, None)
    return LLM(model=model, tokenizer=tokenizer, name=settings.model)
