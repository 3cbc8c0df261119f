"""Index a catalog (and optional interaction logs) into the configured store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatbot.config import Settings
from chatbot.interaction_logs import RATING_FORMATS, InteractionReport, index_interactions
from retrieval.catalog import FieldMap, load_catalog
from retrieval.collab import CollabSignals
from retrieval.errors import CatalogError


@dataclass
class IndexReport:
    indexed: int
    added: int
    updated: int
    deleted: int
    unchanged: int
    rejected: int
    duplicates: int
    seconds: float
    rejects_path: Path | None
    collab_turns: int = 0
    interactions: InteractionReport | None = None

    def summary(self) -> str:
        lines = [
            f"indexed {self.indexed} items (added {self.added}, updated {self.updated}, "
            f"deleted {self.deleted}, unchanged {self.unchanged}), rejected {self.rejected}, "
            f"duplicate ids {self.duplicates}, took {self.seconds:.1f} s"
        ]
        if self.rejected and self.rejects_path:
            lines.append(f"rejected rows written to {self.rejects_path}")
        if self.collab_turns:
            lines.append(f"learned popularity/co-occurrence from {self.collab_turns} turns")
        if self.interactions is not None:
            lines.append(self.interactions.summary())
        return "\n".join(lines)


def field_map(settings: Settings) -> FieldMap:
    c = settings.catalog
    return FieldMap(
        id_field=c.id_field,
        title_field=c.title_field,
        text_fields=c.text_fields,
        metadata_fields=c.metadata_fields,
        genre_field=c.genre_field,
        year_field=c.year_field,
        popularity_field=c.popularity_field,
    )


def open_store(settings: Settings):
    from inference import compute_thread
    from retrieval.embeddings import load_embedder
    from retrieval.store import ItemStore

    embedder = load_embedder(settings.retrieval.embedder, run=compute_thread.run)
    return ItemStore(
        settings.chroma_location,
        settings.retrieval.collection,
        embedder,
        exact_search_max_items=settings.retrieval.exact_search_max_items,
    )


def index_catalog(
    settings: Settings,
    path: Path,
    *,
    fmt: str | None = None,
    rejects: Path | None = None,
    interactions: Path | None = None,
    interactions_format: str = "jsonl",
    links: Path | None = None,
    movies: Path | None = None,
    interactions_key: str = "imdb_id",
    progress: bool = True,
    store=None,
) -> IndexReport:
    """Sync the catalog into the store; learn collab signals from a dialogue log, or interaction
    CF from a ratings log (`interactions_format` in RATING_FORMATS) plus the chat's 👍/👎."""
    settings.home.mkdir(parents=True, exist_ok=True)
    rejects = rejects or settings.home / "rejects.jsonl"
    loaded = load_catalog(path, fmt, field_map(settings), rejects_path=rejects)
    if not loaded.items:  # never replace a working index with nothing
        raise CatalogError(
            f"no valid rows in {path} ({len(loaded.rejects)} rejected, see {rejects}): "
            "check the file's format (--format) and encoding (UTF-8)"
        )
    store = store or open_store(settings)
    sync = store.sync(loaded.items, progress=progress)
    collab = CollabSignals.from_catalog(loaded.items)
    n_turns = 0
    ratings = interactions if interactions_format in RATING_FORMATS else None
    if interactions and ratings is None:
        from dialogues.importers import load_rec_turns

        turns, _ = load_rec_turns(interactions, interactions_format)
        title_to_id = {it.title: it.item_id for it in loaded.items}
        from retrieval.entity_cooc import learn_entity_cooc
        from retrieval.entity_links import EntityLinker

        entities = learn_entity_cooc(turns, EntityLinker(loaded.items), title_to_id)
        collab = CollabSignals.from_turns(turns, title_to_id).with_entities(entities).merge(collab)
        n_turns = len(turns)
    collab.save(settings.collab_path)
    cf_report = index_interactions(
        settings,
        loaded.items,
        ratings,
        interactions_format,
        links=links,
        movies=movies,
        key_field=interactions_key,
        rejects=settings.home / "interaction-rejects.jsonl",
    )
    return IndexReport(
        indexed=len(loaded.items),
        added=sync.added,
        updated=sync.updated,
        deleted=sync.deleted,
        unchanged=sync.unchanged,
        rejected=len(loaded.rejects),
        duplicates=len(loaded.duplicate_ids),
        seconds=sync.seconds,
        rejects_path=rejects if loaded.rejects else None,
        collab_turns=n_turns,
        interactions=cf_report,
    )
