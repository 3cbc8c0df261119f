"""Domain errors of the LLM runtime; the CLI and UI turn them into one-line messages."""


class ModelError(Exception):
    """The LLM could not be found, converted or loaded; its message names the fix."""
