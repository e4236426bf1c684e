"""Exact top-N cosine neighbours of every row, in row blocks, with ties broken by handle.

Rows are L2-normalised, so cosine similarity is the dot product. Scores are rounded to the store's
precision *before* ranking, so that two neighbours whose stored scores are equal are always ordered
by handle (rows are in handle order), whatever the thread count or the order of float additions.

``sparse_dot_topn`` gives each block of rows its top k (k = n + 2 to start) of the similarity
row. That is exact unless the cut falls inside a run of equal scores (common: users who follow the
same single tag all score 1.0), and then the returned subset of the tied users is arbitrary. Such
rows are asked again with a larger k until the cut is clean (at worst the whole row), in
sub-blocks whose product stays within a budget. Memory is O(block × k), never users².
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sparse_dot_topn import sp_matmul_topn
from threadpoolctl import threadpool_limits

from store import SCORE_DECIMALS

# Rows are first asked for their top n + 2 (one for the user themself, one to see past the cut);
# rows cut inside a tie are asked again for GROWTH times more, until the cut is clean.
GROWTH = 4
# Entries of one sparse product at most (rows × k): 32M entries are about 256 MB.
PRODUCT_BUDGET = 2**25
# In a matrix with negative values, columns filled for at least this share of the rows are
# multiplied as dense arrays (dense factors), the others as sparse ones (see SignedProducts).
DENSE_FILL = 0.5


@dataclass(frozen=True)
class Neighbours:
    """Each user's best neighbours as matrix rows: ``rows[i, j]`` is user i's j-th neighbour.

    Unused slots hold row -1 and score 0; neighbours are best first, ties by row (= by handle).
    When only some users were searched, row i of the arrays belongs to the i-th of them.
    """

    rows: np.ndarray  # users × n, int32
    scores: np.ndarray  # users × n, float32

    def counts(self) -> np.ndarray:
        """Return how many neighbours each user has."""
        return np.asarray((self.rows >= 0).sum(axis=1))


def signed(matrix: sp.csr_matrix) -> bool:
    """Tell whether the matrix holds negative values (as dense factors do).

    sparse_dot_topn returns garbage rows (and can crash) when a product cancels to exactly 0, so
    such a matrix is searched with dense products instead.
    """
    return bool(matrix.nnz and matrix.data.min() < 0)


# The fast path of `_rank` packs (row, score, col) into one int64 sort key: col in the low 31 bits,
# the score in units of its last decimal above it (20 bits hold scores up to 1.048575: cosines, with
# room for float32 rounding above 1), the row (within a block) in the 12 bits left. Anything outside
# those ranges takes the slower three-key sort.
_COL_BITS = 31
_COL_MASK = (1 << _COL_BITS) - 1
_UNITS_BITS = (10**SCORE_DECIMALS).bit_length()
_UNITS_MASK = (1 << _UNITS_BITS) - 1
_ROW_SHIFT = _COL_BITS + _UNITS_BITS
_ROW_BITS = 63 - _ROW_SHIFT


def _rank(
    rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Drop non-positive scores, sort by (row, -score, col), keep n per row.

    Returns the kept rows, cols, rounded scores and each entry's rank within its row.
    """
    units = score_units(scores)
    keep = units > 0
    rows, cols, units = rows[keep].astype(np.int64), cols[keep].astype(np.int64), units[keep]
    if (
        len(rows)
        and rows.max() < 2**_ROW_BITS
        and cols.max() <= _COL_MASK
        and units.max() <= _UNITS_MASK
    ):
        # One int64 sort instead of a three-key lexsort: row, then score down, then col.
        key = np.sort((rows << _ROW_SHIFT) | ((_UNITS_MASK - units) << _COL_BITS) | cols)
        rows, units, cols = (
            key >> _ROW_SHIFT,
            _UNITS_MASK - ((key >> _COL_BITS) & _UNITS_MASK),
            key & _COL_MASK,
        )
    else:
        order = np.lexsort((cols, -units, rows))
        rows, cols, units = rows[order], cols[order], units[order]
    starts = np.searchsorted(rows, rows, side="left")
    rank = np.arange(len(rows)) - starts
    kept = rank < n
    scores = (units[kept] / 10.0**SCORE_DECIMALS).astype(np.float32)
    return rows[kept], cols[kept], scores, rank[kept]


def score_units(scores: np.ndarray) -> np.ndarray:
    """Return scores rounded to the store's precision, in units of its last decimal (int64)."""
    units: np.ndarray = np.rint(scores.astype(np.float64) * 10**SCORE_DECIMALS).astype(np.int64)
    return units


def _look(
    block: sp.csr_matrix, ids: np.ndarray, transposed: sp.csr_matrix, n: int, k: int, threads: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Rank each row's n best others from its top k; also tell which rows were cut inside a tie."""
    product = sp_matmul_topn(block, transposed, top_n=k, n_threads=threads)
    per_row = np.diff(product.indptr)
    local = np.repeat(np.arange(block.shape[0]), per_row)
    other = product.indices != ids[local]
    ranked = _rank(local[other], product.indices[other], product.data[other], n)
    rows, _, scores, rank = ranked

    # A row cut at k whose lowest returned score equals its n-th best is cut inside a tie: users
    # with that score that were not returned may have lower handles. Every user not returned
    # scores at most the lowest returned, so a strictly lower one means a clean cut.
    tied = np.zeros(block.shape[0], dtype=bool)
    cut = np.flatnonzero(per_row == k) if k < transposed.shape[1] else np.empty(0, np.int64)
    if len(cut):
        nth = np.full(block.shape[0], np.iinfo(np.int64).max, dtype=np.int64)  # above any score
        nth[rows[rank == n - 1]] = score_units(scores[rank == n - 1])
        returned = product.data[product.indptr[cut][:, None] + np.arange(k)]
        tied[cut] = score_units(returned.min(axis=1)) >= nth[cut]
    return ranked, tied


def _exact_block(
    block: sp.csr_matrix,
    ids: np.ndarray,
    transposed: sp.csr_matrix,
    n: int,
    threads: int,
    product_budget: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank the n best other rows of each row of block (whose own rows are ids), exactly."""
    users = transposed.shape[1]
    k = min(users, n + 2)
    pending = np.arange(block.shape[0])
    found = []
    while len(pending):
        step = max(1, product_budget // k)
        still_tied = []
        for start in range(0, len(pending), step):
            part = pending[start : start + step]
            (rows, cols, scores, rank), tied = _look(
                block[part], ids[part], transposed, n, k, threads
            )
            keep = ~tied[rows]
            found.append((part[rows[keep]], cols[keep], scores[keep], rank[keep]))
            still_tied.append(part[tied])
        pending = np.concatenate(still_tied)
        k = min(users, k * GROWTH)
    if not found:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32), empty
    return tuple(np.concatenate(p) for p in zip(*found, strict=True))  # type: ignore[return-value]


class SignedProducts:
    """Exact dot products with the rows of a matrix that has negative values (float64).

    Dense factors fill every column of a user with evidence; a hybrid that weighs them also has
    the sparse columns of its other blocks. Columns filled for at least ``DENSE_FILL`` of the rows
    are multiplied as dense arrays (BLAS), the others as sparse ones. Products are float64, so
    equal scores stay equal to the last bit and round to the same stored score.
    """

    def __init__(self, matrix: sp.csr_matrix) -> None:
        fill = np.bincount(matrix.indices, minlength=matrix.shape[1]) / max(1, matrix.shape[0])
        self.full = fill >= DENSE_FILL
        self.users = matrix.shape[0]
        self.dense = matrix[:, self.full].toarray().astype(np.float64)
        self.sparse = sp.csr_matrix(matrix[:, ~self.full].T, dtype=np.float64)  # features × users
        # float64-sized entries one asking row needs: its scores, and with sparse columns the
        # sparse product (value and index) before it is added to them.
        self.width = max(1, self.users * (3 if self.sparse.nnz else 1))

    def of(self, rows: sp.csr_matrix) -> np.ndarray:
        """Return the dot products of rows (same columns) with every row (rows × users)."""
        product: np.ndarray = rows[:, self.full].toarray().astype(np.float64) @ self.dense.T
        if self.sparse.nnz:
            asking = sp.csr_matrix(rows[:, ~self.full], dtype=np.float64)
            product += (asking @ self.sparse).toarray()
        return product


def _signed_block(
    products: SignedProducts, block: sp.csr_matrix, ids: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank the n best other rows of each row of block (whose own rows are ids), exactly."""
    users = products.users
    keep = min(n, users - 1)
    if keep < 1:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32), empty
    scores = products.of(block)
    scores[np.arange(len(ids)), ids] = -np.inf  # never one's own neighbour
    # A floor under each row's keep-th best score: the lowest of the best scores of keep disjoint
    # groups of columns (keep distinct users score at least that). Everyone whose score could
    # round to the keep-th best's stored score or above is a candidate, so a whole tie at the cut
    # is; the candidates are ranked on rounded scores, then by row. Cheaper than a partition of
    # the whole row, for a few times n candidates.
    width = users // keep
    groups = scores[:, : keep * width].reshape(len(ids), keep, width)
    half_unit = 0.5 * 10.0**-SCORE_DECIMALS  # with a margin: a superset costs nothing here
    floor = np.maximum(groups.max(axis=2).min(axis=1) - 3 * half_unit, half_unit / 2)
    rows, cols = np.divmod(np.flatnonzero(scores >= floor[:, None]), users)  # 1-D: faster
    return _rank(rows, cols, scores[rows, cols], n)


def _signed_top_n(
    matrix: sp.csr_matrix,
    n: int,
    wanted: np.ndarray,
    block_rows: int,
    threads: int,
    progress: Callable[[int], None] | None,
    product_budget: int,
) -> Neighbours:
    """Find the wanted rows' n best others in a matrix with negative values, exactly.

    Whole rows of scores are computed a block at a time (numpy's BLAS) and ranked with the same
    rule as the sparse search; a block holds at most ``product_budget`` / 2 scores.
    """
    products = SignedProducts(matrix)
    step = max(1, min(block_rows, product_budget // 2 // products.width))
    result_rows = np.full((len(wanted), n), -1, dtype=np.int32)
    result_scores = np.zeros((len(wanted), n), dtype=np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        for first in range(0, len(wanted), step):
            ids = wanted[first : first + step]
            found, cols, scores, rank = _signed_block(products, matrix[ids], ids, n)
            result_rows[first + found, rank] = cols
            result_scores[first + found, rank] = scores
            if progress is not None:
                progress(first + len(ids))
    return Neighbours(result_rows, result_scores)


def top_n(
    matrix: sp.spmatrix,
    n: int,
    block_rows: int = 4096,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    rows: np.ndarray | None = None,
    product_budget: int = PRODUCT_BUDGET,
) -> Neighbours:
    """Find each row's n most similar other rows by cosine (rows must be L2-normalised), exactly.

    ``rows`` limits the search to those users (the result then has one row per user asked for).
    ``progress`` is called with the number of users done after each block. ``product_budget``
    bounds the entries of one sparse product (rows × k), and so the memory of a block.

    A matrix with negative values (dense factors) is searched with whole dense rows of scores
    instead (`_signed_top_n`), with the same ranking; only positive scores are neighbours.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    threads = threads or os.cpu_count() or 1
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    users = matrix.shape[0]
    wanted = np.arange(users) if rows is None else np.asarray(rows, dtype=np.int64)
    if signed(matrix):
        return _signed_top_n(matrix, n, wanted, block_rows, threads, progress, product_budget)
    transposed = sp.csr_matrix(matrix.T)
    result_rows = np.full((len(wanted), n), -1, dtype=np.int32)
    result_scores = np.zeros((len(wanted), n), dtype=np.float32)
    for first in range(0, len(wanted), block_rows):
        ids = wanted[first : first + block_rows]
        block = matrix[first : first + len(ids)] if rows is None else matrix[ids]
        found, cols, scores, rank = _exact_block(block, ids, transposed, n, threads, product_budget)
        result_rows[first + found, rank] = cols
        result_scores[first + found, rank] = scores
        if progress is not None:
            progress(first + len(ids))
    return Neighbours(result_rows, result_scores)


def score_keys(scores: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pack rounded scores and rows into int64 keys ordered by score, then lower row (0: none)."""
    units = score_units(scores)  # as the exact search rounds, so both rank equal scores alike
    keys: np.ndarray = (units << _COL_BITS) | (_COL_MASK - cols.astype(np.int64))
    keys[units <= 0] = 0
    return keys


def unpack_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the rows (-1 for none) and scores of keys sorted best first."""
    rows = np.where(keys > 0, _COL_MASK - (keys & _COL_MASK), -1).astype(np.int32)
    scores = ((keys >> _COL_BITS) / 10.0**SCORE_DECIMALS).astype(np.float32)
    return rows, scores
