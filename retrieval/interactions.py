"""Read interaction logs (ratings, views, thumbs) and map their items onto catalog ids.

    keys = ItemKeys.from_items(items, field="imdb_id", title_lookup=TitleIndex(items).lookup)
    load = load_interactions(Path("ratings.csv"), keys, rejects_path=Path("rejects.jsonl"))
    load = load_movielens(Path("ml/ratings.csv"), Path("ml/links.csv"), keys,
                          movies=Path("ml/movies.csv"))
    print(len(load.interactions), load.counts)

Rows are `user, item, [rating], [timestamp]`, as CSV with a header or as JSONL objects. The
item is matched, in order, as a catalog id, as a value of a catalog metadata field (e.g.
`imdb_id`), then as a title with an optional "(YYYY)" year through the title matcher passed in
(MovieLens writes "American President, The (1995)"). A bad row or an unknown item becomes a
`Reject` (counted, and written to `rejects_path`) and never stops the load; only a missing or
unreadable file raises `InteractionError`. This module knows nothing about models: see
`retrieval.interaction_cf` for what is learned from the rows.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.catalog import write_rejects
from retrieval.errors import RetrievalError
from retrieval.types import Item, Reject

log = logging.getLogger(__name__)

INTERACTION_FORMATS = ("csv", "jsonl", "movielens")
# `recochat index --interactions-format` values that are rating logs (the others: dialogues).
RATING_FORMATS = {"ratings-csv": "csv", "ratings-jsonl": "jsonl", "movielens": "movielens"}
# Accepted column names, first match wins (MovieLens, common exports, our own schema).
USER_COLUMNS = ("user", "user_id", "userId", "session_id")
ITEM_COLUMNS = ("item", "item_id", "movieId", "imdb_id", "title")
RATING_COLUMNS = ("rating", "score", "value")
TIME_COLUMNS = ("timestamp", "ts", "time")
_RAW_CHARS = 500

TitleLookup = Callable[[str], str | None]


class InteractionError(RetrievalError):
    """An interaction log that cannot be read at all (missing, empty, no usable header)."""


@dataclass(frozen=True)
class Interaction:
    """One user's contact with one catalog item; `rating` None = implicit (seen, clicked)."""

    user: str
    item_id: str
    rating: float | None = None
    timestamp: float | None = None


@dataclass
class InteractionLoad:
    interactions: list[Interaction] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # rows, loaded, bad_row, unknown_item

    def reject(self, line: int, kind: str, reason: str, raw: Any) -> None:
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str)
        self.rejects.append(Reject(line=line, reason=reason, raw=text[:_RAW_CHARS]))
        self.counts[kind] += 1


@dataclass
class ItemKeys:
    """Resolve a log's item key to a catalog id: id, then a metadata field, then title+year."""

    ids: frozenset[str]
    by_field: dict[str, str] = field(default_factory=dict)
    title_lookup: TitleLookup | None = None

    @classmethod
    def from_items(
        cls,
        items: Iterable[Item],
        *,
        field: str | None = None,
        extra: Mapping[str, str] | None = None,
        title_lookup: TitleLookup | None = None,
    ) -> ItemKeys:
        """Keys from the catalog; `field` names a metadata field (e.g. "imdb_id") whose values
        also identify items; `extra` adds key → item id pairs read elsewhere."""
        items = list(items)
        by_field: dict[str, str] = {}
        if field:
            for item in items:
                value = item.metadata.get(field)
                if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                    by_field.setdefault(str(value).strip(), item.item_id)
        for key, item_id in (extra or {}).items():
            by_field.setdefault(str(key).strip(), item_id)
        return cls(frozenset(it.item_id for it in items), by_field, title_lookup)

    def resolve(self, key: str) -> str | None:
        key = key.strip()
        if not key:
            return None
        if key in self.ids:
            return key
        if key in self.by_field:
            return self.by_field[key]
        if self.title_lookup is not None and any(c.isalpha() for c in key):
            return self.title_lookup(key)
        return None


def load_interactions(
    path: Path,
    keys: ItemKeys,
    fmt: str | None = None,
    *,
    rejects_path: Path | None = None,
) -> InteractionLoad:
    """Every readable, resolvable row of a CSV or JSONL log (`fmt` None: from the suffix)."""
    text = _read_text(Path(path))
    fmt = fmt or ("jsonl" if Path(path).suffix.lower() == ".jsonl" else "csv")
    if fmt not in ("csv", "jsonl"):
        raise InteractionError(f"unknown interactions format {fmt!r}: use csv or jsonl")
    rows = _jsonl_rows(text) if fmt == "jsonl" else _csv_rows(text, Path(path))
    return _finish(_convert(rows, keys.resolve), path, rejects_path)


def load_movielens(
    ratings: Path,
    links: Path,
    keys: ItemKeys,
    *,
    movies: Path | None = None,
    rejects_path: Path | None = None,
) -> InteractionLoad:
    """MovieLens `ratings.csv`, with `links.csv` turning movieId into "tt" + 7-digit imdbId
    (looked up through `keys`, e.g. built with field="imdb_id"); with `movies.csv`, a movie
    whose imdb id is unknown is tried by its "Title (YYYY)" through the title matcher."""
    imdb: dict[str, str] = {}
    for _, row in _csv_rows(_read_text(Path(links)), Path(links), need_user=False):
        if isinstance(row, dict) and str(row.get("imdbId", "")).strip().isdigit():
            imdb[str(row["movieId"]).strip()] = f"tt{int(row['imdbId']):07d}"
    titles: dict[str, str] = {}
    if movies is not None:
        for _, row in _csv_rows(_read_text(Path(movies)), Path(movies), need_user=False):
            if isinstance(row, dict) and row.get("title"):
                titles[str(row["movieId"]).strip()] = str(row["title"])
    resolved: dict[str, str | None] = {}

    def resolve(movie_id: str) -> str | None:
        if movie_id not in resolved:
            found = keys.resolve(imdb[movie_id]) if movie_id in imdb else None
            if found is None and movie_id in titles and keys.title_lookup is not None:
                found = keys.title_lookup(titles[movie_id])
            resolved[movie_id] = found
        return resolved[movie_id]

    rows = _csv_rows(_read_text(Path(ratings)), Path(ratings))
    return _finish(_convert(rows, resolve), ratings, rejects_path)


def interactions_from_feedback(rows: Iterable[Any]) -> list[Interaction]:
    """The chat's own 👍/👎 as interactions: user = session, rating 1.0 (up/accept) or 0.0
    (down/reject, a negative the CF fit drops from the positives). Reads `session_id`,
    `item_id`, `signal` or `accepted`, and `ts` of `chatbot.serving.feedback.FeedbackRow`-like rows;
    the latest signal per (session, item) wins."""
    latest: dict[tuple[str, str], Interaction] = {}
    for row in rows:
        accepted = getattr(row, "accepted", None)
        if accepted is None:
            accepted = getattr(row, "signal", "") in ("up", "accept")
        key = (str(row.session_id), str(row.item_id))
        latest[key] = Interaction(key[0], key[1], 1.0 if accepted else 0.0, float(row.ts))
    return list(latest.values())


# ---- reading -------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InteractionError(f"interactions file {path} not found: pass an existing file")
    data = path.read_bytes()
    if not data.strip():
        raise InteractionError(f"interactions file {path} is empty: pass a non-empty log")
    return data.decode("utf-8-sig", errors="replace")


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            yield number, f"bad JSON: {e.msg}\t{line}"
            continue
        yield number, row if isinstance(row, dict) else f"not a JSON object\t{line}"


def _csv_rows(
    text: str, path: Path, *, need_user: bool = True
) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as e:
        raise InteractionError(f"interactions file {path} has no CSV header: add one") from e
    if need_user and not any(h in header for h in USER_COLUMNS):
        raise InteractionError(
            f"interactions file {path} has no user column (columns: {', '.join(header)}): "
            f"name it one of {', '.join(USER_COLUMNS)}"
        )
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield reader.line_num, f"bad CSV: {e}\t"
            continue
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            line = ",".join(cells)
            yield reader.line_num, f"row has {len(cells)} cells, header {len(header)}\t{line}"
            continue
        yield reader.line_num, dict(zip(header, cells, strict=True))


def _pick(row: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in row and row[name] not in (None, ""):
            return row[name]
    return None


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {value!r}"[:200]) from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


def _convert(
    rows: Iterable[tuple[int, dict[str, Any] | str]], resolve: Callable[[str], str | None]
) -> InteractionLoad:
    load = InteractionLoad()
    for line, row in rows:
        load.counts["rows"] += 1
        if isinstance(row, str):
            reason, _, raw = row.partition("\t")
            load.reject(line, "bad_row", reason, raw)
            continue
        user, key = _pick(row, USER_COLUMNS), _pick(row, ITEM_COLUMNS)
        try:
            if user is None or not str(user).strip():
                raise ValueError("missing user")
            if key is None or not str(key).strip():
                raise ValueError("missing item")
            rating = _number(_pick(row, RATING_COLUMNS), "rating")
            timestamp = _number(_pick(row, TIME_COLUMNS), "timestamp")
        except ValueError as e:
            load.reject(line, "bad_row", str(e), row)
            continue
        item_id = resolve(str(key))
        if item_id is None:
            load.reject(line, "unknown_item", f"item {str(key)[:100]!r} is not in the catalog", row)
            continue
        load.interactions.append(Interaction(str(user).strip(), item_id, rating, timestamp))
        load.counts["loaded"] += 1
    return load


def _finish(load: InteractionLoad, path: Path, rejects_path: Path | None) -> InteractionLoad:
    if load.rejects:
        log.warning(
            "interactions %s: %d bad rows, %d unknown items",
            path,
            load.counts["bad_row"],
            load.counts["unknown_item"],
        )
        if rejects_path is not None:
            write_rejects(load.rejects, Path(rejects_path))
    return load
