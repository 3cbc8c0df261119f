"""Prompt files from `prompts/`, loaded as LangChain templates and checked once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from langchain_core.prompts import PromptTemplate

from chatbot.errors import ConfigError

# Variables each prompt role must use: a missing or extra one is a configuration error.
ROLE_VARIABLES: dict[str, frozenset[str]] = {
    "system": frozenset(),
    "rerank": frozenset({"conversation", "candidates"}),
    "score": frozenset({"conversation", "candidate", "evidence"}),
    "reason": frozenset({"user_words", "facts"}),
    "reason_fallback": frozenset({"title", "genres", "year_phrase", "match_phrase"}),
    "naive_recommend": frozenset({"conversation"}),
}
# Variables a prompt file of the role may also use (the caller always supplies them).
OPTIONAL_VARIABLES: dict[str, frozenset[str]] = {"score": frozenset({"about"})}


def bundled_prompt_dir() -> Path:
    import prompts

    return Path(prompts.__file__).parent


@lru_cache(maxsize=64)
def load_template(role: str, filename: str | None = None, directory: Path | None = None):
    """Load the prompt file for `role` (default file: `<role>.txt`) and validate its variables."""
    path = (directory or bundled_prompt_dir()) / (filename or f"{role}.txt")
    if not path.is_file():
        raise ConfigError(f"prompt file {path} not found: fix prompts.dir or restore the file")
    template = PromptTemplate.from_template(path.read_text(encoding="utf-8").strip())
    expected = ROLE_VARIABLES[role]
    optional = OPTIONAL_VARIABLES.get(role, frozenset())
    got = frozenset(template.input_variables)
    if not expected <= got <= expected | optional:
        allowed = f" (may also use {sorted(optional)})" if optional else ""
        raise ConfigError(
            f"prompt {path} uses variables {sorted(got)} but needs exactly {sorted(expected)}"
            f"{allowed}: edit the file"
        )
    return template


def render(role: str, filename: str | None = None, directory: Path | None = None, **values) -> str:
    template = load_template(role, filename, directory)
    return template.format(**{k: v for k, v in values.items() if k in template.input_variables})
