"""The naive RAG chain the product is benchmarked against, built with LangChain.

Retrieve 10 documents for the conversation, stuff them into one prompt
(prompts/naive_rag.txt), and let the same LLM write a free-text answer of up to 128 tokens:

    rag = NaiveRAG(llm, store)
    answer = rag.answer("User: something like Heat but less violent")
    named, missing = rag.out_of_catalog(answer.text)

Nothing constrains the answer to the catalog, so titles it names can be out of catalog; they
are found by the same title parser and catalog lookup the offline evaluation uses.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda

from chatbot.errors import ConfigError

NAIVE_K = 10
NAIVE_MAX_NEW_TOKENS = 128
PROMPT_FILE = "naive_rag.txt"


class StoreRetriever(BaseRetriever):
    """LangChain retriever over an `ItemStore`: the k nearest item documents."""

    store: Any
    k: int = NAIVE_K

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(
                page_content=item.text, metadata={"item_id": item.item_id, "title": item.title}
            )
            for item, _score in self.store.search(query, self.k)
        ]


def load_prompt(directory: Path | None = None) -> PromptTemplate:
    from prompts.loader import bundled_prompt_dir

    path = (directory or bundled_prompt_dir()) / PROMPT_FILE
    if not path.is_file():
        raise ConfigError(f"prompt file {path} not found: restore it or fix prompts.dir")
    template = PromptTemplate.from_template(path.read_text(encoding="utf-8").strip())
    if set(template.input_variables) != {"context", "conversation"}:
        raise ConfigError(f"prompt {path} must use exactly {{context}} and {{conversation}}")
    return template


_LIST_ITEM = re.compile(r"^\s*(?:[-*•]+|\(?\d{1,2}[.):])\s+(.+)$")
_TITLE_FIELD = re.compile(r"^\s*(?:\*\*)?(?:movie\s+)?title(?:\*\*)?\s*:\s*(.+)$", re.I)
_QUOTED = re.compile(r"[\"“*]{1,2}([^\"”*\n]{2,80})[\"”*]{1,2}")
_TITLE_END = re.compile(r"\s+(?:[-–—(:]|by\s|because\s)|[.,;!?]\s*$")
_MAX_TITLE_WORDS = 10


def named_titles(text: str) -> list[str]:
    """Titles a free-text answer recommends: list items ("1. Heat (1995) - ..."), "Title: X"
    fields and quoted or bold names. Other lines ("Genre: crime", prose) name nothing."""
    found: list[str] = []
    for line in text.splitlines():
        m = _LIST_ITEM.match(line) or _TITLE_FIELD.match(line)
        spans = [m.group(1)] if m else []
        spans += _QUOTED.findall(line) if not m else []
        for span in spans:
            title = _TITLE_END.split(span.strip().strip('*"“” '), maxsplit=1)[0].strip()
            title = title.strip('*"“” ')
            if title and len(title.split()) <= _MAX_TITLE_WORDS and title not in found:
                found.append(title)
    return found


def stuff(docs: list[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in docs)


@dataclass
class NaiveAnswer:
    text: str
    retrieval_ms: float
    generate_ms: float
    total_ms: float


class NaiveRAG:
    """retriever | stuff | prompt | LLM | text, timed per stage."""

    def __init__(
        self,
        llm: Any,
        store: Any,
        *,
        k: int = NAIVE_K,
        max_new_tokens: int = NAIVE_MAX_NEW_TOKENS,
        prompt_dir: Path | None = None,
    ) -> None:
        self.llm = llm
        self.max_new_tokens = max_new_tokens
        self._ms: dict[str, float] = {}
        self._titles: Any = None
        self.store = store
        retriever = StoreRetriever(store=store, k=k)
        self.chain: Runnable = (
            {
                "context": itemgetter("conversation") | self._timed("retrieval", retriever) | stuff,
                "conversation": itemgetter("conversation"),
            }
            | load_prompt(prompt_dir)
            | self._timed("generate", RunnableLambda(self._generate))
            | StrOutputParser()
        )

    def answer(self, conversation: str) -> NaiveAnswer:
        self._ms = {}
        started = time.perf_counter()
        text = self.chain.invoke({"conversation": conversation})
        total = (time.perf_counter() - started) * 1000
        return NaiveAnswer(text, self._ms["retrieval"], self._ms["generate"], total)

    def out_of_catalog(self, text: str) -> tuple[int, int]:
        """(titles the answer names, of those not in the catalog)."""
        from retrieval.titles import TitleIndex

        if self._titles is None:
            self._titles = TitleIndex(self.store.all_items())
        names = named_titles(text)
        missing = sum(self._titles.lookup(n, fuzzy=True) is None for n in names)
        return len(names), missing

    def _generate(self, prompt: Any) -> str:
        chat = self.llm.chat_prompt(prompt.to_string())
        return self.llm.generate([chat], self.max_new_tokens, stop=None)[0]

    def _timed(self, name: str, step: Runnable) -> Runnable:
        def run(value: Any) -> Any:
            started = time.perf_counter()
            out = step.invoke(value)
            self._ms[name] = (time.perf_counter() - started) * 1000
            return out

        return RunnableLambda(run)
