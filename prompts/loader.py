"""Prompt files from `prompts/`, loaded as LangChain templates and checked once."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from langchain_core.prompts import PromptTemplate

from prompts.errors import PromptError

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
OPTIONAL_VARIABLES: dict[str, frozenset[str]] = {
    "score": frozenset({"about"}),
    "reason_fallback": frozenset({"link_phrase"}),
}
# `reason_links.toml`: one phrase per link kind (chatbot/reply/credit_links.py) and the variables it uses.
LINK_PHRASE_VARIABLES: dict[str, frozenset[str]] = {
    "director": frozenset({"name", "seed"}),
    "star": frozenset({"name", "seed"}),
    "actor": frozenset({"name", "seed"}),
    "cooc": frozenset({"seed"}),
    "genres": frozenset({"name", "seed"}),
}


def bundled_prompt_dir() -> Path:
    import prompts

    return Path(prompts.__file__).parent


@lru_cache(maxsize=64)
def load_template(role: str, filename: str | None = None, directory: Path | None = None):
    """Load the prompt file for `role` (default file: `<role>.txt`) and validate its variables."""
    path = (directory or bundled_prompt_dir()) / (filename or f"{role}.txt")
    if not path.is_file():
        raise PromptError(f"prompt file {path} not found: fix prompts.dir or restore the file")
    template = PromptTemplate.from_template(path.read_text(encoding="utf-8").strip())
    expected = ROLE_VARIABLES[role]
    optional = OPTIONAL_VARIABLES.get(role, frozenset())
    got = frozenset(template.input_variables)
    if not expected <= got <= expected | optional:
        allowed = f" (may also use {sorted(optional)})" if optional else ""
        raise PromptError(
            f"prompt {path} uses variables {sorted(got)} but needs exactly {sorted(expected)}"
            f"{allowed}: edit the file"
        )
    return template


def render(role: str, filename: str | None = None, directory: Path | None = None, **values) -> str:
    template = load_template(role, filename, directory)
    return template.format(**{k: v for k, v in values.items() if k in template.input_variables})


@lru_cache(maxsize=16)
def load_link_phrases(directory: Path | None = None) -> dict[str, PromptTemplate]:
    """The link phrases of `reason_links.toml`, one template per link kind, checked once.
    A prompt directory without the file (one written before links existed) uses the bundled one.
    """
    path = (directory or bundled_prompt_dir()) / "reason_links.toml"
    if directory is not None and not path.is_file():
        path = bundled_prompt_dir() / "reason_links.toml"
    if not path.is_file():
        raise PromptError(f"prompt file {path} not found: fix prompts.dir or restore the file")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise PromptError(f"prompt file {path} is not valid TOML ({e}): edit the file") from e
    # A kind added after a custom file was written takes the bundled phrase.
    bundled = bundled_prompt_dir() / "reason_links.toml"
    if path.resolve() != bundled.resolve():
        table = {**tomllib.loads(bundled.read_text(encoding="utf-8")), **table}
    out = {}
    for kind, variables in LINK_PHRASE_VARIABLES.items():
        text = table.get(kind)
        if not isinstance(text, str):
            raise PromptError(f"prompt file {path} needs a text value for {kind!r}: edit the file")
        template = PromptTemplate.from_template(text)
        if frozenset(template.input_variables) != variables:
            raise PromptError(
                f"prompt file {path}: {kind!r} uses {sorted(template.input_variables)} but "
                f"needs exactly {sorted(variables)}: edit the file"
            )
        out[kind] = template
    return out


# The TOML prompt files of the conversation (issue #16): file -> {key: variables it must use}.
# `None`: the file's keys are its own (e.g. one sentence shape per key), each checked by its user.
TOML_PROMPTS: dict[str, dict[str, frozenset[str]] | None] = {
    "conversation.toml": {
        "greeting": frozenset(),
        "greeting_again": frozenset(),
        "thanks_bye": frozenset(),
        "which_one": frozenset(),
        "unknown_title": frozenset(),
        "why": frozenset({"title", "reason"}),
        "why_unknown": frozenset(),
    },
    "reply_fallback.toml": {
        "answer": frozenset({"answer"}),
        "picks": frozenset({"picks"}),
        "question": frozenset(),
        "no_picks": frozenset(),
    },
    "card_reasons.toml": None,
    "answers.toml": None,
    "dialogue_acts.toml": None,
}


def prompt_path(name: str, directory: Path | None = None) -> Path:
    """`name` in the configured prompt dir, else the bundled one (a dir written before the
    file existed has none of it)."""
    path = (directory or bundled_prompt_dir()) / name
    if directory is not None and not path.is_file():
        path = bundled_prompt_dir() / name
    if not path.is_file():
        raise PromptError(f"prompt file {path} not found: fix prompts.dir or restore the file")
    return path


@lru_cache(maxsize=32)
def load_toml(name: str, directory: Path | None = None) -> dict:
    """A registered TOML prompt file (`TOML_PROMPTS`), parsed and, where registered, each
    key checked to be text using exactly its variables."""
    if name not in TOML_PROMPTS:
        raise PromptError(f"{name} is not a registered prompt file: add it to TOML_PROMPTS")
    path = prompt_path(name, directory)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise PromptError(f"prompt file {path} is not valid TOML ({e}): edit the file") from e
    for key, variables in (TOML_PROMPTS[name] or {}).items():
        text = table.get(key)
        if not isinstance(text, str):
            raise PromptError(f"prompt file {path} needs a text value for {key!r}: edit the file")
        got = frozenset(PromptTemplate.from_template(text).input_variables)
        if got != variables:
            raise PromptError(
                f"prompt file {path}: {key!r} uses {sorted(got)} but needs exactly "
                f"{sorted(variables)}: edit the file"
            )
    return table


def toml_templates(name: str, directory: Path | None = None) -> dict[str, PromptTemplate]:
    """The registered keys of a TOML prompt file as templates."""
    table = load_toml(name, directory)
    return {k: PromptTemplate.from_template(table[k]) for k in TOML_PROMPTS[name] or table}
