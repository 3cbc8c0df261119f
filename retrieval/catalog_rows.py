"""One catalog row → `Item`: the field map, value coercion and the per-load accumulator.

Shared by the line-oriented readers (`retrieval.catalog`) and the `id2info.json` readers
(`retrieval.catalog_id2info`). A row that cannot become an item raises `RowError`; the
`Accumulator` turns it into a `Reject` and keeps loading.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from retrieval.sanitize import sanitize_item
from retrieval.types import Item, MetaValue, Reject

MAX_FIELD_CHARS = 20_000
_RAW_CHARS = 500
_LIST_SPLIT = re.compile(r"[|;]")
TRAILING_YEAR = re.compile(r"\((\d{4})\)\s*$")
_SURROGATE = re.compile("[\udc80-\udcff]")  # bytes that were not valid UTF-8 (surrogateescape)


@dataclass
class FieldMap:
    """Where each fact lives in a JSONL/CSV row (source names on the left of each mapping).

    `genre_field`, `year_field`, `popularity_field` and `description_field` are stored under the
    canonical metadata keys `genres`, `year`, `popularity` and `description` that the rest of
    the system reads; every other `metadata_fields` entry keeps its own name.
    """

    id_field: str = "id"
    title_field: str = "title"
    text_fields: list[str] = field(
        default_factory=lambda: ["title", "description", "genres", "tags"]
    )
    metadata_fields: list[str] = field(
        default_factory=lambda: ["year", "genres", "tags", "rating", "runtime_min", "popularity"]
    )
    genre_field: str = "genres"
    year_field: str = "year"
    popularity_field: str = "popularity"
    description_field: str = "description"
    list_fields: list[str] = field(default_factory=lambda: ["genres", "tags"])  # canonical keys
    int_fields: list[str] = field(default_factory=lambda: ["year", "runtime_min"])
    float_fields: list[str] = field(default_factory=lambda: ["popularity"])

    def canonical(self) -> dict[str, str]:
        """Source field → metadata key, for every field that lands in metadata."""
        keys = {src: src for src in self.metadata_fields}
        keys[self.genre_field] = "genres"
        keys[self.year_field] = "year"
        keys[self.popularity_field] = "popularity"
        keys[self.description_field] = "description"
        keys.pop(self.id_field, None)
        keys.pop(self.title_field, None)
        return keys


class RowError(ValueError):
    """One row cannot become an Item; the message is the reject reason."""


class Accumulator:
    def __init__(self) -> None:
        self.items: list[Item] = []
        self.rejects: list[Reject] = []
        self.duplicate_ids: list[str] = []
        self._seen: set[str] = set()

    def reject(self, line: int, reason: str, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        self.rejects.append(Reject(line=line, reason=reason, raw=raw[:_RAW_CHARS]))

    def add(self, line: int, item: Item, raw: str) -> None:
        if item.item_id in self._seen:
            if item.item_id not in self.duplicate_ids:
                self.duplicate_ids.append(item.item_id)
            self.reject(line, f"duplicate id {item.item_id!r}: the first row with it was kept", raw)
            return
        self._seen.add(item.item_id)
        self.items.append(sanitize_item(item))


# ---- one row → Item -----------------------------------------------------------------------


def check_lengths(row: dict[str, Any]) -> None:
    for key, value in row.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str) and len(v) > MAX_FIELD_CHARS:
                raise RowError(f"field {key!r} is over {MAX_FIELD_CHARS} characters")
            if isinstance(v, str) and _SURROGATE.search(v):
                raise RowError(f"field {key!r} has invalid UTF-8 bytes")


def _required_str(row: dict[str, Any], key: str, what: str) -> str:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        if value is None:
            raise RowError(f"missing {what} (field {key!r})")
        raise RowError(f"field {key!r} ({what}) must be a string, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise RowError(f"missing {what} (field {key!r})")
    return text


def _coerce_int(key: str, value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) or (math.isfinite(value) and value.is_integer()):
            return int(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
        if math.isfinite(number) and number.is_integer():
            return int(number)
    raise RowError(f"field {key!r}: expected an integer, got {value!r}"[:200])


def _coerce_float(key: str, value: Any) -> float:
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if not math.isfinite(number):
        raise RowError(f"field {key!r}: expected a number, got {value!r}"[:200])
    return number


def str_list(key: str, value: Any, *, split: bool = True, lower: bool = False) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = _LIST_SPLIT.split(value) if split else [value]
    if not isinstance(value, list):
        raise RowError(f"field {key!r}: expected a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for element in value:
        if isinstance(element, bool) or not isinstance(element, str | int | float):
            raise RowError(f"field {key!r}: list elements must be strings")
        text = str(element).strip()
        text = text.lower() if lower else text
        if text and text not in out:
            out.append(text)
    return out


def _meta_value(key: str, value: Any, mapping: FieldMap) -> MetaValue | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if key in mapping.int_fields:
        return _coerce_int(key, value)
    if key in mapping.float_fields:
        return _coerce_float(key, value)
    if key in mapping.list_fields or key == "genres":
        return str_list(key, value, lower=key == "genres") or None
    if key == "description" and not isinstance(value, str):
        raise RowError(f"field {key!r}: expected a string, got {type(value).__name__}")
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and not math.isfinite(value):
        raise RowError(f"field {key!r}: expected a finite number, got {value!r}")
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, list):
        return str_list(key, value, split=False) or None
    raise RowError(f"field {key!r}: nested objects are not supported")


def row_to_item(row: dict[str, Any], mapping: FieldMap, *, split_lists: bool) -> Item:
    check_lengths(row)
    item_id = _required_str(row, mapping.id_field, "id")
    title = _required_str(row, mapping.title_field, "title")
    canonical = mapping.canonical()
    metadata: dict[str, MetaValue] = {}
    for src, key in canonical.items():
        value = row.get(src)
        if not split_lists and isinstance(value, str) and key in mapping.list_fields:
            value = [value]  # JSON strings are one element; only CSV cells are split
        coerced = _meta_value(key, value, mapping)
        if coerced is not None:
            metadata[key] = coerced
    parts = [title]
    for src in mapping.text_fields:
        if src == mapping.title_field:
            continue
        key = canonical.get(src, src)
        value = metadata[key] if key in metadata else row.get(src)
        parts.append(_text_part(key, value))
    return Item(
        item_id=item_id, title=title, text="\n".join(p for p in parts if p), metadata=metadata
    )


def _text_part(label: str, value: Any) -> str:
    if value is None or isinstance(value, dict):
        return ""
    if isinstance(value, list):
        return f"{label}: {', '.join(str(v) for v in value)}" if value else ""
    if isinstance(value, str):
        return value.strip() if label == "description" else f"{label}: {value.strip()}"
    return f"{label}: {value}"
