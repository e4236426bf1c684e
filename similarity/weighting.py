"""How raw evidence becomes comparable: term weights and IDF, unit rows, weighted blocks.

Variation as data: every model's weighting is `weigh` with other settings (as implicit's cosine,
TF-IDF and BM25 models differ only by a weighting function), and cosine similarity is the dot
product of the rows `unit_rows` returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

TERM_WEIGHTS = ("raw", "binary", "log1p", "sublinear", "bm25")


@dataclass(frozen=True)
class Statistics:
    """What a weighting learns from all users, so that a newcomer is weighed the same way.

    users: rows weighed; df: users with evidence in each feature (after ``positive``);
    average_length: the mean amount per user with any evidence (BM25's length norm).
    """

    users: int
    df: np.ndarray  # int64, one per feature
    average_length: float


@dataclass(frozen=True)
class Counts:
    """What `statistics` adds up over users, so that parts of the users can be counted apart
    (a Spark block each) and added: `Counts.total` then gives the statistics of them all."""

    users: int
    df: np.ndarray  # int64, one per feature
    length: float  # the amounts (/ unit) of the users with evidence, summed
    present: int  # users with evidence

    def __add__(self, other: Counts) -> Counts:
        if self.df.shape != other.df.shape:
            raise ValueError(f"counts of {len(self.df)} and {len(other.df)} features do not add")
        return Counts(
            self.users + other.users,
            self.df + other.df,
            self.length + other.length,
            self.present + other.present,
        )

    def total(self) -> Statistics:
        """Return the statistics of the users counted."""
        average = self.length / self.present if self.present else 1.0
        return Statistics(users=self.users, df=self.df, average_length=float(average))


def counts(values: sp.csr_matrix, unit: float = 1.0, positive: bool = False, **_: Any) -> Counts:
    """Count what `statistics` learns from raw evidence (users × features), for adding up."""
    kept = _evidence(values, positive)
    length = np.asarray(kept.sum(axis=1)).ravel() / unit
    present = length > 0
    return Counts(
        users=kept.shape[0],
        df=np.bincount(kept.indices, minlength=kept.shape[1]).astype(np.int64),
        length=float(length[present].sum()),
        present=int(present.sum()),
    )


def statistics(
    values: sp.csr_matrix, unit: float = 1.0, positive: bool = False, **_: Any
) -> Statistics:
    """Return what `weigh` learns from raw evidence (users × features) under these settings."""
    return counts(values, unit=unit, positive=positive).total()


def _evidence(values: sp.spmatrix, positive: bool) -> sp.csr_matrix:
    """Return the evidence a weighting reads: float64, negatives dropped if asked, no zeros."""
    kept = sp.csr_matrix(values, dtype=np.float64, copy=True)
    if positive:
        np.maximum(kept.data, 0, out=kept.data)
    kept.eliminate_zeros()
    return kept


def weigh(
    values: sp.spmatrix,
    tf: str = "log1p",
    idf: float = 0.0,
    unit: float = 1.0,
    k1: float = 1.2,
    b: float = 0.75,
    positive: bool = False,
    learned: Statistics | None = None,
) -> sp.csr_matrix:
    """Weight raw evidence per user (rows) and feature (columns): a term weight times IDF**idf.

    ``tf`` is one of: ``raw``; ``binary``; ``log1p`` (of amount / unit); ``sublinear`` (1 + log of
    a count); ``bm25`` (amount / unit saturated by k1, longer rows damped by b). ``idf`` is the
    power of the smoothed IDF, log((1 + users) / (1 + users with the feature)) + 1: 0 turns it
    off, 1 is TF-IDF, more damps popular features harder. ``positive`` drops negative evidence.
    ``learned``: the statistics (IDF, BM25's average length) of the users the model was built
    on, to weigh other rows (a newcomer's profile) as those users were; default: of ``values``.
    """
    if tf not in TERM_WEIGHTS:
        raise ValueError(f"unknown term weighting {tf!r}; known: {', '.join(TERM_WEIGHTS)}")
    if learned is None:
        learned = statistics(values, unit=unit, positive=positive)
    weighted = _evidence(values, positive)
    data = weighted.data
    if tf == "binary":
        data[:] = 1.0
    elif tf == "log1p":
        np.log1p(data / unit, out=data)
    elif tf == "sublinear":
        data[:] = 1.0 + np.log(np.maximum(data, 1.0))
    elif tf == "bm25":
        amount = data / unit
        length = np.asarray(
            sp.csr_matrix((amount, weighted.indices, weighted.indptr), shape=weighted.shape).sum(
                axis=1
            )
        )
        row_length = np.repeat(length.ravel(), np.diff(weighted.indptr))
        average = learned.average_length
        data[:] = amount * (k1 + 1) / (amount + k1 * (1 - b + b * row_length / average))
    if idf:
        weights = (np.log((1.0 + learned.users) / (1.0 + learned.df)) + 1.0) ** idf
        data *= weights[weighted.indices]
    return weighted


def unit_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Scale every non-empty row to unit length and drop explicit zeros (float32 CSR)."""
    if matrix.shape[1] == 0:  # no feature at all (e.g. viewed courses none of which has a tag)
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
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
