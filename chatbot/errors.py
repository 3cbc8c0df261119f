"""Domain errors of the chatbot package; the CLI and UI turn them into one-line messages."""

from inference.errors import ModelError
from prompts.errors import PromptError
from retrieval.errors import RetrievalError


class RecochatError(Exception):
    """Base class: a problem the user can fix; its message names the fix."""


class ConfigError(RecochatError):
    """A setting is missing or invalid."""


class InputError(RecochatError):
    """A user message cannot be processed (empty, too long, not text)."""


class NotIndexedError(RecochatError):
    """No catalog has been indexed yet."""


# Every error a user can fix, from this package and the layers below it: the edges (CLI, UI,
# `recochat eval`/`finetune`) turn these into one line; anything else is a bug.
USER_ERRORS: tuple[type[Exception], ...] = (RecochatError, ModelError, PromptError, RetrievalError)
