"""Domain errors of the retrieval package."""


class RetrievalError(Exception):
    """Base class: a retrieval problem the user can fix; its message names the fix."""


class CatalogError(RetrievalError):
    """The catalog file is missing, empty, or unreadable as a whole."""


class EmbedderError(RetrievalError):
    """The embedding model could not be found or loaded."""


class RetrievalUnavailable(RetrievalError):
    """The vector store cannot be reached (e.g. the Chroma server is down)."""
