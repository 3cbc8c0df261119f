"""Collaborative filtering from interaction logs: an item-item model and a popularity prior.

    model = fit_cf(load.interactions, method="itemknn")   # or "ease", "als", "bpr"
    model.related(["m0042", "m0007"], k=100)              # items liked by people who liked these
    model.popular(k=100)                                  # most-rated items (cold start)
    model.save(settings.home / "interaction-cf.npz")      # atomic, like the index and collab

Every method is served the same way: a sparse item x item matrix S keeps each item's top
`neighbours` weights, and a set of seed items scores sum_seed S[seed, :]. For EASE that is
exactly its x.B prediction for a user who liked the seeds; for ItemKNN the summed cosine
similarity; for ALS/BPR (the `implicit` library) the cosine similarity of item factors.
A rating below `min_rating` is not a positive (the chat's 👎 arrive as rating 0.0, see
`retrieval.interactions.interactions_from_feedback`); `popular` counts every positive.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from retrieval.errors import RetrievalError
from retrieval.interactions import Interaction

log = logging.getLogger(__name__)

CF_METHODS = ("itemknn", "ease", "als", "bpr")
FORMAT_VERSION = 1


@dataclass
class CFParams:
    method: str = "itemknn"
    min_rating: float = 0.5  # MovieLens' lowest star; > 0 so that 👎 (0.0) is never a positive
    neighbours: int = 200  # kept per item; the serving cost of a seed is one sparse row
    shrink: float = 10.0  # itemknn: cosine / (1 + shrink / co-count) damps rare pairs
    l2: float = 200.0  # ease: the ridge on the Gram matrix
    factors: int = 64  # als / bpr
    iterations: int = 30  # als / bpr
    regularization: float = 0.05  # als / bpr
    seed: int = 0


@dataclass
class InteractionCF:
    """A fitted item-item model over the items seen in the logs."""

    item_ids: list[str]
    weights: sparse.csr_matrix  # item x item, top `neighbours` per row, zero diagonal
    counts: np.ndarray  # positives per item
    params: dict = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {item_id: i for i, item_id in enumerate(self.item_ids)}

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._index

    def scores(self, seed_ids: Iterable[str]) -> dict[str, float]:
        """Every item with a positive weight from the seeds (the seeds themselves left out)."""
        rows = [self._index[s] for s in dict.fromkeys(seed_ids) if s in self._index]
        if not rows:
            return {}
        summed = np.asarray(self.weights[rows].sum(axis=0)).ravel()
        summed[rows] = 0.0
        hit = np.flatnonzero(summed > 0)
        return {self.item_ids[i]: float(summed[i]) for i in hit}

    def related(
        self, seed_ids: Iterable[str], k: int, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The k best-scored items for the seeds, ties by item id."""
        return _top(self.scores(seed_ids), k, exclude)

    def popularity(self) -> dict[str, float]:
        return {i: float(c) for i, c in zip(self.item_ids, self.counts, strict=True) if c > 0}

    def popular(self, k: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The k items with the most positives, ties by item id."""
        return _top(self.popularity(), k, exclude)

    def save(self, path: Path) -> None:
        """Write one .npz file atomically (tmp + os.replace: never a half-written model)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        w = self.weights.tocsr()
        meta = {"version": FORMAT_VERSION, "params": self.params}
        with tmp.open("wb") as f:
            np.savez_compressed(
                f,
                item_ids=np.array(self.item_ids, dtype=str),
                data=w.data.astype(np.float32),
                indices=w.indices,
                indptr=w.indptr,
                counts=self.counts.astype(np.float32),
                meta=np.array(json.dumps(meta)),
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> InteractionCF:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                ids = [str(i) for i in z["item_ids"]]
                n = len(ids)
                weights = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=(n, n))
                counts = np.asarray(z["counts"], dtype=np.float64)
        except FileNotFoundError as e:
            raise RetrievalError(
                f"interaction model {path} not found: run `recochat index --interactions` first"
            ) from e
        except (OSError, ValueError, KeyError) as e:
            raise RetrievalError(f"interaction model {path} is unreadable ({e}): rebuild it") from e
        if meta.get("version") != FORMAT_VERSION:
            raise RetrievalError(f"interaction model {path} has an old format: rebuild it")
        return cls(ids, weights, counts, meta.get("params", {}))


def positives_matrix(
    interactions: Sequence[Interaction], min_rating: float
) -> tuple[sparse.csr_matrix, list[str]]:
    """Binary user x item matrix of positives, and the item ids of its columns (sorted)."""
    pairs = {
        (x.user, x.item_id) for x in interactions if x.rating is None or x.rating >= min_rating
    }
    users = {u: i for i, u in enumerate(sorted({u for u, _ in pairs}))}
    item_ids = sorted({i for _, i in pairs})
    items = {item: i for i, item in enumerate(item_ids)}
    rows = np.array([users[u] for u, _ in pairs], dtype=np.int32)
    cols = np.array([items[i] for _, i in pairs], dtype=np.int32)
    data = np.ones(len(pairs), dtype=np.float32)
    x = sparse.csr_matrix((data, (rows, cols)), shape=(len(users), len(item_ids)))
    return x, item_ids


def fit_cf(interactions: Sequence[Interaction], params: CFParams | None = None) -> InteractionCF:
    """Fit `params.method` on the positives of `interactions`."""
    params = params or CFParams()
    if params.method not in CF_METHODS:
        raise RetrievalError(f"unknown CF method {params.method!r}: use {', '.join(CF_METHODS)}")
    x, item_ids = positives_matrix(interactions, params.min_rating)
    if x.nnz == 0:
        raise RetrievalError("no positive interactions to learn from: check min_rating")
    t0 = time.perf_counter()
    if params.method == "itemknn":
        dense = _itemknn(x, params.shrink)
    elif params.method == "ease":
        dense = _ease(x, params.l2)
    else:
        dense = _factor_similarity(x, params)
    np.fill_diagonal(dense, 0.0)
    weights = _keep_top(dense, params.neighbours)
    counts = np.asarray(x.sum(axis=0)).ravel()
    meta = {**params.__dict__, "users": x.shape[0], "positives": int(x.nnz)}
    meta["fit_seconds"] = round(time.perf_counter() - t0, 3)
    log.info("fitted %s on %d positives in %.1fs", params.method, x.nnz, meta["fit_seconds"])
    return InteractionCF(item_ids, weights, counts, meta)


def _itemknn(x: sparse.csr_matrix, shrink: float) -> np.ndarray:
    co = (x.T @ x).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(co))
    cosine = co / np.maximum(np.outer(norms, norms), 1e-12)
    return cosine * (co / (co + shrink)) if shrink > 0 else cosine


def _ease(x: sparse.csr_matrix, l2: float) -> np.ndarray:
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)
    return np.maximum(weights, 0.0)  # negative weights would only push items down; sparse keeps >0


def _factor_similarity(x: sparse.csr_matrix, params: CFParams) -> np.ndarray:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    if params.method == "als":
        model = AlternatingLeastSquares(
            factors=params.factors,
            iterations=params.iterations,
            regularization=params.regularization,
            random_state=params.seed,
        )
    else:
        model = BayesianPersonalizedRanking(
            factors=params.factors,
            iterations=params.iterations,
            regularization=params.regularization,
            random_state=params.seed,
        )
    with threadpool_limits(1, "blas"):  # implicit warns (and slows) with a threaded BLAS
        model.fit(x, show_progress=False)
    factors = np.asarray(model.item_factors, dtype=np.float64)
    factors /= np.maximum(np.linalg.norm(factors, axis=1, keepdims=True), 1e-12)
    return factors @ factors.T


def _keep_top(dense: np.ndarray, k: int) -> sparse.csr_matrix:
    """Each row's k largest positive entries as a CSR matrix."""
    n = dense.shape[0]
    k = min(k, n)
    if k <= 0 or n == 0:
        return sparse.csr_matrix((n, n))
    top = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(dense, top, axis=1)
    rows = np.repeat(np.arange(n), k)
    keep = values.ravel() > 0
    return sparse.csr_matrix(
        (values.ravel()[keep], (rows[keep], top.ravel()[keep])), shape=(n, n)
    ).astype(np.float32)


def _top(scores: dict[str, float], k: int, exclude: Iterable[str]) -> list[tuple[str, float]]:
    skip = set(exclude)
    ranked = sorted(
        ((i, s) for i, s in scores.items() if i not in skip), key=lambda p: (-p[1], p[0])
    )
    return ranked[: max(k, 0)]
