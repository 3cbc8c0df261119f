"""Domain errors of the chatbot package; the CLI and UI turn them into one-line messages."""


class RecochatError(Exception):
    """Base class: a problem the user can fix; its message names the fix."""


class ConfigError(RecochatError):
    """A setting is missing or invalid."""


class ModelError(RecochatError):
    """The LLM could not be found, converted or loaded."""


class InputError(RecochatError):
    """A user message cannot be processed (empty, too long, not text)."""


class NotIndexedError(RecochatError):
    """No catalog has been indexed yet."""
