"""Domain errors of the prompt files; the CLI and UI turn them into one-line messages."""


class PromptError(Exception):
    """A prompt file is missing or uses the wrong variables; its message names the fix."""
