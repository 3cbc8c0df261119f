"""Plain data types shared by the retrieval package and its callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Scalar = str | int | float | bool
MetaValue = Scalar | list[str]


@dataclass(frozen=True)
class Item:
    """One catalog item as indexed.

    `text` is the embedded document. `metadata` holds filterable and displayable facts
    (scalars or lists of strings, as Chroma stores them): for the demo catalog `year`,
    `genres`, `tags`, `rating`, `runtime_min`, `popularity`, and `description`.
    Every fact a reason may state must come from `title` or `metadata`.
    """

    item_id: str
    title: str
    text: str
    metadata: dict[str, MetaValue] = field(default_factory=dict)

    def facts_text(self, max_list: int = 4) -> str:
        """Compact 'key: value' facts, used in prompts and by the reason checker."""
        parts = [f"title: {self.title}"]
        for key, value in self.metadata.items():
            if key in ("popularity", "content_hash"):
                continue
            if isinstance(value, list):
                if not value:
                    continue
                value = ", ".join(value[:max_list])
            parts.append(f"{key}: {value}")
        return "; ".join(parts)

    @property
    def year(self) -> int | None:
        y = self.metadata.get("year")
        return int(y) if isinstance(y, int | float) and not isinstance(y, bool) else None

    @property
    def genres(self) -> list[str]:
        g = self.metadata.get("genres")
        return list(g) if isinstance(g, list) else []


@dataclass(frozen=True)
class Reject:
    """A catalog row that was not indexed, with the reason and where it was."""

    line: int
    reason: str
    raw: str


@dataclass
class CatalogLoad:
    items: list[Item]
    rejects: list[Reject] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate:
    """A retrieved item with its fused score and per-signal scores (for explanations/debug)."""

    item: Item
    score: float
    signals: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Query:
    """What candidate generation needs from the dialogue state.

    `where` is a Chroma metadata filter (or None) built from the user's constraints;
    `exclude_ids` are never returned (rejected, already shown, mentioned);
    `avoid_terms` softly penalise items whose text/metadata contain them ("less violent");
    `mentioned_ids` are items mentioned in the dialogue (liked or not): they seed the
    item-similarity and co-occurrence signals and, like `liked_ids`, are never returned.
    `entity_keys` are the people and genres named ("person:tom hanks", "genre:comedy"; liked
    ones first): they seed the entity co-occurrence signal. `liked_people` are the person keys
    the user asked for or liked ("anything with Tom Hanks?"): they seed the credits signal.
    """

    text: str
    liked_ids: tuple[str, ...] = ()
    exclude_ids: frozenset[str] = frozenset()
    where: dict[str, Any] | None = None
    avoid_terms: tuple[str, ...] = ()
    mentioned_ids: tuple[str, ...] = ()
    entity_keys: tuple[str, ...] = ()
    liked_people: tuple[str, ...] = ()
