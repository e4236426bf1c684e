"""Exact top-N cosine neighbours for every user, in row blocks (memory never grows with users²).

Rows are L2-normalised, so cosine similarity is the dot product. Scores are rounded to the store's
precision *before* ranking, so that two neighbours whose stored scores are equal are always ordered
by handle (rows are in handle order), whatever the thread count or the order of float additions.

The fast path asks ``sparse_dot_topn`` for each block's top N+2 (one extra for the user themself,
one to see past the cut). That is exact unless the cut falls inside a run of equal scores —
common, since users who follow the same single tag all score 1.0 — and then the returned subset
of the tied users is arbitrary. Such rows are detected and recomputed from their full similarity
row, in bounded sub-blocks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sparse_dot_topn import sp_matmul, sp_matmul_topn

from store import SCORE_DECIMALS

DENSE_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Neighbours:
    """Each user's best neighbours as matrix rows: ``rows[i, j]`` is user i's j-th neighbour.

    Unused slots hold row -1 and score 0; neighbours are best first, ties by row (= by handle).
    """

    rows: np.ndarray  # users × n, int32
    scores: np.ndarray  # users × n, float32

    def counts(self) -> np.ndarray:
        """Return how many neighbours each user has."""
        return np.asarray((self.rows >= 0).sum(axis=1))


def _rank(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop non-positive scores, sort by (row, -score, col), keep n per row.

    Returns the kept rows, cols, rounded scores and each entry's rank within its row.
    """
    scores = np.round(scores, SCORE_DECIMALS)
    keep = scores > 0
    rows, cols, scores = rows[keep], cols[keep], scores[keep]
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    starts = np.searchsorted(rows, rows, side="left")
    rank = np.arange(len(rows)) - starts
    kept = rank < n
    return rows[kept], cols[kept], scores[kept], rank[kept]


def _exact(
    block: sp.csr_matrix, transposed: sp.csr_matrix, first_rows: np.ndarray, n: int, threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank neighbours from complete similarity rows (for rows whose top N ends in a tie)."""
    users = transposed.shape[1]
    step = max(1, DENSE_BUDGET_BYTES // (users * 4 * 3))
    parts = []
    for start in range(0, block.shape[0], step):
        dense = sp_matmul(block[start : start + step], transposed, n_threads=threads).toarray()
        np.round(dense, SCORE_DECIMALS, out=dense)
        local = np.arange(dense.shape[0])
        dense[local, first_rows[start : start + step]] = 0
        k = min(n, users)
        kth = np.partition(dense, users - k, axis=1)[:, users - k]
        rows, cols = np.nonzero((dense >= kth[:, None]) & (dense > 0))
        scores = dense[rows, cols]
        parts.append(_rank(rows + start, cols, scores, n))
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def top_n(
    matrix: sp.csr_matrix,
    n: int,
    block_rows: int = 4096,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Neighbours:
    """Find each row's n most similar other rows by cosine (rows must be L2-normalised).

    ``progress`` is called with the number of rows done after each block.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if matrix.nnz and matrix.data.min() < 0:
        # sparse_dot_topn mishandles products that cancel to exactly zero (wrong entries, even
        # crashes); every model's weighting keeps evidence non-negative.
        raise ValueError("rows must be non-negative for the neighbour search")
    threads = threads or os.cpu_count() or 1
    users = matrix.shape[0]
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    transposed = sp.csr_matrix(matrix.T)
    result_rows = np.full((users, n), -1, dtype=np.int32)
    result_scores = np.zeros((users, n), dtype=np.float32)
    for first in range(0, users, block_rows):
        block = matrix[first : first + block_rows]
        # Two more than needed: one for the user themself, one to see past the cut.
        product = sp_matmul_topn(block, transposed, top_n=n + 2, n_threads=threads)
        per_row = np.diff(product.indptr)
        local = np.repeat(np.arange(block.shape[0]), per_row)
        other = product.indices != local + first
        rows, cols, scores, rank = _rank(
            local[other], product.indices[other], product.data[other], n + 1
        )

        # A truncated row (n+2 returned) whose (n+1)-th score equals its n-th is cut inside a tie:
        # users with that score that were not returned may have lower handles. Every user not
        # returned scores at most the (n+1)-th, so a strictly lower (n+1)-th means a clean cut.
        nth = np.full(block.shape[0], np.nan, dtype=np.float32)
        nth[rows[rank == n - 1]] = scores[rank == n - 1]
        after = rank == n
        tied = np.unique(rows[after][(scores[after] == nth[rows[after]])])
        tied = tied[per_row[tied] == n + 2]
        keep = (rank < n) & ~np.isin(rows, tied)
        rows, cols, scores, rank = rows[keep], cols[keep], scores[keep], rank[keep]
        if len(tied):
            exact = _exact(block[tied], transposed, tied + first, n, threads)
            rows = np.concatenate([rows, tied[exact[0]]])
            cols = np.concatenate([cols, exact[1]])
            scores = np.concatenate([scores, exact[2]])
            rank = np.concatenate([rank, exact[3]])

        result_rows[first + rows, rank] = cols
        result_scores[first + rows, rank] = scores
        if progress is not None:
            progress(min(first + block_rows, users))
    return Neighbours(result_rows, result_scores)
