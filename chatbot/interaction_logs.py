"""Interaction logs of a home: import ratings / views / thumbs, add the chat's 👍/👎, fit CF.

    report = index_interactions(settings, items, Path("ratings.csv"), "ratings-csv")
    report = index_interactions(settings, items, Path("ml/ratings.csv"), "movielens",
                                links=Path("ml/links.csv"), movies=Path("ml/movies.csv"))
    report = index_interactions(settings, items)   # refit: the kept log + today's feedback

An imported log's resolved rows are kept in the home (`interactions-<collection>.jsonl`, the
last import replaces the one before), so a later refit can add new feedback without the file.
Items are keyed by catalog id, by the catalog field `key_field` (default `imdb_id`), then by
"Title (YYYY)" through the one title matcher. Bad rows and unknown items go to the rejects
file and never stop the run. The model is written atomically to `settings.interactions_path`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import InputError
from retrieval.interaction_cf import CFParams, fit_cf
from retrieval.interactions import (
    RATING_FORMATS,
    Interaction,
    ItemKeys,
    interactions_from_feedback,
    load_interactions,
    load_movielens,
)
from retrieval.titles import TitleIndex, catalog_popularity
from retrieval.types import Item

log = logging.getLogger(__name__)


@dataclass
class InteractionReport:
    rows: int = 0  # interactions the model was fitted on (log + feedback)
    from_log: int = 0
    from_feedback: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # bad_row, unknown_item, ...
    rejects_path: Path | None = None
    method: str = ""
    items: int = 0  # items with at least one positive
    seconds: float = 0.0

    def summary(self) -> str:
        rejected = self.counts.get("bad_row", 0) + self.counts.get("unknown_item", 0)
        line = (
            f"learned {self.method} interaction CF from {self.rows} interactions "
            f"({self.from_log} from the log, {self.from_feedback} from feedback) over "
            f"{self.items} items, took {self.seconds:.1f} s"
        )
        if rejected:
            line += (
                f"\nrejected {self.counts.get('bad_row', 0)} bad rows and "
                f"{self.counts.get('unknown_item', 0)} unknown items, written to "
                f"{self.rejects_path}"
            )
        return line


def kept_log_path(settings: Any) -> Path:
    return settings.home / f"interactions-{settings.retrieval.collection}.jsonl"


def index_interactions(
    settings: Any,
    items: list[Item],
    path: Path | None = None,
    fmt: str = "ratings-csv",
    *,
    links: Path | None = None,
    movies: Path | None = None,
    key_field: str = "imdb_id",
    rejects: Path | None = None,
) -> InteractionReport | None:
    """Import `path` (if given), add the feedback store's 👍/👎, fit CF and save it; None when
    there is nothing to learn from (no log now or kept, no feedback)."""
    report = InteractionReport()
    logged: list[Interaction] = []
    if path is not None:
        logged, report = _import(items, path, fmt, links, movies, key_field, rejects, report)
        _keep(kept_log_path(settings), logged)
    elif kept_log_path(settings).is_file():
        logged = _read_kept(kept_log_path(settings))
    feedback = _feedback(settings)
    if not logged and not feedback:
        return None
    r = settings.retrieval
    params = CFParams(method=r.cf_method, min_rating=r.cf_min_rating)
    started = time.perf_counter()
    model = fit_cf([*logged, *feedback], params)
    model.save(settings.interactions_path)
    report.rows = len(logged) + len(feedback)
    report.from_log, report.from_feedback = len(logged), len(feedback)
    report.method = r.cf_method
    report.items = len(model.popularity())
    report.seconds = time.perf_counter() - started
    log.info("interaction CF: %s", report.summary())
    return report


def _import(
    items: list[Item],
    path: Path,
    fmt: str,
    links: Path | None,
    movies: Path | None,
    key_field: str,
    rejects: Path | None,
    report: InteractionReport,
) -> tuple[list[Interaction], InteractionReport]:
    if fmt not in RATING_FORMATS:
        raise InputError(f"unknown ratings format {fmt!r}: use one of {', '.join(RATING_FORMATS)}")
    titles = TitleIndex(items, catalog_popularity(items))
    keys = ItemKeys.from_items(items, field=key_field or None, title_lookup=titles.lookup)
    if RATING_FORMATS[fmt] == "movielens":
        links = links or path.with_name("links.csv")
        if movies is None and path.with_name("movies.csv").is_file():
            movies = path.with_name("movies.csv")
        load = load_movielens(path, links, keys, movies=movies, rejects_path=rejects)
    else:
        load = load_interactions(path, keys, RATING_FORMATS[fmt], rejects_path=rejects)
    report.counts = load.counts
    report.rejects_path = rejects if load.rejects else None
    return load.interactions, report


def _feedback(settings: Any) -> list[Interaction]:
    if not settings.retrieval.cf_feedback or not settings.feedback_db.is_file():
        return []
    from chatbot.serving.feedback import FeedbackStore

    with FeedbackStore(settings.feedback_db) as store:
        return interactions_from_feedback(store.rows())


def _keep(path: Path, rows: list[Interaction]) -> None:
    """Write the resolved log atomically (tmp + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps([row.user, row.item_id, row.rating, row.timestamp]) + "\n")
    os.replace(tmp, path)


def _read_kept(path: Path) -> list[Interaction]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            user, item_id, rating, ts = json.loads(line)
            out.append(Interaction(user, item_id, rating, ts))
    return out
