"""`llm.generate_backend`: ranking on one engine, reply/reason generation on another.

Each task runs where it was measured fastest (docs/serving.md): e.g. transformers bf16 prefills
a rerank prompt several times faster than llama.cpp here, llama.cpp decodes several times
faster. Prompts are rendered by the ranking engine; both engines share the model's chat
template, so a prompt reads the same to either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class TaskSplitLLM:
    ranker: Any  # label_logprobs*, chat_prompt, cache_head/prefix
    writer: Any  # generate*, stream_ids, vocabulary_of

    @property
    def name(self) -> str:
        return f"{self.ranker.name} (ranking) + {self.writer.name} (generation)"

    @property
    def lock(self) -> Any:
        return self.ranker.lock

    @property
    def stats(self) -> Any:
        return self.ranker.stats

    @property
    def device(self) -> str:
        return self.ranker.device

    @property
    def dtype(self) -> Any:
        return self.ranker.dtype

    @property
    def tokenizer(self) -> Any:
        return self.writer.tokenizer

    def chat_prompt(self, user_text: str, system: str | None = None) -> str:
        return self.ranker.chat_prompt(user_text, system)

    def label_token_ids(self, labels: list[str]) -> list[int]:
        return self.ranker.label_token_ids(labels)

    def label_logprobs(self, prompt: str, labels: list[str]) -> list[float]:
        return self.ranker.label_logprobs(prompt, labels)

    def label_logprobs_rows(self, prompts: list[str], labels: list[str]) -> list[list[float]]:
        return self.ranker.label_logprobs_rows(prompts, labels)

    def cache_prefix(self, text: str) -> int:
        return self.ranker.cache_prefix(text)

    def cache_head(self, marked_prompt: str, marker: str) -> int:
        self.writer.cache_head(marked_prompt, marker)
        return self.ranker.cache_head(marked_prompt, marker)

    def vocabulary_of(self, texts: list[str]) -> set[int]:
        return self.writer.vocabulary_of(texts)

    def generate(self, prompts: list[str], max_new_tokens: int, **kwargs: Any) -> list[str]:
        return self.writer.generate(prompts, max_new_tokens, **kwargs)

    def generate_ids(
        self, prompts: list[str], max_new_tokens: int, **kwargs: Any
    ) -> list[list[int]]:
        return self.writer.generate_ids(prompts, max_new_tokens, **kwargs)

    def stream_ids(self, prompt: str, max_new_tokens: int, **kwargs: Any) -> Iterator[int]:
        return self.writer.stream_ids(prompt, max_new_tokens, **kwargs)

    def stream_text(self, prompt: str, max_new_tokens: int, **kwargs: Any) -> Iterator[str]:
        return self.writer.stream_text(prompt, max_new_tokens, **kwargs)

    def decode(self, ids: list[int]) -> str:
        return self.writer.decode(ids)
