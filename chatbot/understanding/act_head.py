"""The learned layer of the act classifier: a linear head over the message embedding and cues.

    head = load_act_head(embedder)                 # the bundled prompts/dialogue_act_head.toml
    ActClassifier(lexicon, head=head).classify("seen it, but I love westerns", ctx)
    ActClassifier(lexicon, embedder=embedder)      # the same, the head loaded at first use

The features of a message are its embedding by the bundled MiniLM (one `embed_query`, ~10 ms
idle) followed, for a `features = "cues"` head, by which cue groups of
`prompts/dialogue_acts.toml` fired and the turn's context; the served head (`features =
"rules"`) also sees the rule path's act (one-hot) and confidence. The weights are a multinomial
logistic regression fitted by `benchmarks/train_act_head.py` on the labelled acts; the weights
file holds only the derived coefficients, no utterance text. Which inputs are served is chosen
by grouped cross-validation, judged on the label rounds the rules were not written on, since a
head fitted where the rules were revised learns to trust them more than fresh text warrants
(docs/dialogue_acts.md). This module knows nothing of the catalog, the store or the LLM.
"""

from __future__ import annotations

import json
import math
import tomllib
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


FEATURES = ("cues", "rules")  # embedding + cue_features, embedding + rule_features


def bundled_head_path() -> Path:
    import prompts

    return Path(prompts.__file__).parent / "dialogue_act_head.toml"


def rule_features(text: str, ctx: TurnContext, lex: Lexicon) -> list[float]:
    """What the rule path sees, as numbers: its act, its confidence, the cues, the context."""
    act = rule_act(text, ctx, lex)
    out = [1.0 if act.name == a else 0.0 for a in ACTS]
    out.append(act.confidence)
    return out + cue_features(text, ctx, lex)


def cue_features(text: str, ctx: TurnContext, lex: Lexicon) -> list[float]:
    """Which cue groups fired and the turn's context, as numbers (not the rule's decision)."""
    t = normalize(text)
    out = [1.0 if lex.cues[g].search(t) else 0.0 for g in CUE_GROUPS]
    out += [
        float(ctx.has_items),
        float(ctx.new_titles > 0),
        float(ctx.titles > 0),
        float(bool(lex.genres_in(t))),
        float(bool(OPINION.search(t))),
        float("?" in t),
        math.log1p(len(t.split())) / 4,
        float(ctx.people > 0),
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
    inputs: str = "rules"  # what follows the embedding: one of FEATURES

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
        extra = cue_features if self.inputs == "cues" else rule_features
        x = vec + extra(text, ctx, lex)
        if len(x) != len(self.coef[0]):
            raise ConfigError(
                f"the act head expects {len(self.coef[0])} features, this code computes "
                f"{len(x)} (embedding + {self.inputs} features): re-run "
                f"benchmarks/train_act_head.py, or embed with {EMBEDDER}"
            )
        return x

    def best(self, text: str, ctx: TurnContext, lex: Lexicon) -> tuple[str, float]:
        """The most probable act the context allows, and its probability."""
        probs = self.probabilities(self.features(text, ctx, lex))
        allowed = allowed_acts(ctx)
        name = max((a for a in probs if a in allowed), key=probs.__getitem__)
        return name, probs[name]


def load_act_head(embedder: Any, path: Path | None = None) -> ActHead:
    """The head's weights (JSON or TOML; default the bundled file), checked once; `embedder`
    must be `EMBEDDER`."""
    path = path or bundled_head_path()
    if not path.is_file():
        raise ConfigError(f"act head {path} not found: run benchmarks/train_act_head.py")
    try:
        text = path.read_text(encoding="utf-8")
        table = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        acts = tuple(table["acts"])
        coef = tuple(tuple(float(v) for v in row) for row in table["coef"])
        intercept = tuple(float(v) for v in table["intercept"])
        features = str(table.get("features", "rules"))
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"act head {path} is malformed ({e}): re-run the training script") from e
    if set(acts) != set(ACTS) or len(coef) != len(acts) or len(intercept) != len(acts):
        raise ConfigError(f"act head {path} does not cover the acts {ACTS}: re-run training")
    if features not in FEATURES or len({len(row) for row in coef}) != 1:
        raise ConfigError(f"act head {path}: features must be one of {FEATURES}: re-run training")
    return ActHead(acts, coef, intercept, embedder, features)
