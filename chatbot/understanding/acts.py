"""The dialogue act of one user message: greeting, request, refine, feedback, item question, ...

    lexicon = load_lexicon()                         # prompts/dialogue_acts.toml, checked once
    classifier = ActClassifier(lexicon)              # rules only: ~0.1 ms a message
    act = classifier.classify("who directed the second one?", TurnContext(has_items=True))
    # Act(name='item_question', slot='director', confidence=0.9)
    served = ActClassifier(lexicon, embedder=embedder)  # the learned head (act_head.py), ~10 ms

Served (`chatbot.turn`), the classifier gets the retrieval embedder (the bundled MiniLM) and
the learned head of `act_head.py` decides, over the message embedding and the cues below; the
head's weights (`prompts/dialogue_act_head.toml`) are read at the first message, and when they
are missing or do not fit the embedder the rules answer alone (logged once). The rule path reads the cue patterns of `prompts/dialogue_acts.toml` in a fixed precedence
(a why- or item question wins over the feedback or thanks around it; thanks only close a turn
that asks for nothing) and the turn's context: whether items are already in play decides
between a first request and a refinement or feedback. With an embedder, messages the rules
are unsure of fall to the nearest hand-written exemplars of the same file. This module knows
nothing of the catalog, the store or the LLM; the caller summarises the dialogue in a
`TurnContext` (`context_from_state` does it for a `DialogueState`).
"""

from __future__ import annotations

import logging
import re
import threading
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chatbot.errors import ConfigError

log = logging.getLogger(__name__)

ACTS: tuple[str, ...] = (
    "greeting",
    "request",
    "refine",
    "feedback",
    "item_question",
    "why_question",
    "topic_shift",
    "thanks_bye",
)
SLOTS: tuple[str, ...] = (
    "director",
    "cast",
    "year",
    "genre",
    "runtime",
    "plot",
    "scary",
    "kids_ok",
    "rating",
    "other",
)
# Acts that need no new picks: the turn answers, greets or closes instead.
NO_PICKS: frozenset[str] = frozenset({"greeting", "item_question", "why_question", "thanks_bye"})
CUE_GROUPS: tuple[str, ...] = (
    "item_question",
    "why_question",
    "topic_shift",
    "closing",
    "thanks_bye",
    "not_thanks",
    "greeting",
    "ask",
    "taste",
    "reaction",
    "more_works",
)
_LIKE_NEW = re.compile(
    r"\b(i|we) (also |really |do |did |just )*(like|love|liked|loved|enjoy|enjoyed|adore)\b"
    r"|\bfavou?rites?\b|\bfan of\b"
)
OPINION = re.compile(  # an opinion word: a liked or disliked title, not just a seen one
    r"\b(?:like|love|liked|loved|enjoy|enjoyed|adore|favou?rites?|faves?|fav|great|good|funny"
    r"|awesome|amazing|spectacular|excellent|hilarious|best|cute|tolerable|too gross|too silly"
    r"|didn'?t (?:like|care)|not (?:as )?good)\b"
)
_WHAT_ABOUT = re.compile(r"\b(?:what|how) about\b")
# "do you know The Equalizer?": an opinion or facts asked of the title the message names
_ASKED_OF_TITLE = re.compile(r"(?:^|[.!?] )(?:do|did) you (?:know|like|enjoy|remember)\b[^.!?]*\?")
# a dialogue's first words "have you seen X?" ask about X; later they offer X as a liked title
_SEEN_TITLE = re.compile(r"^have you (?:seen|read|watched)\b[^.!?]*\?")
# "would you recommend Home Alone?": the user asks the clerk's opinion of the title they name
_RECOMMEND_TITLE = re.compile(
    r"(?:^|[.!?] )(?:would|do|will) you recommend (?!(?:any|some|something|anything|me|us|other"
    r"|more|similar|movies|films|books|a |an |another|one)\b)[^.!?]*\?"
)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Act:
    name: str
    slot: str | None = None  # the asked-for fact of an item_question, else None
    confidence: float = 1.0


@dataclass(frozen=True)
class TurnContext:
    """What the act of a message depends on besides its words.

    `has_items`: items were shown or talked about earlier in the dialogue (so "more", "seen
    it", "what is it about?" have something to refer to); `new_titles`: titles in this message
    that were not in play before; `titles`: titles in this message at all; `topic_genres`: the
    genres of the current request (its genre constraints and the genres of its seed titles);
    `people`: catalog people (actors, directors, writers) this message names ("do you like
    Ryan Reynolds?" asks for his films, not small talk).
    """

    has_items: bool = False
    new_titles: int = 0
    titles: int = 0
    topic_genres: frozenset[str] = frozenset()
    people: int = 0


def context_from_state(
    state: Any,
    mentioned_ids: list[str] | tuple[str, ...] = (),
    seed_genres: frozenset[str] = frozenset(),
    people: int = 0,
) -> TurnContext:
    """The context of a message for a `DialogueState` *before* the message is added to it.

    `mentioned_ids`: the item ids the title matcher found in the message; `seed_genres`: the
    genres of the state's liked/mentioned items (the caller has the catalog); `people`: the
    catalog people the entity linker found in the message.
    """
    known = set(state.shown) | set(state.mentioned)
    return TurnContext(
        has_items=bool(known),
        new_titles=sum(1 for i in dict.fromkeys(mentioned_ids) if i not in known),
        titles=len(set(mentioned_ids)),
        topic_genres=frozenset(state.constraints.include_genres) | seed_genres,
        people=people,
    )


@dataclass(frozen=True)
class Lexicon:
    cues: dict[str, re.Pattern[str]]
    slots: tuple[tuple[str, re.Pattern[str]], ...]
    exemplars: dict[str, tuple[str, ...]]
    genres: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def genres_in(self, text: str) -> frozenset[str]:
        """The genres `text` (normalised) names, by the [genres] words."""
        return frozenset(g for g, p in self.genres if p.search(text))


def _compile(patterns: list[str], where: str) -> re.Pattern[str]:
    try:
        # Each pattern starts at a word start: "now a" must not match inside "know a".
        return re.compile(r"(?<![a-z0-9])(?:" + "|".join(f"(?:{p})" for p in patterns) + r")")
    except re.error as e:
        raise ConfigError(f"{where}: bad pattern ({e}): edit the file") from e


def bundled_lexicon_path() -> Path:
    import prompts

    return Path(prompts.__file__).parent / "dialogue_acts.toml"


@lru_cache(maxsize=8)
def load_lexicon(path: Path | None = None) -> Lexicon:
    """Cue patterns, slot patterns and exemplars from `dialogue_acts.toml`, checked once."""
    path = path or bundled_lexicon_path()
    if not path.is_file():
        raise ConfigError(f"dialogue-act file {path} not found: restore prompts/dialogue_acts.toml")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"dialogue-act file {path} is not valid TOML ({e}): edit it") from e
    cues, slots, exemplars, genres = (
        table.get(k, {}) for k in ("cues", "slots", "exemplars", "genres")
    )
    missing = [g for g in CUE_GROUPS if not cues.get(g)]
    if missing:
        raise ConfigError(f"{path}: [cues] needs non-empty lists {missing}: edit the file")
    unknown = sorted(set(slots) - set(SLOTS)) + sorted(set(exemplars) - set(ACTS))
    if unknown:
        raise ConfigError(f"{path}: unknown slots or acts {unknown}: use {SLOTS} / {ACTS}")
    return Lexicon(
        cues={g: _compile(cues[g], f"{path} [cues] {g}") for g in CUE_GROUPS},
        slots=tuple((s, _compile(p, f"{path} [slots] {s}")) for s, p in slots.items()),
        exemplars={a: tuple(v) for a, v in exemplars.items()},
        genres=tuple(
            (g, _compile([re.escape(w) + r"\b" for w in words], f"{path} [genres] {g}"))
            for g, words in genres.items()
        ),
    )


def normalize(text: str) -> str:
    """Lower-cased, apostrophes and ReDial's escaped '?' made plain, spaces collapsed."""
    text = text.replace("%3F", "?").replace("\u2019", "'").replace("\u2018", "'")
    return _SPACES.sub(" ", text.lower()).strip()


def rule_act(text: str, ctx: TurnContext, lex: Lexicon) -> Act:
    """The rule path: cue groups in precedence order; confidence says how sure the branch is."""
    t = normalize(text)
    hit = {g: bool(p.search(t)) for g, p in lex.cues.items()}
    about_item = ctx.has_items or ctx.titles > 0
    if hit["why_question"] and about_item:
        return Act("why_question", None, 0.9)
    # A question about a person with no item named or in play asks for their works:
    # "do you know anything about Wes Craven?" is a request.
    about_person = ctx.people > 0 and not about_item
    if ctx.titles and not ctx.people:
        asked = _ASKED_OF_TITLE.search(t) or (not ctx.has_items and _SEEN_TITLE.search(t))
        if (asked and not hit["ask"]) or _RECOMMEND_TITLE.search(t):
            return Act("item_question", slot_of(t, lex), 0.6)
    # "what else did he write?" asks for more of a person's works, unless the rest of the
    # message also asks about the item ("is it a comedy? what else has he directed?")
    rest = lex.cues["more_works"].sub(" ", t) if hit["more_works"] else t
    if hit["more_works"] and not lex.cues["item_question"].search(rest):
        return Act("refine" if ctx.has_items else "request", None, 0.8)
    if hit["item_question"] and not about_person:
        # with nothing in play the reply asks which item is meant
        return Act("item_question", slot_of(rest, lex), 0.9 if about_item else 0.6)
    if hit["closing"]:
        return Act("thanks_bye", None, 0.9)
    if hit["topic_shift"] and ctx.has_items:
        return Act("topic_shift", None, 0.8)
    if hit["thanks_bye"] and not hit["not_thanks"] and not hit["ask"]:
        return Act("thanks_bye", None, 0.9)
    named_genres = bool(lex.genres_in(t))
    if not ctx.has_items:
        if hit["ask"] or hit["taste"] or ctx.titles or named_genres or ctx.people:
            return Act("request", None, 0.9)
        if hit["greeting"]:
            return Act("greeting", None, 0.9)
        return Act("request" if len(t.split()) > 4 else "greeting", None, 0.5)
    if hit["ask"]:
        if _genre_switch(t, ctx, lex):
            return Act("topic_shift", None, 0.7)
        return Act("refine", None, 0.8)
    if hit["reaction"]:
        # A reaction that also adds to the search (a taste, or a liked or disliked title not
        # in play) refines the request: "haven't seen it, but I love historical movies".
        if hit["taste"] or (ctx.new_titles and OPINION.search(t)):
            return Act("refine", None, 0.6)
        if ctx.new_titles and _WHAT_ABOUT.search(t):  # "what about X? I have seen Big"
            return Act("refine", None, 0.6)
        return Act("feedback", None, 0.8)
    if hit["taste"] or (ctx.new_titles and _LIKE_NEW.search(t)):
        return Act("refine", None, 0.7)
    if ctx.new_titles:  # a title not in play, no reaction to the shown ones: "Or even Big"
        return Act("refine", None, 0.6)
    if named_genres and len(t.split()) <= 4:  # "Dramatic", "a comedy maybe"
        return Act("refine", None, 0.6)
    if hit["greeting"]:
        return Act("greeting", None, 0.7)
    return Act("feedback", None, 0.5)


_NEGATED = re.compile(r"\b(?:no|not|without|less|nothing|never|avoid|except)\s+(?:\S+\s+){0,1}\S+")
_KEEP_TOPIC = re.compile(r"\b(also|too|as well|more|another|other|others|else|similar)\b")


def _genre_switch(text: str, ctx: TurnContext, lex: Lexicon) -> bool:
    """A request naming genres that share none with the current topic's ("something funny for
    a family night" after Heat's crime and drama); "also", "more", "similar" keep the topic."""
    if not ctx.topic_genres or _KEEP_TOPIC.search(text):
        return False
    named = lex.genres_in(_NEGATED.sub(" ", text))  # "no horror" names no new genre
    return bool(named) and not named & ctx.topic_genres


def slot_of(text: str, lex: Lexicon) -> str:
    """The fact an item question asks for; "other" when no slot pattern matches."""
    for slot, pattern in lex.slots:
        if pattern.search(text):
            return slot
    return "other"


class ExemplarActs:
    """Nearest hand-written exemplars by cosine over the embedder (vectors are normalised)."""

    def __init__(self, embedder: Any, lex: Lexicon, k: int = 3) -> None:
        import numpy as np

        self.embedder = embedder
        self.k = k
        self.labels = [a for a, texts in lex.exemplars.items() for _ in texts]
        texts = [t for ts in lex.exemplars.values() for t in ts]
        self.matrix = np.asarray(embedder.embed_documents(texts), dtype="float32")

    def scores(self, text: str) -> dict[str, float]:
        """Per act: the mean similarity of its `k` nearest exemplars."""
        import numpy as np

        vec = np.asarray(self.embedder.embed_query(text), dtype="float32")
        sims = self.matrix @ vec
        out: dict[str, float] = {}
        for act in dict.fromkeys(self.labels):
            mine = np.sort(sims[[i for i, a in enumerate(self.labels) if a == act]])[::-1]
            out[act] = float(mine[: self.k].mean())
        return out


class ActClassifier:
    """With a learned head, the head decides (see act_head.py). Else rules first; an unsure
    rule answer (confidence < `threshold`) asks the exemplars.

    `embedder` (the bundled MiniLM, `act_head.EMBEDDER`) without `head`: the bundled head is
    loaded at the first message; if it is missing or does not fit the embedder, the rules
    answer. The exemplars and the head only choose among the acts the context allows (no
    refinement or feedback before any item is in play).
    """

    def __init__(
        self,
        lex: Lexicon,
        exemplars: ExemplarActs | None = None,
        threshold: float = 0.6,
        head: Any = None,
        embedder: Any = None,
    ) -> None:
        self.lex = lex
        self.exemplars = exemplars
        self.threshold = threshold
        self.head = head  # an act_head.ActHead: it decides every message when given
        self._embedder = None if head is not None else embedder  # loads the bundled head
        self._lock = threading.Lock()

    def _served_head(self) -> Any:
        if self._embedder is not None:
            from chatbot.understanding.act_head import load_act_head

            with self._lock:  # sessions share one classifier: load the weights once
                if self._embedder is not None:
                    try:
                        self.head = load_act_head(self._embedder)
                    except ConfigError as e:
                        log.warning("dialogue acts by the rules only: %s", e)
                    self._embedder = None
        return self.head

    def classify(self, text: str, ctx: TurnContext | None = None) -> Act:
        ctx = ctx or TurnContext()
        head = self._served_head()
        if head is not None:
            try:
                name, p = head.best(text, ctx, self.lex)
            except ConfigError as e:  # an embedder the weights were not fitted on
                log.warning("dialogue acts by the rules only: %s", e)
                self.head = None
                return self.classify(text, ctx)
            slot = slot_of(normalize(text), self.lex) if name == "item_question" else None
            return Act(name, slot, round(p, 3))
        act = rule_act(text, ctx, self.lex)
        if self.exemplars is None or act.confidence >= self.threshold:
            return act
        scores = self.exemplars.scores(text)
        allowed = _allowed(ctx)
        name = max((a for a in scores if a in allowed), key=scores.__getitem__)
        slot = slot_of(normalize(text), self.lex) if name == "item_question" else None
        return Act(name, slot, round(scores[name], 3))


def _allowed(ctx: TurnContext) -> frozenset[str]:
    if ctx.has_items:
        return frozenset(ACTS) - {"request"}
    return frozenset({"greeting", "request", "thanks_bye"})
