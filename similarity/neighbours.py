"""Exact top-N cosine neighbours of every row, in row blocks, with ties broken by handle.

Rows are L2-normalised, so cosine similarity is the dot product. Scores are rounded to the store's
precision *before* ranking, so that two neighbours whose stored scores are equal are always ordered
by handle (rows are in handle order), whatever the thread count or the order of float additions.

Identical rows (users with the same evidence) have identical lists but for themselves, so each
group of identical rows is searched once, as one row and as one column that stands for all its
members: a thousand users who follow only ``javascript`` cost one search and one entry in every
list's ranking, not a thousand of each. The group's best n + 1 users are then handed to each
member, without the member.

``sparse_dot_topn`` gives each block of distinct rows its top k (k = n + 2 to start) of the
distinct rows. That is exact unless the cut falls inside a run of equal scores, and then the
returned subset of the tied rows is arbitrary. Such rows are asked again with a larger k until the
cut is clean (at worst the whole row), in sub-blocks whose product stays within a budget. Memory
is O(block × k), never users².
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

# The sparse product that keeps each row's top k: sparse_dot_topn's, called as
# ``product(rows, columns, top_n=k, n_threads=threads)``.
TopK = Callable[..., sp.csr_matrix]


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
    return _rank_units(rows, cols, score_units(scores), n)


def _rank_units(
    rows: np.ndarray, cols: np.ndarray, units: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank as `_rank` does scores already rounded to units of their last decimal."""
    rows, cols, units = _sorted(rows, cols, units)
    starts = np.searchsorted(rows, rows, side="left")
    rank = np.arange(len(rows)) - starts
    kept = rank < n
    scores = (units[kept] / 10.0**SCORE_DECIMALS).astype(np.float32)
    return rows[kept], cols[kept], scores, rank[kept]


def _sorted(
    rows: np.ndarray, cols: np.ndarray, units: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop entries below one unit and sort the rest by row, then score down, then col (int64)."""
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
    return rows, cols, units


def score_units(scores: np.ndarray) -> np.ndarray:
    """Return scores rounded to the store's precision, in units of its last decimal (int64)."""
    units: np.ndarray = np.rint(scores.astype(np.float64) * 10**SCORE_DECIMALS).astype(np.int64)
    return units


@dataclass(frozen=True)
class Groups:
    """The rows of a matrix grouped when identical (same columns, same values, bit for bit).

    Groups are numbered in the order of their lowest row, so ordering groups by number orders
    them by their lowest handle. ``members[starts[g]:starts[g + 1]]`` are group g's rows, ascending.
    """

    of: np.ndarray  # row → its group
    first: np.ndarray  # group → its lowest row
    starts: np.ndarray  # group → where its members start (one more entry than groups)
    members: np.ndarray  # the rows of group 0, then of group 1, ...

    @property
    def sizes(self) -> np.ndarray:
        """Return how many rows each group holds."""
        return np.diff(self.starts)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(values: np.ndarray) -> np.ndarray:
    """Scramble uint64 values (splitmix64's finaliser), so that sums of them rarely collide."""
    z = values + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = z ^ (z >> np.uint64(31))
    return mixed


def identical_rows(matrix: sp.csr_matrix) -> Groups:
    """Group the identical rows of a canonical CSR matrix (sorted indices, no duplicates).

    Each row is hashed (a sum of its hashed entries) and checked entry by entry against the lowest
    row with its hash, so a collision never merges two different rows.
    """
    users = matrix.shape[0]
    nnz = np.diff(matrix.indptr).astype(np.int64)
    bits = matrix.data.astype(np.float32).view(np.uint32)
    entries = _mix(matrix.indices.astype(np.uint64) * _GOLDEN ^ bits.astype(np.uint64))
    sums = np.zeros(users, dtype=np.uint64)
    filled = nnz > 0
    if filled.any():
        sums[filled] = np.add.reduceat(entries, matrix.indptr[:-1][filled])
    _, lowest, inverse = np.unique(
        _mix(sums ^ _mix(nnz.astype(np.uint64))), return_index=True, return_inverse=True
    )
    like = lowest[inverse.ravel()]  # each row's lowest row of the same hash
    asked = np.flatnonzero(like != np.arange(users))
    other = like[asked]
    same = nnz[asked] == nnz[other]
    rows, lows, lengths = asked[same], other[same], nnz[asked[same]]
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    a = np.repeat(matrix.indptr[:-1][rows], lengths) + offsets
    b = np.repeat(matrix.indptr[:-1][lows], lengths) + offsets
    differ = (matrix.indices[a] != matrix.indices[b]) | (bits[a] != bits[b])
    collided = np.union1d(asked[~same], rows[np.repeat(np.arange(len(rows)), lengths)[differ]])
    like[collided] = collided  # never merged: each keeps a group of its own
    first, of = np.unique(like, return_inverse=True)
    of = of.ravel()
    sizes = np.bincount(of, minlength=len(first))
    return Groups(
        of=of,
        first=first,
        starts=np.concatenate(([0], np.cumsum(sizes))),
        members=np.argsort(of, kind="stable"),
    )


def _look(
    block: sp.csr_matrix,
    transposed: sp.csr_matrix,
    groups: Groups,
    m: int,
    k: int,
    threads: int,
    product: TopK,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Rank each group's m best users from its top k groups; tell which were cut inside a tie.

    ``block`` holds one row per group asked, ``transposed`` the distinct rows as columns. A group
    ranked at r among them (best first, ties by lowest row) follows at least one user of each
    group before it, and every user of the groups scoring higher: it can hold only the m minus
    those of the m best, so only that many of its members are looked at.
    """
    found = product(block, transposed, top_n=k, n_threads=threads)
    per_row = np.diff(found.indptr)
    local = np.repeat(np.arange(block.shape[0]), per_row)
    rows, cols, units = _sorted(local, found.indices, score_units(found.data))
    sizes = groups.sizes[cols]
    entry = np.arange(len(rows))
    row_start = np.searchsorted(rows, rows, side="left")
    run = np.ones(len(rows), dtype=bool)  # where a run of one row's equal scores starts
    run[1:] = (rows[1:] != rows[:-1]) | (units[1:] != units[:-1])
    run_start = np.maximum.accumulate(np.where(run, entry, 0))
    users_before = np.cumsum(sizes) - sizes  # users of the groups before, within the whole block
    ahead = users_before[run_start] - users_before[row_start] + (entry - run_start)
    take = np.minimum(np.maximum(m - ahead, 0), sizes)
    first_member = np.repeat(groups.starts[cols] - np.cumsum(take) + take, take)
    users = groups.members[first_member + np.arange(int(take.sum()))]
    ranked = _rank_units(np.repeat(rows, take), users, np.repeat(units, take), m)
    rows, _, scores, rank = ranked

    # A row cut at k whose lowest returned score equals its m-th best user's is cut inside a tie:
    # groups with that score that were not returned may have lower handles. Every group not
    # returned scores at most the lowest returned, so a strictly lower one means a clean cut.
    tied = np.zeros(block.shape[0], dtype=bool)
    cut = np.flatnonzero(per_row == k) if k < transposed.shape[1] else np.empty(0, np.int64)
    if len(cut):
        mth = np.full(block.shape[0], np.iinfo(np.int64).max, dtype=np.int64)  # above any score
        mth[rows[rank == m - 1]] = score_units(scores[rank == m - 1])
        returned = found.data[found.indptr[cut][:, None] + np.arange(k)]
        tied[cut] = score_units(returned.min(axis=1)) >= mth[cut]
    return ranked, tied


def _group_lists(
    queries: sp.csr_matrix,
    transposed: sp.csr_matrix,
    groups: Groups,
    m: int,
    threads: int,
    product_budget: int,
    product: TopK,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the m best users (rows, scores; -1 and 0 where none) of each query row, exactly.

    ``transposed`` holds the distinct rows of the users searched as columns, ``groups`` their
    members. When a query is one of those rows (a group asked), the users include the group's
    own members: each member's list is then this one without itself.
    """
    width = transposed.shape[1]
    k = min(width, m + 1)
    found_rows = np.full((queries.shape[0], m), -1, dtype=np.int32)
    found_scores = np.zeros((queries.shape[0], m), dtype=np.float32)
    pending = np.arange(queries.shape[0])
    # The members looked at per group asked: at most m for the first group, m - 1 for the next...
    expanded = m * (m + 1) // 2
    while len(pending):
        step = max(1, product_budget // max(k, expanded))
        still_tied = []
        for start in range(0, len(pending), step):
            part = pending[start : start + step]
            (rows, users, scores, rank), tied = _look(
                queries[part], transposed, groups, m, k, threads, product
            )
            keep = ~tied[rows]
            found_rows[part[rows[keep]], rank[keep]] = users[keep]
            found_scores[part[rows[keep]], rank[keep]] = scores[keep]
            still_tied.append(part[tied])
        pending = np.concatenate(still_tied)
        k = min(width, k * GROWTH)
    return found_rows, found_scores


def _exact_top_n(
    matrix: sp.csr_matrix,
    n: int,
    wanted: np.ndarray,
    block_rows: int,
    threads: int,
    progress: Callable[[int], None] | None,
    product_budget: int,
    product: TopK,
) -> Neighbours:
    """Find the wanted rows' n best others in a non-negative matrix, exactly, a group at a time."""
    groups = identical_rows(matrix)
    distinct = matrix if len(groups.first) == matrix.shape[0] else matrix[groups.first]
    transposed = sp.csr_matrix(distinct.T)
    result_rows = np.full((len(wanted), n), -1, dtype=np.int32)
    result_scores = np.zeros((len(wanted), n), dtype=np.float32)
    for first in range(0, len(wanted), block_rows):
        ids = wanted[first : first + block_rows]
        asked, at = np.unique(groups.of[ids], return_inverse=True)
        rows, scores = _group_lists(
            distinct[asked], transposed, groups, n + 1, threads, product_budget, product
        )
        rows, scores = rows[at.ravel()], scores[at.ravel()]
        # Each user's list is its group's without the user: a stable sort moves it to the end.
        order = np.argsort(rows == ids[:, None], axis=1, kind="stable")[:, :n]
        result_rows[first : first + len(ids)] = np.take_along_axis(rows, order, axis=1)
        result_scores[first : first + len(ids)] = np.take_along_axis(scores, order, axis=1)
        if progress is not None:
            progress(first + len(ids))
    return Neighbours(result_rows, result_scores)


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
    products: SignedProducts, block: sp.csr_matrix, ids: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank the n best other rows of each row of block (whose own rows are ids, or None when
    the block's rows are not among those searched), exactly."""
    users = products.users
    asking = block.shape[0]
    keep = min(n, users - (0 if ids is None else 1))
    if keep < 1:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float32), empty
    scores = products.of(block)
    if ids is not None:
        scores[np.arange(asking), ids] = -np.inf  # never one's own neighbour
    # A floor under each row's keep-th best score: the lowest of the best scores of keep disjoint
    # groups of columns (keep distinct users score at least that). Everyone whose score could
    # round to the keep-th best's stored score or above is a candidate, so a whole tie at the cut
    # is; the candidates are ranked on rounded scores, then by row. Cheaper than a partition of
    # the whole row, for a few times n candidates.
    width = users // keep
    groups = scores[:, : keep * width].reshape(asking, keep, width)
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
    product: TopK = sp_matmul_topn,
    negative: bool = False,
) -> Neighbours:
    """Find each row's n most similar other rows by cosine (rows must be L2-normalised), exactly.

    ``rows`` limits the search to those users (the result then has one row per user asked for).
    ``progress`` is called with the number of users done after each block. ``product_budget``
    bounds the entries of one sparse product (rows × k), and so the memory of a block;
    ``product`` is the sparse top-k product itself (what it is asked is the search's work).

    A matrix with negative values (dense factors) is searched with whole dense rows of scores
    instead (`_signed_top_n`), with the same ranking; only positive scores are neighbours.
    ``negative``: search so even if this matrix has none (a part of a model that has some).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    threads = threads or os.cpu_count() or 1
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    users = matrix.shape[0]
    wanted = np.arange(users) if rows is None else np.asarray(rows, dtype=np.int64)
    if negative or signed(matrix):
        return _signed_top_n(matrix, n, wanted, block_rows, threads, progress, product_budget)
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return _exact_top_n(matrix, n, wanted, block_rows, threads, progress, product_budget, product)


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


def block_top_n(
    asking: sp.spmatrix,
    searched: sp.spmatrix | None,
    n: int,
    *,
    negative: bool = False,
    block_rows: int = 4096,
    threads: int | None = None,
    product_budget: int = PRODUCT_BUDGET,
    product: TopK = sp_matmul_topn,
) -> Neighbours:
    """Find each asking row's n most similar rows of ``searched``, exactly, as `top_n` ranks them.

    The kernel of a search cut into blocks of rows (rows L2-normalised, in handle order): the
    result's rows are positions in ``searched``, best first, ties by position. ``searched=None``
    searches the asking block against itself (never a row's own neighbour), which is `top_n`.
    ``negative``: the model's rows have negative values (this block's may not), so it is
    searched as `top_n` searches such a matrix. Merge the parts of a row with `merge_top_n`.
    """
    if searched is None:
        return top_n(
            asking,
            n,
            block_rows=block_rows,
            threads=threads,
            product_budget=product_budget,
            product=product,
            negative=negative,
        )
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    threads = threads or os.cpu_count() or 1
    asking = _canonical(asking)
    searched = _canonical(searched)
    result_rows = np.full((asking.shape[0], n), -1, dtype=np.int32)
    result_scores = np.zeros((asking.shape[0], n), dtype=np.float32)
    if negative or signed(asking) or signed(searched):
        products = SignedProducts(searched)
        step = max(1, min(block_rows, product_budget // 2 // products.width))
        with threadpool_limits(limits=threads, user_api="blas"):
            for first in range(0, asking.shape[0], step):
                part = asking[first : first + step]
                found, cols, scores, rank = _signed_block(products, part, None, n)
                result_rows[first + found, rank] = cols
                result_scores[first + found, rank] = scores
        return Neighbours(result_rows, result_scores)
    groups = identical_rows(searched)
    distinct = searched if len(groups.first) == searched.shape[0] else searched[groups.first]
    transposed = sp.csr_matrix(distinct.T)
    for first in range(0, asking.shape[0], block_rows):
        part = slice(first, first + block_rows)
        rows, scores = _group_lists(
            asking[part], transposed, groups, n, threads, product_budget, product
        )
        result_rows[part], result_scores[part] = rows, scores
    return Neighbours(result_rows, result_scores)


def _canonical(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Return the matrix as float32 CSR with sorted indices and no duplicates."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return matrix


def merge_top_n(
    parts: list[tuple[np.ndarray, np.ndarray]], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the same users' candidate neighbours found in several blocks into their n best.

    Each part is (handles, scores): users × slots, handle -1 and score 0 where none (as
    `block_top_n` gives, its rows turned into handles). Candidates are ranked as the search
    ranks them: by score rounded to the store's precision, then by lower handle. Returns
    (handles int64, scores float32), users × n.
    """
    handles = np.concatenate([np.asarray(h, dtype=np.int64) for h, _ in parts], axis=1)
    scores = np.concatenate([np.asarray(s, dtype=np.float32) for _, s in parts], axis=1)
    units = score_units(scores)
    units[handles < 0] = -1  # after every candidate
    order = np.lexsort((handles, -units))[:, :n]
    kept_handles = np.take_along_axis(handles, order, axis=1)
    kept_scores = np.take_along_axis(scores, order, axis=1)
    none = np.take_along_axis(units, order, axis=1) < 1
    kept_handles[none], kept_scores[none] = -1, 0.0
    if kept_handles.shape[1] < n:  # fewer candidates than n in all
        pad = n - kept_handles.shape[1]
        kept_handles = np.pad(kept_handles, ((0, 0), (0, pad)), constant_values=-1)
        kept_scores = np.pad(kept_scores, ((0, 0), (0, pad)))
    return kept_handles, kept_scores
