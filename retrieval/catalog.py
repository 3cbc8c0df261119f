"""Read an item catalog (JSONL, CSV, ReDial or OpenDialKG `id2info.json`) into `Item`s.

    from retrieval.catalog import load_catalog
    load = load_catalog(Path("movies.csv"), rejects_path=Path("rejects.jsonl"))
    print(len(load.items), len(load.rejects), load.duplicate_ids)

A bad row never stops the load: it becomes a `Reject(line, reason, raw)` and the rest still
loads. Only a missing, empty or wholly unreadable file raises `CatalogError`. For
`id2info.json` files a reject's `line` is the record's position in the file (1-based).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import CatalogError
from retrieval.sanitize import sanitize_item
from retrieval.types import CatalogLoad, Item, MetaValue, Reject

log = logging.getLogger(__name__)

CATALOG_FORMATS: tuple[str, ...] = ("jsonl", "csv", "redial", "opendialkg")  # THE list
MAX_FIELD_CHARS = 20_000
_RAW_CHARS = 500
_LIST_SPLIT = re.compile(r"[|;]")
_TRAILING_YEAR = re.compile(r"\((\d{4})\)\s*$")
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


class _RowError(ValueError):
    """One row cannot become an Item; the message is the reject reason."""


def demo_catalog_path() -> Path:
    """The bundled demo catalog (`retrieval/data/demo_catalog.jsonl`)."""
    return Path(__file__).parent / "data" / "demo_catalog.jsonl"


def load_catalog(
    path: Path,
    fmt: str | None = None,
    mapping: FieldMap | None = None,
    rejects_path: Path | None = None,
) -> CatalogLoad:
    """Load every valid row of `path`; `fmt` is one of CATALOG_FORMATS or None to infer it."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(
            f"catalog file {path} not found: pass --catalog PATH to an existing file"
        )
    data = path.read_bytes()
    if not data.strip():
        raise CatalogError(f"catalog file {path} is empty: pass --catalog PATH to a non-empty file")
    if fmt is not None and fmt not in CATALOG_FORMATS:
        raise CatalogError(
            f"unknown catalog format {fmt!r}: use one of {', '.join(CATALOG_FORMATS)}"
        )
    mapping = mapping or FieldMap()
    acc = _Accumulator()
    suffix = path.suffix.lower()
    if fmt in ("redial", "opendialkg") or (fmt is None and suffix == ".json"):
        _read_id2info(data, path, fmt, acc)
    elif fmt == "jsonl" or (fmt is None and suffix == ".jsonl"):
        _read_jsonl(data, mapping, acc)
    elif fmt == "csv" or (fmt is None and suffix == ".csv"):
        _read_csv(data, path, mapping, acc)
    else:
        raise CatalogError(
            f"cannot tell the format of {path}: pass fmt= one of {', '.join(CATALOG_FORMATS)}"
        )
    load = CatalogLoad(items=acc.items, rejects=acc.rejects, duplicate_ids=acc.duplicate_ids)
    if load.rejects:
        log.warning("catalog %s: %d rows rejected", path, len(load.rejects))
        if rejects_path is not None:
            write_rejects(load.rejects, Path(rejects_path))
    log.info("catalog %s: %d items loaded", path, len(load.items))
    return load


def write_rejects(rejects: list[Reject], path: Path) -> None:
    """Write rejects as JSONL lines {"line", "reason", "raw"}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps({"line": r.line, "reason": r.reason, "raw": r.raw}) + "\n")


class _Accumulator:
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


# ---- line-oriented formats -------------------------------------------------------------


def _split_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    data = data.removeprefix(codecs.BOM_UTF8)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        yield number, raw.rstrip(b"\r")


def _read_jsonl(data: bytes, mapping: FieldMap, acc: _Accumulator) -> None:
    for number, raw in _split_lines(data):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            acc.reject(number, f"invalid UTF-8 at byte {e.start}", raw)
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            acc.reject(number, f"bad JSON: {e.msg} (column {e.colno})", text)
            continue
        try:
            if not isinstance(row, dict):
                raise _RowError("not a JSON object")
            item = _row_to_item(row, mapping, split_lists=False)
        except _RowError as e:
            acc.reject(number, str(e), text)
            continue
        acc.add(number, item, text)


def _read_csv(data: bytes, path: Path, mapping: FieldMap, acc: _Accumulator) -> None:
    lines: list[tuple[int, str]] = []
    for number, raw in _split_lines(data):
        try:
            lines.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as e:
            acc.reject(number, f"invalid UTF-8 at byte {e.start}", raw)
    if not lines:
        raise CatalogError(f"catalog file {path} has no readable lines: save it as UTF-8 CSV")
    old_limit = csv.field_size_limit(2**31 - 1)  # oversize fields become rejects, not csv.Error
    try:
        _read_csv_rows(lines, path, mapping, acc)
    finally:
        csv.field_size_limit(old_limit)


def _read_csv_rows(
    lines: list[tuple[int, str]], path: Path, mapping: FieldMap, acc: _Accumulator
) -> None:
    reader = csv.reader(text + "\n" for _, text in lines)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as e:
        raise CatalogError(f"catalog file {path} has no CSV header: add one ({e})") from e
    for needed in (mapping.id_field, mapping.title_field):
        if needed not in header:
            raise CatalogError(
                f"catalog file {path} has no column {needed!r} (columns: {', '.join(header)}): "
                "rename it or pass a FieldMap naming the right column"
            )
    while True:
        start = reader.line_num
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            number, text = lines[min(start, len(lines) - 1)]
            acc.reject(number, f"bad CSV: {e}", text)
            continue
        number = lines[min(start, len(lines) - 1)][0]
        raw = "\n".join(text for _, text in lines[start : reader.line_num])
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            acc.reject(number, f"row has {len(cells)} cells but the header has {len(header)}", raw)
            continue
        row = dict(zip(header, cells, strict=False))
        try:
            item = _row_to_item(row, mapping, split_lists=True)
        except _RowError as e:
            acc.reject(number, str(e), raw)
            continue
        acc.add(number, item, raw)


# ---- one row → Item -----------------------------------------------------------------------


def _check_lengths(row: dict[str, Any]) -> None:
    for key, value in row.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str) and len(v) > MAX_FIELD_CHARS:
                raise _RowError(f"field {key!r} is over {MAX_FIELD_CHARS} characters")
            if isinstance(v, str) and _SURROGATE.search(v):
                raise _RowError(f"field {key!r} has invalid UTF-8 bytes")


def _required_str(row: dict[str, Any], key: str, what: str) -> str:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        if value is None:
            raise _RowError(f"missing {what} (field {key!r})")
        raise _RowError(f"field {key!r} ({what}) must be a string, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise _RowError(f"missing {what} (field {key!r})")
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
    raise _RowError(f"field {key!r}: expected an integer, got {value!r}"[:200])


def _coerce_float(key: str, value: Any) -> float:
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if not math.isfinite(number):
        raise _RowError(f"field {key!r}: expected a number, got {value!r}"[:200])
    return number


def _str_list(key: str, value: Any, *, split: bool = True, lower: bool = False) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = _LIST_SPLIT.split(value) if split else [value]
    if not isinstance(value, list):
        raise _RowError(f"field {key!r}: expected a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for element in value:
        if isinstance(element, bool) or not isinstance(element, str | int | float):
            raise _RowError(f"field {key!r}: list elements must be strings")
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
        return _str_list(key, value, lower=key == "genres") or None
    if key == "description" and not isinstance(value, str):
        raise _RowError(f"field {key!r}: expected a string, got {type(value).__name__}")
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and not math.isfinite(value):
        raise _RowError(f"field {key!r}: expected a finite number, got {value!r}")
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, list):
        return _str_list(key, value, split=False) or None
    raise _RowError(f"field {key!r}: nested objects are not supported")


def _row_to_item(row: dict[str, Any], mapping: FieldMap, *, split_lists: bool) -> Item:
    _check_lengths(row)
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


# ---- ReDial / OpenDialKG id2info.json ---------------------------------------------------------


class _Pairs(dict):
    """A JSON object that also remembers its key/value pairs in order, duplicates included."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _read_id2info(data: bytes, path: Path, fmt: str | None, acc: _Accumulator) -> None:
    try:
        text = data.decode("utf-8-sig", errors="surrogateescape")  # bad bytes reject one record
        records = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as e:
        raise CatalogError(
            f"catalog file {path} is not valid JSON ({e.msg} at line {e.lineno}): "
            "fix the file or pass --catalog PATH to a valid id2info.json"
        ) from e
    if not isinstance(records, _Pairs):
        raise CatalogError(f"catalog file {path} is not an id→record JSON object: check the file")
    if fmt is None:
        has_plot = any(isinstance(r, dict) and "plot" in r for r in records.values())
        fmt = "redial" if has_plot else "opendialkg"
    convert = _redial_item if fmt == "redial" else _opendialkg_item
    for position, (key, record) in enumerate(records.pairs, start=1):
        raw = json.dumps({key: record}, ensure_ascii=False)
        try:
            if not isinstance(record, dict):
                raise _RowError("record is not a JSON object")
            _check_lengths({"id": key, **record})
            item = convert(str(key), record)
        except _RowError as e:
            acc.reject(position, f"record {key!r}: {e}", raw.encode("utf-8", "surrogateescape"))
            continue
        acc.add(position, item, raw)


def _name_of(record: dict[str, Any]) -> str:
    name = record.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _RowError("missing name")
    return name  # exactly as given: gold labels in the dialogue files match it


def _text(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def _redial_item(item_id: str, record: dict[str, Any]) -> Item:
    name = _name_of(record)
    plot = record.get("plot") or ""
    if not isinstance(plot, str):
        raise _RowError(f"field 'plot': expected a string, got {type(plot).__name__}")
    genres = _str_list("genre", record.get("genre"), split=False, lower=True)
    director = _str_list("director", record.get("director"), split=False)
    star = _str_list("star", record.get("star"), split=False)[:3]
    metadata: dict[str, MetaValue] = {}
    year = _TRAILING_YEAR.search(name)
    if year:
        metadata["year"] = int(year.group(1))
    for key, value in (("genres", genres), ("director", director), ("star", star)):
        if value:
            metadata[key] = value
    if plot.strip():
        metadata["description"] = plot.strip()
    text = _text(
        name,
        plot.strip(),
        f"genres: {', '.join(genres)}" if genres else "",
        f"director: {', '.join(director)}" if director else "",
        f"stars: {', '.join(star)}" if star else "",
    )
    return Item(item_id=item_id, title=name, text=text, metadata=metadata)


def _opendialkg_item(item_id: str, record: dict[str, Any]) -> Item:
    name = _name_of(record)
    genres = _str_list("genre", record.get("genre"), split=False, lower=True)
    director = _str_list("director", record.get("director"), split=False)
    actor = _str_list("actor", record.get("actor"), split=False)[:4]
    metadata: dict[str, MetaValue] = {}
    year = record.get("year")
    if isinstance(year, str) and year.strip().isdigit():
        metadata["year"] = int(year.strip())
    elif isinstance(year, int) and not isinstance(year, bool):
        metadata["year"] = year
    for key, value in (("genres", genres), ("director", director), ("actor", actor)):
        if value:
            metadata[key] = value
    text = _text(
        name,
        f"genres: {', '.join(genres)}" if genres else "",
        f"director: {', '.join(director)}" if director else "",
        f"actors: {', '.join(actor)}" if actor else "",
    )
    return Item(item_id=item_id, title=name, text=text, metadata=metadata)
