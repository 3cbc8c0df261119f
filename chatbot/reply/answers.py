"""Answer a question about one item from its catalog record, and only from it.

    answer = answer_question(item, "director")
    answer.facts   # (Fact("director", "Michael Mann", "director"),) or a Fact with value None
    answer.text    # "Heat was directed by Michael Mann." / "The catalog doesn't list a director ..."

Every value in `facts` is read from `item.title` or `item.metadata`; a fact the record lacks is
a `Fact` with `value=None`, and the sentence says so plainly. "Is it scary?" and "is it ok for
kids?" are judged from genres, tags and the rating, and the evidence is named. The sentences
come from `prompts/answers.toml`; the reply writer may quote `facts` instead.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from langchain_core.prompts import PromptTemplate

from chatbot.errors import ConfigError
from retrieval.types import Item, MetaValue

# Where each slot's fact lives in a record: the first key present wins (demo, ReDial, OpenDialKG).
SLOT_KEYS: dict[str, tuple[str, ...]] = {
    "director": ("director", "directors"),
    "cast": ("star", "stars", "actor", "actors", "cast"),
    "year": ("year",),
    "genre": ("genres", "genre"),
    "runtime": ("runtime_min", "runtime"),
    "plot": ("description", "plot", "overview"),
    "rating": ("rating", "certification"),
}
SCARY_GENRES = frozenset({"horror"})
SCARY_TAGS = ("horror", "scare", "creepy", "terrifying", "disturbing", "gore", "slasher")
CALM_TAGS = ("non-violent", "low violence", "family friendly", "for kids", "kids")
KIDS_GENRES = frozenset({"family", "animation"})
KIDS_RATINGS = frozenset({"G", "TV-Y", "TV-G", "PG"})
TEEN_RATINGS = frozenset({"PG-13", "TV-14", "12", "12A"})
ADULT_RATINGS = frozenset({"R", "NC-17", "TV-MA", "18", "X"})
_VARIABLES = frozenset({"title", "value", "evidence"})


@dataclass(frozen=True)
class Fact:
    field: str  # the slot or evidence kind: "director", "genres", "rating", "tags", ...
    value: str | None  # as words; None when the record lacks it
    source: str  # the metadata key read ("" when no key was present)


@dataclass(frozen=True)
class Answer:
    item_id: str
    title: str
    slot: str
    facts: tuple[Fact, ...]
    verdict: str  # "known" | "missing"; scary: "yes" | "no" | "missing";
    # kids_ok: "yes" | "maybe" | "no" | "unclear" (no rating, genres say nothing) | "missing"
    text: str


def bundled_answers_path() -> Path:
    import prompts

    return Path(prompts.__file__).parent / "answers.toml"


@lru_cache(maxsize=8)
def load_answer_templates(path: Path | None = None) -> dict[str, dict[str, PromptTemplate]]:
    path = path or bundled_answers_path()
    if not path.is_file():
        raise ConfigError(f"answer templates {path} not found: restore prompts/answers.toml")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"answer templates {path} are not valid TOML ({e}): edit it") from e
    out: dict[str, dict[str, PromptTemplate]] = {}
    for slot in (*SLOT_KEYS, "scary", "kids_ok", "other"):
        section = table.get(slot)
        if not isinstance(section, dict) or "missing" not in section:
            raise ConfigError(f"{path} needs a [{slot}] table with a 'missing' sentence")
        out[slot] = {}
        for verdict, text in section.items():
            template = PromptTemplate.from_template(text)
            extra = set(template.input_variables) - _VARIABLES
            if extra or "title" not in template.input_variables:
                raise ConfigError(
                    f"{path} [{slot}] {verdict}: use {{title}} and only {sorted(_VARIABLES)}"
                )
            out[slot][verdict] = template
    return out


def answer_question(item: Item, slot: str, templates: dict | None = None) -> Answer:
    """The answer to an item question of `slot` (acts.SLOTS) from `item`'s record."""
    templates = templates or load_answer_templates()
    if slot == "scary":
        verdict, facts, evidence = _scary(item)
    elif slot == "kids_ok":
        verdict, facts, evidence = _kids(item)
    elif slot in SLOT_KEYS:
        fact = record_fact(item, slot)
        facts, evidence = (fact,), ""
        verdict = "known" if fact.value is not None else "missing"
    else:
        slot = "other"
        facts = tuple(f for f in (record_fact(item, s) for s in SLOT_KEYS) if f.value is not None)
        verdict, evidence = ("known" if facts else "missing"), ""
    value = _value_words(facts, slot)
    text = templates[slot][verdict].format(
        **{
            k: v
            for k, v in {"title": item.title, "value": value, "evidence": evidence}.items()
            if k in templates[slot][verdict].input_variables
        }
    )
    return Answer(item.item_id, item.title, slot, facts, verdict, text)


def record_fact(item: Item, slot: str) -> Fact:
    """The record's value for `slot` as words, or a Fact with value None."""
    for key in SLOT_KEYS[slot]:
        words = _words(item.metadata.get(key))
        if words:
            return Fact(slot, words, key)
    return Fact(slot, None, "")


def _words(value: MetaValue | None, limit: int = 3) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, list):
        parts = [str(v).strip() for v in value if str(v).strip()][:limit]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    return text or None


_FACT_WORDS = {  # how `other` lists each fact
    "director": "directed by {}",
    "cast": "starring {}",
    "year": "from {}",
    "genre": "{}",
    "runtime": "{} minutes",
    "rating": "rated {}",
}


def _value_words(facts: tuple[Fact, ...], slot: str) -> str:
    if slot != "other":
        return facts[0].value or "" if facts else ""
    listed = [_FACT_WORDS[f.field].format(f.value) for f in facts if f.field in _FACT_WORDS]
    plot = [f.value for f in facts if f.field == "plot" and f.value]
    words = "; ".join(listed) + (f". {plot[0]}" if plot and listed else plot[0] if plot else "")
    return words if words.endswith((".", "!", "?")) else words + "."


def _lower_list(item: Item, key: str) -> list[str]:
    value = item.metadata.get(key)
    return [str(v).lower() for v in value] if isinstance(value, list) else []


def _rating(item: Item) -> str | None:
    value = item.metadata.get("rating")
    return str(value).strip().upper() if isinstance(value, str) and value.strip() else None


def _scary(item: Item) -> tuple[str, tuple[Fact, ...], str]:
    genres = [g for g in _lower_list(item, "genres") or _lower_list(item, "genre")]
    tags = _lower_list(item, "tags")
    rating = _rating(item)
    if not genres and not tags and rating is None:
        return "missing", (Fact("genres", None, ""),), ""
    scary_genres = [g for g in genres if g in SCARY_GENRES]
    scary_tags = [t for t in tags if any(w in t for w in SCARY_TAGS)]
    facts = _evidence_facts(genres, scary_tags or tags[:0], rating)
    if scary_genres or scary_tags:
        parts = [f"it's listed as {' and '.join(scary_genres)}"] if scary_genres else []
        parts += [f"tagged {', '.join(scary_tags[:2])}"] if scary_tags else []
        parts += [f"rated {rating}"] if rating else []
        return "yes", facts, ", ".join(parts)
    parts = [f"it's listed as {_and(genres[:3])}"] if genres else []
    parts += [f"rated {rating}"] if rating else []
    return "no", facts, ", ".join(parts)


def _kids(item: Item) -> tuple[str, tuple[Fact, ...], str]:
    genres = _lower_list(item, "genres") or _lower_list(item, "genre")
    tags = _lower_list(item, "tags")
    rating = _rating(item)
    kid_tags = [t for t in tags if any(w in t for w in CALM_TAGS)]
    facts = _evidence_facts(genres, kid_tags, rating)
    kid_genres = [g for g in genres if g in KIDS_GENRES]
    scary = [g for g in genres if g in SCARY_GENRES]
    if rating in ADULT_RATINGS or scary:
        parts = [f"rated {rating}"] if rating in ADULT_RATINGS else []
        parts += [f"listed as {' and '.join(scary)}"] if scary else []
        return "no", facts, ", ".join(parts)
    if rating in KIDS_RATINGS:
        parts = [f"rated {rating}"] + ([f"listed as {_and(kid_genres)}"] if kid_genres else [])
        return "yes", facts, ", ".join(parts)
    if rating in TEEN_RATINGS:
        return "maybe", facts, f"rated {rating}"
    if kid_genres or kid_tags:  # no usable rating: the genres or tags decide
        parts = [f"listed as {_and(kid_genres)}"] if kid_genres else []
        parts += [f"tagged {', '.join(kid_tags[:2])}"] if kid_tags else []
        parts += [f"though rated {rating}"] if rating else []
        return "yes", facts, ", ".join(parts)
    if genres or tags:
        return "unclear", (*facts, Fact("rating", None, "")), _and(genres[:3] or tags[:3])
    return "missing", (Fact("rating", None, ""),), ""


def _evidence_facts(genres: list[str], tags: list[str], rating: str | None) -> tuple[Fact, ...]:
    out = []
    if genres:
        out.append(Fact("genres", _and(genres[:3]), "genres"))
    if tags:
        out.append(Fact("tags", ", ".join(tags[:3]), "tags"))
    if rating:
        out.append(Fact("rating", rating, "rating"))
    return tuple(out)


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
