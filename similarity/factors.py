"""Low-rank user factors: each user as a short dense vector learned from everyone's evidence.

A factorization learns which courses go together from all users at once, so two users who took
different courses on the same topic can still be close, which a neighbourhood model (one column
per course) cannot see. Fitting is pure math over a sparse matrix; the libraries that fit are
imported when a model is built, never when this module is (the server imports the registry).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

METHODS = ("als", "svd")
# The settings `factorize` takes; a model's other settings are its weighting.
SETTINGS = ("method", "factors", "regularization", "alpha", "iterations", "seed")


def factorize(
    values: sp.csr_matrix,
    method: str = "als",
    factors: int = 64,
    regularization: float = 0.01,
    alpha: float = 1.0,
    iterations: int = 15,
    seed: int = 0,
) -> np.ndarray:
    """Return the user factors (users × factors, float32) of weighted evidence (users × items)."""
    return fit(values, method, factors, regularization, alpha, iterations, seed)[0]


def fit(
    values: sp.csr_matrix,
    method: str = "als",
    factors: int = 64,
    regularization: float = 0.01,
    alpha: float = 1.0,
    iterations: int = 15,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the user factors and the item factors (items × factors) of weighted evidence.

    ``als``: implicit's alternating least squares for implicit feedback, the values being the
    confidences (times ``alpha``), ``regularization`` and ``iterations`` as implicit takes them.
    ``svd``: scikit-learn's truncated SVD (randomized, ``iterations`` power iterations); a user's
    factors are their row projected on the components. Users without evidence get all-zero rows.
    The same values and seed give the same factors, however the entries of each row are ordered.
    """
    if method not in METHODS:
        raise ValueError(f"unknown factorization {method!r}; known: {', '.join(METHODS)}")
    if factors < 1:
        raise ValueError(f"factors must be at least 1, got {factors}")
    values = sp.csr_matrix(values, dtype=np.float32, copy=True)
    values.sum_duplicates()  # canonical: sorted columns in each row, so sums run in one order
    if values.nnz == 0:
        empty = np.zeros((values.shape[0], factors), dtype=np.float32)
        return empty, np.zeros((values.shape[1], factors), dtype=np.float32)
    if method == "als":
        found, items = _als(values, factors, regularization, alpha, iterations, seed)
    else:
        found, items = _svd(values, factors, iterations, seed)
    found[np.diff(values.indptr) == 0] = 0.0
    return found, items


def fold_in(
    values: sp.csr_matrix,
    items: np.ndarray,
    method: str = "als",
    regularization: float = 0.01,
    alpha: float = 1.0,
    gram: np.ndarray | None = None,
    **_: Any,
) -> np.ndarray:
    """Return the factors of new users (rows of weighted evidence) against fitted item factors.

    ``als``: each user's least-squares solution given the items, as implicit's
    ``recalculate_user`` computes it, (YᵀY + λI + Yᵀ(Cᵤ − I)Y) xᵤ = YᵀCᵤpᵤ with Cᵤ = alpha ×
    values; ``svd``: the rows projected on the components. Users without evidence get zeros.
    ``gram``: YᵀY, when the caller keeps it (it depends on the items only, and costs more than
    a user's solve).
    """
    values = sp.csr_matrix(values, dtype=np.float64)
    width = items.shape[1]
    if method == "svd":
        found = np.asarray(values @ np.asarray(items, dtype=np.float64))
    else:
        if gram is None:
            whole = np.asarray(items, dtype=np.float64)
            gram = whole.T @ whole
        regularized = gram + regularization * np.eye(width)
        found = np.zeros((values.shape[0], width))
        for user in range(values.shape[0]):
            cols = values.indices[values.indptr[user] : values.indptr[user + 1]]
            confidence = alpha * values.data[values.indptr[user] : values.indptr[user + 1]]
            if len(cols):
                chosen = np.asarray(items[cols], dtype=np.float64)
                a = regularized + (chosen.T * (np.abs(confidence) - 1.0)) @ chosen
                b = (np.maximum(confidence, 0.0)[:, None] * chosen).sum(axis=0)
                found[user] = np.linalg.solve(a, b)
    found[np.diff(values.indptr) == 0] = 0.0
    return found.astype(np.float32)


def _als(
    values: sp.csr_matrix,
    factors: int,
    regularization: float,
    alpha: float,
    iterations: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit implicit's CPU ALS; return its user and item factors."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises over users itself; a multi-threaded BLAS inside each of its threads
    # slows it down many times over (it warns when BLAS may use more than one thread).
    with threadpool_limits(limits=1, user_api="blas"):
        model: Any = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
        )
        model.fit(values, show_progress=False)
    return (
        np.ascontiguousarray(model.user_factors, dtype=np.float32),
        np.ascontiguousarray(model.item_factors, dtype=np.float32),
    )


def _svd(
    values: sp.csr_matrix, factors: int, iterations: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fit scikit-learn's randomized truncated SVD; return each user's projection and the
    components as item factors (so that a user's factors are their row times them)."""
    from sklearn.decomposition import TruncatedSVD

    found = np.zeros((values.shape[0], factors), dtype=np.float32)
    items = np.zeros((values.shape[1], factors), dtype=np.float32)
    if values.shape[1] <= factors:  # no fewer factors than items: the rows keep every direction
        found[:, : values.shape[1]] = values.toarray()
        items[:, : values.shape[1]] = np.eye(values.shape[1], dtype=np.float32)
        return found, items
    rank = min(factors, values.shape[0])
    svd = TruncatedSVD(rank, algorithm="randomized", n_iter=iterations, random_state=seed)
    found[:, :rank] = svd.fit_transform(values)
    items[:, :rank] = svd.components_.T
    return found, items
