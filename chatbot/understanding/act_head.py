"""The learned layer of the act classifier: a linear head over the message embedding and the rules.

    head = load_act_head(embedder, Path("runs/act_head.json"))  # benchmarks/train_act_head.py
    ActClassifier(lexicon, head=head).classify("seen it, but I love westerns", ctx)

The features of a message are its embedding by the bundled MiniLM (one `embed_query`, ~10 ms
idle) followed by what the rule path sees: the rule's act (one-hot) and confidence, which cue
groups fired, and the turn's context. The weights are a multinomial logistic regression fitted by
`benchmarks/train_act_head.py` on the labelled acts; the JSON file holds only the derived
weights, no utterance text. Not served: in grouped cross-validation it does not beat the rules
(docs/dialogue_acts.md), so no weights ship. This module knows nothing of the catalog, the
store or the LLM.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.errors import ConfigError
from chatbot.understanding.acts import (
    ACTS,
    CUE_GROUPS,
    OPINION,
    Lexicon,
    TurnContext,
    normalize,
    rule_act,
)

EMBEDDER = "builtin:all-minilm-l6-v2"  # the weights are fitted on this model's vectors


def rule_features(text: str, ctx: TurnContext, lex: Lexicon) -> list[float]:
    """What the rule path sees, as numbers: its act, its confidence, the cues, the context."""
    t = normalize(text)
    act = rule_act(text, ctx, lex)
    out = [1.0 if act.name == a else 0.0 for a in ACTS]
    out.append(act.confidence)
    out += [1.0 if lex.cues[g].search(t) else 0.0 for g in CUE_GROUPS]
    out += [
        float(ctx.has_items),
        float(ctx.new_titles > 0),
        float(ctx.titles > 0),
        float(bool(lex.genres_in(t))),
        float(bool(OPINION.search(t))),
        float("?" in t),
        math.log1p(len(t.split())) / 4,
    ]
    return out


def allowed_acts(ctx: TurnContext) -> frozenset[str]:
    """The acts a context allows: no refinement or feedback before any item is in play."""
    if ctx.has_items:
        return frozenset(ACTS) - {"request"}
    return frozenset(ACTS) - {"refine", "feedback", "topic_shift"}


@dataclass(frozen=True)
class ActHead:
    """Weights of the linear head: one row of `coef` per act in `acts`."""

    acts: tuple[str, ...]
    coef: tuple[tuple[float, ...], ...]
    intercept: tuple[float, ...]
    embedder: Any = None  # an Embeddings with embed_query; None only for features given directly

    def probabilities(self, x: list[float]) -> dict[str, float]:
        logits = [
            b + sum(w * v for w, v in zip(row, x, strict=True))
            for row, b in zip(self.coef, self.intercept, strict=True)
        ]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return {a: e / total for a, e in zip(self.acts, exps, strict=True)}

    def features(self, text: str, ctx: TurnContext, lex: Lexicon) -> list[float]:
        if self.embedder is None:
            raise ConfigError(
                "the act head needs an embedder: load it with load_act_head(embedder)"
            )
        vec = [float(v) for v in self.embedder.embed_query(text)]
        return vec + rule_features(text, ctx, lex)

    def best(self, text: str, ctx: TurnContext, lex: Lexicon) -> tuple[str, float]:
        """The most probable act the context allows, and its probability."""
        probs = self.probabilities(self.features(text, ctx, lex))
        allowed = allowed_acts(ctx)
        name = max((a for a in probs if a in allowed), key=probs.__getitem__)
        return name, probs[name]


def load_act_head(embedder: Any, path: Path) -> ActHead:
    """The head's weights from a JSON file, checked once; `embedder` must be `EMBEDDER`."""
    if not path.is_file():
        raise ConfigError(f"act head {path} not found: run benchmarks/train_act_head.py")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        acts = tuple(table["acts"])
        coef = tuple(tuple(float(v) for v in row) for row in table["coef"])
        intercept = tuple(float(v) for v in table["intercept"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"act head {path} is malformed ({e}): re-run the training script") from e
    if set(acts) != set(ACTS) or len(coef) != len(acts) or len(intercept) != len(acts):
        raise ConfigError(f"act head {path} does not cover the acts {ACTS}: re-run training")
    return ActHead(acts, coef, intercept, embedder)
