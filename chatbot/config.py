"""Settings: defaults -> TOML file -> RECOCHAT_* env vars -> CLI flags, validated once.

Env vars use `__` for nesting, e.g. `RECOCHAT_LLM__ADAPTER=runs/adapter`,
`RECOCHAT_RETRIEVAL__K_FINAL=5`. The TOML file is `recochat.toml` in the working dir or the
path in `RECOCHAT_CONFIG`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from chatbot.errors import ConfigError
from inference.settings import LLMSettings

BUILTIN_EMBEDDER = "builtin:all-minilm-l6-v2"
BATCHED_CONCURRENCY = 16  # turns at once with llm.batching: replies share decoding steps


class RetrievalSettings(BaseModel):
    embedder: str = Field(
        BUILTIN_EMBEDDER,
        description="Sentence-transformers model: 'builtin:all-minilm-l6-v2' or a local model dir.",
    )
    chroma: str = Field(
        "",
        description="Chroma location: empty = embedded store under the home dir; a path; or "
        "'http://host:port' for a Chroma server.",
    )
    collection: str = Field("items", description="Chroma collection name (letters, digits, _-.).")
    k_candidates: int = Field(20, description="Candidates shown to the LLM reranker.", ge=1, le=26)
    k_retrieve: int = Field(100, description="Items pulled from each retrieval signal.", ge=1)
    k_final: int = Field(5, description="Recommendations returned per turn.", ge=1, le=26)
    diversity: float = Field(
        0.0, description="MMR diversity in [0, 1]: 0 = pure relevance, higher = more varied lists."
    )
    dense_weight: float = Field(1.0, description="Fusion weight of dialogue-text similarity.")
    liked_weight: float = Field(1.0, description="Fusion weight of similarity to liked items.")
    cooc_weight: float = Field(1.0, description="Fusion weight of item co-occurrence in logs.")
    popularity_weight: float = Field(0.3, description="Fusion weight of popularity.")
    credits_weight: float = Field(
        1.0, description="Fusion weight of shared directors/stars with the liked items."
    )
    interactions_weight: float = Field(
        0.0,
        description="Fusion weight of item-item CF learned from interaction logs (ratings, "
        "👍/👎) and seeded by the liked items; 0 = off. Needs `recochat index --interactions`.",
    )
    rated_weight: float = Field(
        0.0,
        description="Fusion weight of the interaction logs' positives per item (a popularity "
        "prior for cold start); 0 = off.",
    )
    cf_method: Literal["itemknn", "ease", "als", "bpr"] = Field(
        "ease",
        description="Item-item model `recochat index --interactions` fits: EASE (best on ReDial "
        "dev), ItemKNN cosine, or ALS/BPR factors (the `implicit` library).",
    )
    cf_min_rating: float = Field(
        0.5,
        description="Ratings below this are not positives (a 👎 is 0.0, never a positive).",
    )
    cf_feedback: bool = Field(
        True,
        description="Add the chat's own 👍/👎 (the feedback store) to the logs CF learns from.",
    )
    ranker: Path | None = Field(
        None,
        description="Folder of a learned ranker (`recochat fit-ranker --out DIR`) ordering the "
        "union of every signal's top N; unset = weighted RRF of the weights above.",
    )
    exact_search_max_items: int = Field(
        10_000,
        description="Dense search is exact (deterministic, ties by id) up to this many items, "
        "Chroma's approximate HNSW above; 0 = always HNSW.",
        ge=0,
    )
    entities_weight: float = Field(
        0.0,
        description="Fusion weight of items recommended in logged dialogues after the people, "
        "genres and titles named (0 = off; on for attribute talk such as OpenDialKG).",
    )
    query_window: int = Field(
        0,
        description="Dense query from the last N utterances of both sides (0 = the last 3 "
        "user utterances).",
        ge=0,
    )


class CatalogSettings(BaseModel):
    id_field: str = Field("id", description="Field holding the unique item id.")
    title_field: str = Field("title", description="Field holding the item title.")
    text_fields: list[str] = Field(
        default_factory=lambda: ["title", "description", "genres", "tags"],
        description="Fields joined into the embedded document text.",
    )
    metadata_fields: list[str] = Field(
        default_factory=lambda: ["year", "genres", "tags", "rating", "runtime_min", "popularity"],
        description="Fields stored as filterable metadata (scalars or lists of strings).",
    )
    genre_field: str = Field("genres", description="Field holding genres/categories (a list).")
    year_field: str = Field("year", description="Field holding a year, for year constraints.")
    popularity_field: str = Field(
        "popularity", description="Numeric popularity field for cold-start ranking ('' = none)."
    )


class PromptSettings(BaseModel):
    dir: Path | None = Field(None, description="Folder of prompt files; default: the bundled ones.")
    rerank: str = Field("rerank.txt", description="Reranker prompt template file.")
    reason: str = Field("reason.txt", description="Reason prompt template file.")
    score: str = Field("score.txt", description="Pointwise reranker prompt template file.")


class ServerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Interface to bind; 127.0.0.1 keeps it local.")
    port: int = Field(7860, description="Port of the Gradio server.")
    auth: str = Field("", description="'user:pass' or a path to a file of user:pass lines.")
    concurrency: int | None = Field(
        None,
        description="Turns run at once. Unset: 2 (the model is shared and serialises its "
        "forward passes), or 16 with llm.batching (concurrent replies decode as one batch).",
        ge=1,
    )
    max_queue: int = Field(64, description="Queued requests before new ones are refused.", ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RECOCHAT_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(
        Path(".recochat"),
        description="Data dir: Chroma store, model cache, sessions, feedback DB.",
    )
    llm: LLMSettings = Field(default_factory=LLMSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    max_message_chars: int = Field(2000, description="Longer messages are refused.", ge=1)
    max_history_turns: int = Field(40, description="Utterances kept in a session's context.")
    reasons: bool = Field(
        True,
        description="Card reasons from the item's own description, facts and true link to the "
        "user's titles. Off: the plain template (facts plus the link). Neither costs LLM time.",
    )

    @field_validator("retrieval")
    @classmethod
    def _check_retrieval(cls, v: RetrievalSettings) -> RetrievalSettings:
        if not 0.0 <= v.diversity <= 1.0:
            raise ValueError("set retrieval.diversity between 0 and 1")
        if v.k_final > v.k_candidates:
            raise ValueError("set retrieval.k_final <= retrieval.k_candidates")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("RECOCHAT_CONFIG", "recochat.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @property
    def turns_at_once(self) -> int:
        """`server.concurrency`, or its default: 2, or 16 with `llm.batching`."""
        if self.server.concurrency is not None:
            return self.server.concurrency
        return BATCHED_CONCURRENCY if self.llm.batching else 2

    # Derived locations -------------------------------------------------------------
    @property
    def chroma_location(self) -> str:
        return self.retrieval.chroma or str(self.home / "chroma")

    @property
    def model_cache(self) -> Path:
        return self.home / "models"

    @property
    def feedback_db(self) -> Path:
        return self.home / "feedback.sqlite3"

    @property
    def collab_path(self) -> Path:
        return self.home / f"collab-{self.retrieval.collection}.json"

    @property
    def interactions_path(self) -> Path:
        """The interaction CF model (`retrieval.interaction_cf`), written by `recochat index`."""
        return self.home / f"interactions-{self.retrieval.collection}.npz"


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Build settings; `overrides` (from CLI flags) win over env and TOML.

    Nested keys use dots: {"llm.adapter": "runs/a"}. None values are ignored.
    """
    nested: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = nested
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    config_file = os.environ.get("RECOCHAT_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"config file {config_file} not found: fix RECOCHAT_CONFIG or create it")
    try:
        return _merge_init(nested)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None


def _merge_init(nested: dict[str, Any]) -> Settings:
    # Nested init kwargs replace whole sub-models, so merge them over env/TOML values first.
    base = Settings()
    merged = base.model_dump()
    for section, values in nested.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section].update(values)
        else:
            merged[section] = values
    return Settings(**merged)
