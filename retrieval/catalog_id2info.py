"""ReDial and OpenDialKG `id2info.json` catalogs → `Item`s (a reject's line: the record's position)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retrieval.catalog_rows import TRAILING_YEAR, Accumulator, RowError, check_lengths, str_list
from retrieval.errors import CatalogError
from retrieval.types import Item, MetaValue

ACTORS_KEPT = 10  # OpenDialKG lists up to ~10 distinct actors per film

# ---- ReDial / OpenDialKG id2info.json ---------------------------------------------------------


class _Pairs(dict):
    """A JSON object that also remembers its key/value pairs in order, duplicates included."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def read_id2info(data: bytes, path: Path, fmt: str | None, acc: Accumulator) -> None:
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
                raise RowError("record is not a JSON object")
            check_lengths({"id": key, **record})
            item = convert(str(key), record)
        except RowError as e:
            acc.reject(position, f"record {key!r}: {e}", raw.encode("utf-8", "surrogateescape"))
            continue
        acc.add(position, item, raw)


def _name_of(record: dict[str, Any]) -> str:
    name = record.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RowError("missing name")
    return name  # exactly as given: gold labels in the dialogue files match it


def _text(*parts: str) -> str:
    return "\n".join(p for p in parts if p)


def _redial_item(item_id: str, record: dict[str, Any]) -> Item:
    name = _name_of(record)
    plot = record.get("plot") or ""
    if not isinstance(plot, str):
        raise RowError(f"field 'plot': expected a string, got {type(plot).__name__}")
    genres = str_list("genre", record.get("genre"), split=False, lower=True)
    director = str_list("director", record.get("director"), split=False)
    star = str_list("star", record.get("star"), split=False)[:3]
    metadata: dict[str, MetaValue] = {}
    year = TRAILING_YEAR.search(name)
    if year:
        metadata["year"] = int(year.group(1))
    for key, value in (("genres", genres), ("director", director), ("star", star)):
        if value:
            metadata[key] = value
    if plot.strip():
        metadata["description"] = plot.strip()
    imdb_id = record.get("imdb_id")
    if isinstance(imdb_id, str) and imdb_id.strip():
        # Keys interaction logs (MovieLens links.csv); metadata only: never in the text.
        metadata["imdb_id"] = imdb_id.strip()
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
    genres = str_list("genre", record.get("genre"), split=False, lower=True)
    director = str_list("director", record.get("director"), split=False)
    # Every credited actor and writer: with no plot, the people are what the talk is about
    # ("anything else with Natalie Portman?"), and the leads are not always listed first.
    actor = str_list("actor", record.get("actor"), split=False)[:ACTORS_KEPT]
    writer = str_list("writer", record.get("writer"), split=False)[:3]
    metadata: dict[str, MetaValue] = {}
    year = record.get("year")
    if isinstance(year, str) and year.strip().isdigit():
        metadata["year"] = int(year.strip())
    elif isinstance(year, int) and not isinstance(year, bool):
        metadata["year"] = year
    people = (("director", director), ("actor", actor), ("writer", writer))
    for key, value in (("genres", genres), *people):
        if value:
            metadata[key] = value
    text = _text(
        name,
        f"genres: {', '.join(genres)}" if genres else "",
        f"director: {', '.join(director)}" if director else "",
        f"actors: {', '.join(actor)}" if actor else "",
        f"writer: {', '.join(writer)}" if writer else "",
    )
    return Item(item_id=item_id, title=name, text=text, metadata=metadata)
