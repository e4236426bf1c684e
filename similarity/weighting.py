"""How raw evidence becomes comparable: term weights and IDF, unit rows, weighted blocks.

Variation as data: every model's weighting is `weigh` with other settings (as implicit's cosine,
TF-IDF and BM25 models differ only by a weighting function), and cosine similarity is the dot
product of the rows `unit_rows` returns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

TERM_WEIGHTS = ("raw", "binary", "log1p", "sublinear", "bm25")


def weigh(
    values: sp.csr_matrix,
    tf: str = "log1p",
    idf: float = 0.0,
    unit: float = 1.0,
    k1: float = 1.2,
    b: float = 0.75,
    positive: bool = False,
) -> sp.csr_matrix:
    """Weight raw evidence per user (rows) and feature (columns): a term weight times IDF**idf.

    ``tf`` is one of: ``raw``; ``binary``; ``log1p`` (of amount / unit); ``sublinear`` (1 + log of
    a count); ``bm25`` (amount / unit saturated by k1, longer rows damped by b). ``idf`` is the
    power of the smoothed IDF, log((1 + users) / (1 + users with the feature)) + 1: 0 turns it
    off, 1 is TF-IDF, more damps popular features harder. ``positive`` drops negative evidence.
    """
    if tf not in TERM_WEIGHTS:
        raise ValueError(f"unknown term weighting {tf!r}; known: {', '.join(TERM_WEIGHTS)}")
    weighted = sp.csr_matrix(values, dtype=np.float64, copy=True)
    if positive:
        np.maximum(weighted.data, 0, out=weighted.data)
    weighted.eliminate_zeros()
    data = weighted.data
    if tf == "binary":
        data[:] = 1.0
    elif tf == "log1p":
        np.log1p(data / unit, out=data)
    elif tf == "sublinear":
        data[:] = 1.0 + np.log(np.maximum(data, 1.0))
    elif tf == "bm25":
        amount = data / unit
        length = np.asarray(sp.csr_matrix((amount, weighted.indices, weighted.indptr)).sum(axis=1))
        length = length.ravel()
        average = length[length > 0].mean() if (length > 0).any() else 1.0
        row_length = np.repeat(length, np.diff(weighted.indptr))
        data[:] = amount * (k1 + 1) / (amount + k1 * (1 - b + b * row_length / average))
    if idf:
        users = weighted.shape[0]
        df = np.bincount(weighted.indices, minlength=weighted.shape[1])
        weights = (np.log((1.0 + users) / (1.0 + df)) + 1.0) ** idf
        data *= weights[weighted.indices]
    return weighted


def unit_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Scale every non-empty row to unit length and drop explicit zeros (float32 CSR)."""
    normalised = normalize(sp.csr_matrix(matrix, dtype=np.float32), norm="l2", copy=False)
    normalised.eliminate_zeros()
    return sp.csr_matrix(normalised, dtype=np.float32)


def combine(blocks: Mapping[str, sp.csr_matrix], weights: Mapping[str, float]) -> sp.csr_matrix:
    """Join unit-row blocks side by side, each scaled by sqrt(weight), and renormalise the rows.

    Before the renormalisation the dot product of two rows is the weighted sum of the blocks'
    cosines, so the hybrid similarity is that sum divided by the two users' norms: a user missing
    a signal is compared on the signals they have.
    """
    kept = [
        blocks[handle] * np.float32(np.sqrt(weights[handle]))
        for handle in blocks
        if weights.get(handle, 0.0) > 0
    ]
    if not kept:
        raise ValueError(f"no block with a positive weight among {sorted(blocks)}: {weights}")
    return unit_rows(sp.hstack(kept, format="csr"))
