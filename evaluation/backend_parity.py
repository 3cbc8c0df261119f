"""Do two LLM backends rank the same turns the same way? Fixed turns, each backend, agreement.

A turn is a conversation and 20 demo-catalog candidates (its genre's most popular titles
interleaved with other genres', so the reranker has something to decide). Each backend ranks
every turn with the served rerankers (`chatbot.ranking.rerank.rerank` over the lettered list, and
`rerank_pointwise` over one yes/no prompt per candidate), with the served prompts. Agreement
with a reference backend: top-1 match rate and Kendall's tau of the 20-candidate order.

This module knows nothing about any engine: backends are passed in as objects with the
methods of `inference.llm.LLM`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatbot.ranking.rerank import rerank, rerank_pointwise, rerank_user_text, score_user_text
from prompts.loader import render
from retrieval.candidates import RRF_K
from retrieval.catalog import demo_catalog_path, load_catalog
from retrieval.types import Item

N_CANDIDATES = 20

# (conversation, genre of half the candidates): fixed, varied requests.
TURNS: tuple[tuple[str, str], ...] = (
    ("User: I want a tense crime movie, something like Heat.", "crime"),
    ("User: something funny for a family night with the kids", "family"),
    ("User: a scary film for tonight, not too gory", "horror"),
    ("User: I loved Interstellar. More big sci-fi please.", "sci-fi"),
    ("User: an animated movie\nAssistant: Here are 5 picks.\nUser: older ones, from the 90s", "animation"),
    ("User: a romantic comedy to watch with my partner", "romance"),
    ("User: a twisty mystery where you guess the killer", "mystery"),
    ("User: an epic fantasy adventure with dragons or magic", "fantasy"),
)  # fmt: skip


@dataclass(frozen=True)
class Turn:
    conversation: str
    items: tuple[Item, ...]


@dataclass
class Agreement:
    turns: int
    top1: float  # share of turns whose first pick is the reference's
    kendall_tau: float  # mean over turns
    min_tau: float


def fixed_turns(n_candidates: int = N_CANDIDATES) -> list[Turn]:
    items = load_catalog(demo_catalog_path()).items
    by_pop = sorted(items, key=lambda it: (-float(it.metadata.get("popularity", 0)), it.item_id))
    turns = []
    for conversation, genre in TURNS:
        inside = [it for it in by_pop if genre in it.genres][: n_candidates // 2]
        outside = [it for it in by_pop if genre not in it.genres][: n_candidates - len(inside)]
        mixed = [x for pair in zip(inside, outside, strict=False) for x in pair]
        rest = inside[len(mixed) // 2 :] + outside[len(mixed) // 2 :]
        turns.append(Turn(conversation, tuple((mixed + rest)[:n_candidates])))
    return turns


def rank_turns(llm, turns: Sequence[Turn], mode: str = "logits") -> list[list[int]]:
    """The served rerankers' order of each turn's candidates (`mode`: logits or pointwise)."""
    system = render("system")
    orders = []
    for turn in turns:
        if mode == "pointwise":
            prompts = [
                llm.chat_prompt(
                    score_user_text(turn.conversation, it, {"dense": 1.0 / (RRF_K + r + 1)}),
                    system=system,
                )
                for r, it in enumerate(turn.items)
            ]
            orders.append(rerank_pointwise(llm, prompts).order)
        else:
            prompt = llm.chat_prompt(rerank_user_text(turn.conversation, turn.items), system=system)
            orders.append(rerank(llm, prompt, len(turn.items)).order)
    return orders


def kendall_tau(a: Sequence[int], b: Sequence[int]) -> float:
    """Kendall's tau-a between two orders of the same items."""
    pos = {x: i for i, x in enumerate(b)}
    n = len(a)
    pairs = n * (n - 1) // 2
    if pairs == 0:
        return 1.0
    concordant = sum(1 if pos[a[i]] < pos[a[j]] else -1 for i in range(n) for j in range(i + 1, n))
    return concordant / pairs


def agreement(reference: Sequence[Sequence[int]], other: Sequence[Sequence[int]]) -> Agreement:
    taus = [kendall_tau(r, o) for r, o in zip(reference, other, strict=True)]
    top1 = sum(r[0] == o[0] for r, o in zip(reference, other, strict=True)) / len(taus)
    return Agreement(len(taus), top1, sum(taus) / len(taus), min(taus))
