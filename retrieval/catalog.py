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
import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from retrieval.catalog_id2info import read_id2info
from retrieval.catalog_rows import Accumulator, FieldMap, RowError, row_to_item
from retrieval.errors import CatalogError
from retrieval.types import CatalogLoad, Reject

log = logging.getLogger(__name__)

CATALOG_FORMATS: tuple[str, ...] = ("jsonl", "csv", "redial", "opendialkg")  # THE list


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
    acc = Accumulator()
    suffix = path.suffix.lower()
    if fmt in ("redial", "opendialkg") or (fmt is None and suffix == ".json"):
        read_id2info(data, path, fmt, acc)
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


# ---- line-oriented formats -------------------------------------------------------------


def _split_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    data = data.removeprefix(codecs.BOM_UTF8)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        yield number, raw.rstrip(b"\r")


def _read_jsonl(data: bytes, mapping: FieldMap, acc: Accumulator) -> None:
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
                raise RowError("not a JSON object")
            item = row_to_item(row, mapping, split_lists=False)
        except RowError as e:
            acc.reject(number, str(e), text)
            continue
        acc.add(number, item, text)


def _read_csv(data: bytes, path: Path, mapping: FieldMap, acc: Accumulator) -> None:
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
    lines: list[tuple[int, str]], path: Path, mapping: FieldMap, acc: Accumulator
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
            item = row_to_item(row, mapping, split_lists=True)
        except RowError as e:
            acc.reject(number, str(e), raw)
            continue
        acc.add(number, item, raw)
