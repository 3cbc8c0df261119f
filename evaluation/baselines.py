"""Baselines the product is compared with: popularity, and a naive LLM that names titles.

- popularity: the same ranking for every turn, by how often an item was recommended in the
  training turns (`--train`), else by the catalog's popularity field.
- naive-llm: the base LLM reads the conversation (prompts/naive_recommend.txt) and writes up to
  128 new tokens of titles, one per line; each line is mapped onto the catalog (exact, then
  normalized, then rapidfuzz >= 90); lines that map to nothing are out-of-catalog.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from dialogues.schema import RecTurn
from evaluation.system_adapters import SystemOutput
from retrieval.titles import TitleIndex

log = logging.getLogger(__name__)

NAIVE_MAX_NEW_TOKENS = 128
NAIVE_BATCH = 8  # prompts generated together; latency is reported per turn (batch time / n)
NAIVE_MAX_TITLES = 20
_BULLET = re.compile(r"^\s*(?:[-*•·]+|\(?\d{1,2}[.):]|[a-zA-Z][.)])\s+")
_EXPLANATION = re.compile(r"\s+[-–—]\s+|\s+because\s+")
_MAX_TITLE_CHARS = 100  # longer lines are sentences, not titles
_MAX_PROSE_CHARS = 80  # an unnumbered line this long is the model chatting, not a title


# -- popularity ---------------------------------------------------------------------------


def train_popularity(turns: Iterable[RecTurn], titles: TitleIndex) -> dict[str, float]:
    """How often each catalog item is a gold recommendation in the training turns."""
    counts: Counter[str] = Counter()
    for t in turns:
        ids = t.gold_ids or (None,) * len(t.gold)
        for item_id, title in zip(ids, t.gold, strict=True):
            resolved = titles.lookup_id_or_title(item_id, title)
            if resolved is not None:
                counts[resolved] += 1
    return {item_id: float(n) for item_id, n in counts.items()}


class PopularitySystem:
    name = "popularity"
    excludes_mentioned = False

    def __init__(
        self, item_ids: Iterable[str], scores: Mapping[str, float], tiebreak: Mapping[str, float]
    ) -> None:
        order = sorted(item_ids, key=lambda i: (-scores.get(i, 0.0), -tiebreak.get(i, 0.0), i))
        self.order = order

    def rank_many(
        self, contexts: Sequence[Sequence[str]], *, exclude_mentioned: bool
    ) -> list[SystemOutput]:
        outs = []
        for _ in contexts:
            t0 = time.perf_counter()
            ranked = self.order[:1000]  # room for the novel filter to drop mentioned items
            outs.append(SystemOutput(ranked=ranked, latency_ms=(time.perf_counter() - t0) * 1000))
        return outs


# -- naive LLM ----------------------------------------------------------------------------


def parse_title_lines(text: str, max_titles: int = NAIVE_MAX_TITLES) -> list[str]:
    """Titles from an LLM's list: bullets/numbers, quotes, markup and explanations removed."""
    titles: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        bare = _BULLET.sub("", line.strip()).strip()
        if bare == line.strip() and len(bare) > _MAX_PROSE_CHARS:
            continue
        line = bare
        line = _EXPLANATION.split(line, maxsplit=1)[0]
        line = line.strip().strip("*_`\"'“”‘’").strip().rstrip(".,;!").strip()
        if not line or line.endswith(":") or len(line) > _MAX_TITLE_CHARS:
            continue
        key = line.casefold()
        if key not in seen:
            seen.add(key)
            titles.append(line)
        if len(titles) >= max_titles:
            break
    return titles


def conversation_text(context: Sequence[str]) -> str:
    """The context as 'User: ...' / 'Assistant: ...' lines; the last utterance is the user's."""
    from dialogues.transcript import format_conversation

    n = len(context)
    pairs = [("user" if (n - 1 - i) % 2 == 0 else "assistant", u) for i, u in enumerate(context)]
    return format_conversation(pairs)


def naive_prompt(llm, context: Sequence[str], directory=None) -> str:
    from prompts.loader import render

    user_text = render("naive_recommend", None, directory, conversation=conversation_text(context))
    return llm.chat_prompt(user_text)


class NaiveLLMSystem:
    name = "naive-llm"
    excludes_mentioned = False

    def __init__(self, llm, titles: TitleIndex, prompt_dir=None) -> None:
        self.llm = llm
        self.titles = titles
        self.prompt_dir = prompt_dir

    def rank_many(
        self, contexts: Sequence[Sequence[str]], *, exclude_mentioned: bool
    ) -> list[SystemOutput]:
        outs: list[SystemOutput] = []
        for start in range(0, len(contexts), NAIVE_BATCH):
            batch = contexts[start : start + NAIVE_BATCH]
            t0 = time.perf_counter()
            prompts = [naive_prompt(self.llm, c, self.prompt_dir) for c in batch]
            texts = self.llm.generate(prompts, NAIVE_MAX_NEW_TOKENS, stop=None)
            per_turn = (time.perf_counter() - t0) * 1000 / len(batch)
            outs.extend(self.parse(text, per_turn) for text in texts)
        return outs

    def parse(self, text: str, latency_ms: float) -> SystemOutput:
        ranked: list[str] = []
        names = parse_title_lines(text)
        missing = 0
        for name in names:
            item_id = self.titles.lookup(name, fuzzy=True)
            if item_id is None:
                missing += 1
            elif item_id not in ranked:
                ranked.append(item_id)
        return SystemOutput(
            ranked=ranked,
            latency_ms=latency_ms,
            n_recommended=len(names),
            out_of_catalog=missing,
            raw_text=text,
        )
