"""Exact top-N neighbours: self excluded, ties by handle, only positive scores, in blocks."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import normalize
from sparse_dot_topn import sp_matmul_topn

from similarity.neighbours import block_top_n, identical_rows, merge_top_n, top_n
from store import SCORE_DECIMALS
from tests.builders import tied_matrix


def brute_force(matrix: sp.csr_matrix, n: int) -> list[list[tuple[int, float]]]:
    """Rank every other row by (-rounded cosine, row), the slow obvious way."""
    dense = matrix.toarray().astype(np.float64)
    answer = []
    for i, row in enumerate(dense):
        scored = [
            (j, round(float(row @ other), SCORE_DECIMALS))
            for j, other in enumerate(dense)
            if j != i
        ]
        ranked = sorted((p for p in scored if p[1] > 0), key=lambda p: (-p[1], p[0]))
        answer.append(ranked[:n])
    return answer


def as_lists(rows: np.ndarray, scores: np.ndarray) -> list[list[tuple[int, float]]]:
    return [
        [(int(c), float(s)) for c, s in zip(r, sc, strict=True) if c >= 0]
        for r, sc in zip(rows, scores, strict=True)
    ]


def weighted_matrix(users: int, features: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    matrix = sp.random(users, features, density=0.08, random_state=rng, dtype=np.float32)
    return normalize(sp.csr_matrix(matrix)).astype(np.float32)


def signed_matrix(users: int, features: int, seed: int) -> sp.csr_matrix:
    """Unit rows of small signed integers, many of them repeated, so equal scores abound."""
    rng = np.random.default_rng(seed)
    distinct = rng.integers(-2, 3, size=(max(2, users // 4), features)).astype(np.float32)
    return sp.csr_matrix(normalize(distinct[rng.integers(0, len(distinct), users)]))


def factors_beside_sparse(users: int, features: int, seed: int) -> sp.csr_matrix:
    """A hybrid's shape: a signed dense block beside a sparse non-negative one."""
    dense = signed_matrix(users, 4, seed)
    sparse = tied_matrix(users, features, seed)
    return normalize(sp.hstack([dense, sparse], format="csr")).astype(np.float32)


def assert_brute_force(matrix: sp.csr_matrix, n: int, **search: int) -> None:
    found = top_n(matrix, n, **search)
    expected = brute_force(matrix, n)
    got = as_lists(found.rows, found.scores)
    assert [[c for c, _ in r] for r in got] == [[c for c, _ in r] for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert [s for _, s in g] == pytest.approx([s for _, s in e], abs=2e-6)


@pytest.mark.parametrize("n", [1, 3, 10])
@pytest.mark.parametrize("block_rows", [1, 7, 1000])
@pytest.mark.parametrize(
    ("make", "features"),
    [(tied_matrix, 6), (weighted_matrix, 40), (signed_matrix, 5), (factors_beside_sparse, 5)],
)
def test_top_n_matches_brute_force_including_ties(make, features, n, block_rows):
    assert_brute_force(make(120, features, seed=n + block_rows), n, block_rows=block_rows)


@pytest.mark.parametrize("make", [signed_matrix, factors_beside_sparse])
def test_a_signed_search_in_blocks_bounded_by_the_budget_matches_brute_force(make):
    matrix = make(150, 5, seed=2)
    assert matrix.data.min() < 0
    assert_brute_force(matrix, 4, block_rows=1000, product_budget=300)  # a row per block


def test_blocks_too_large_to_pack_into_one_sort_key_rank_the_same():
    # Blocks above 4,096 rows take the three-key sort instead of the packed one.
    matrix = tied_matrix(4200, 12, seed=4)

    packed, unpacked = top_n(matrix, 5, block_rows=100), top_n(matrix, 5, block_rows=5000)

    np.testing.assert_array_equal(packed.rows, unpacked.rows)
    np.testing.assert_array_equal(packed.scores, unpacked.scores)


def test_scores_above_one_are_ranked_rather_than_corrupted():
    # Rows that are not unit length score above 1; the packed sort key has no room for that.
    matrix = sp.csr_matrix(np.array([[2.0, 0.0], [1.5, 0.5], [1.0, 1.0], [0.0, 3.0]]))

    found = top_n(matrix, 2)

    assert as_lists(found.rows, found.scores) == [
        [(1, 3.0), (2, 2.0)],
        [(0, 3.0), (2, 2.0)],
        [(3, 3.0), (0, 2.0)],  # 0 and 1 tie at 2.0: by handle
        [(2, 3.0), (1, 1.5)],
    ]


def test_a_user_is_never_their_own_neighbour_even_among_identical_users():
    matrix = normalize(sp.csr_matrix(np.ones((5, 3), dtype=np.float32)))
    found = top_n(matrix, 10)
    for user, neighbours in enumerate(found.rows):
        assert user not in neighbours
        assert sorted(c for c in neighbours if c >= 0) == [u for u in range(5) if u != user]


def test_identical_users_are_ranked_by_handle_when_the_cut_falls_inside_the_tie():
    matrix = normalize(sp.csr_matrix(np.ones((50, 1), dtype=np.float32)))
    found = top_n(matrix, 3, block_rows=16)
    assert found.rows[0].tolist() == [1, 2, 3]
    assert found.rows[49].tolist() == [0, 1, 2]
    assert found.scores[10].tolist() == [1.0, 1.0, 1.0]


def test_users_without_overlap_get_no_neighbours_rather_than_arbitrary_ones():
    matrix = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=np.float32))
    found = top_n(matrix, 5)
    assert found.counts().tolist() == [1, 1, 0, 0]
    assert found.rows[0, 0] == 1
    assert (found.rows[2] == -1).all()
    assert (found.scores[2] == 0).all()


def test_n_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        top_n(sp.csr_matrix(np.eye(2, dtype=np.float32)), 0)


def test_progress_reports_rows_done_per_block():
    seen: list[int] = []
    top_n(weighted_matrix(25, 10, seed=1), 2, block_rows=10, progress=seen.append)
    assert seen == [10, 20, 25]


def test_a_tie_larger_than_every_look_is_resolved_by_handle_over_the_whole_row():
    matrix = normalize(sp.csr_matrix(np.ones((300, 1), dtype=np.float32)))  # 299-way ties
    found = top_n(matrix, 2, block_rows=50, product_budget=64)  # sub-blocks of a few rows only
    assert found.rows[0].tolist() == [1, 2]
    assert found.rows[150].tolist() == [0, 1]
    assert (found.scores == 1.0).all()


@pytest.mark.parametrize("n", [1, 2, 5])
def test_ties_resolved_in_several_rounds_match_brute_force(n):
    matrix = tied_matrix(400, 3, seed=n)  # few features: groups of dozens of equal users
    found = top_n(matrix, n, block_rows=64, product_budget=500)
    expected = brute_force(matrix, n)
    got = as_lists(found.rows, found.scores)
    assert [[c for c, _ in r] for r in got] == [[c for c, _ in r] for r in expected]


# -- identical users: one search per group --------------------------------------------------------


def crowd(same: int, others: int, seed: int) -> sp.csr_matrix:
    """`same` users with only feature 0, shuffled among `others` with two features of ten."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((same + others, 10), dtype=np.float32)
    dense[:same, 0] = 1
    for row in dense[same:]:
        row[rng.choice(10, size=2, replace=False)] = 1
    return sp.csr_matrix(normalize(dense[rng.permutation(len(dense))]))


def test_a_crowd_of_identical_users_is_searched_once_not_once_per_user():
    matrix = crowd(2_000, 20, seed=1)
    users = matrix.shape[0]
    asked: list[int] = []

    def counting(rows: sp.csr_matrix, columns: sp.csr_matrix, **options: int) -> sp.csr_matrix:
        asked.append(rows.shape[0] * options["top_n"])
        return sp_matmul_topn(rows, columns, **options)

    found = top_n(matrix, 5, product=counting)

    crowd_rows = np.flatnonzero(matrix[:, 0].toarray().ravel() == 1)
    assert found.rows[crowd_rows[0]].tolist() == crowd_rows[1:6].tolist()  # ties by handle
    assert found.rows[crowd_rows[-1]].tolist() == crowd_rows[:5].tolist()
    # Each of the 2,000 was cut inside a tie of 1,999 and asked again for its whole row (4M
    # entries); one search for the crowd and one per other user stay within a few per user.
    assert sum(asked) < 10 * users


def test_users_of_different_identical_groups_tied_at_the_cut_are_ranked_by_handle():
    # Rows 0 and 3 are alike, so are 1 and 2; row 4 scores the same with all four.
    matrix = normalize(
        sp.csr_matrix(
            np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]], dtype=np.float32)
        )
    )

    found = top_n(matrix, 3)

    assert found.rows[4].tolist() == [0, 1, 2]
    assert found.rows[0].tolist() == [3, 4, -1]
    assert found.rows[2].tolist() == [1, 4, -1]


@pytest.mark.parametrize("n", [1, 4, 60, 500])
@pytest.mark.parametrize(("block_rows", "product_budget"), [(13, 40), (1000, 2**25)])
def test_large_groups_of_identical_users_match_brute_force(n, block_rows, product_budget):
    matrix = tied_matrix(240, 2, seed=n)  # groups of dozens of identical users, and empty rows
    assert_brute_force(matrix, n, block_rows=block_rows, product_budget=product_budget)


def test_identical_users_asked_for_get_the_same_lists_as_in_a_whole_search():
    matrix = crowd(300, 40, seed=3)
    asked = np.array([339, 0, 17, 17, 5, 200, 1])

    some, every = top_n(matrix, 6, rows=asked, block_rows=3), top_n(matrix, 6)

    np.testing.assert_array_equal(some.rows, every.rows[asked])
    np.testing.assert_array_equal(some.scores, every.scores[asked])


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 4), st.sampled_from([1.0, 2.0, 0.5])), max_size=3),
        min_size=1,
        max_size=30,
    )
)
def test_rows_are_grouped_exactly_when_they_are_identical(rows):
    cells = [dict(row) for row in rows]
    matrix = sp.csr_matrix(
        (
            np.array([v for row in cells for v in row.values()], dtype=np.float32),
            (
                np.repeat(np.arange(len(cells)), [len(row) for row in cells]),
                [c for row in cells for c in row],
            ),
        ),
        shape=(len(cells), 5),
    )
    matrix.sum_duplicates()

    groups = identical_rows(matrix)

    keys = [tuple(sorted(row.items())) for row in cells]
    for a in range(len(cells)):
        for b in range(len(cells)):
            assert (groups.of[a] == groups.of[b]) == (keys[a] == keys[b])
    assert groups.first.tolist() == sorted({keys.index(key) for key in keys})
    for group, first in enumerate(groups.first):
        members = groups.members[groups.starts[group] : groups.starts[group + 1]]
        assert members.tolist() == [r for r in range(len(cells)) if keys[r] == keys[first]]


# -- matrices with negative values (dense factors): whole dense rows of scores -------------------


def test_negative_and_zero_scores_are_never_neighbours():
    # Users 0 and 1 point opposite ways; user 2 is orthogonal to both; user 3 is like user 0.
    matrix = sp.csr_matrix(np.array([[1, 0], [-1, 0], [0, 1], [0.8, -0.6]], dtype=np.float32))

    found = top_n(matrix, 3)

    assert as_lists(found.rows, found.scores) == [
        [(3, pytest.approx(0.8))],
        [],
        [],
        [(0, pytest.approx(0.8))],
    ]


def test_identical_signed_users_are_ranked_by_handle_and_never_hold_themselves():
    matrix = sp.csr_matrix(normalize(np.tile([[0.5, -1.0, 2.0]], (50, 1)).astype(np.float32)))

    found = top_n(matrix, 3, block_rows=16)

    assert found.rows[0].tolist() == [1, 2, 3]
    assert found.rows[2].tolist() == [0, 1, 3]
    assert found.rows[49].tolist() == [0, 1, 2]
    assert (found.scores == 1.0).all()


def test_signed_users_asked_for_get_the_same_lists_as_in_a_whole_search():
    matrix = signed_matrix(60, 4, seed=2)
    asked = np.array([59, 0, 17, 17])

    some, every = top_n(matrix, 4, rows=asked), top_n(matrix, 4)

    np.testing.assert_array_equal(some.rows, every.rows[asked])
    np.testing.assert_array_equal(some.scores, every.scores[asked])


def test_a_signed_search_reports_progress_and_leaves_empty_rows_without_neighbours():
    matrix = signed_matrix(25, 3, seed=1).tolil()
    matrix[4] = 0
    seen: list[int] = []

    found = top_n(sp.csr_matrix(matrix), 2, block_rows=10, progress=seen.append)

    assert seen == [10, 20, 25]
    assert found.counts()[4] == 0
    assert 4 not in found.rows


# -- a search cut into blocks: block_top_n for every pair of blocks, merged per asking block -----


def blocks_of(users: int, cuts: list[int]) -> list[slice]:
    """Cut rows 0..users into contiguous blocks at `cuts` (sorted, each in 1..users - 1)."""
    bounds = [0, *cuts, users]
    return [slice(a, b) for a, b in pairwise(bounds)]


def as_handles(rows: np.ndarray, handles: np.ndarray) -> np.ndarray:
    """Turn neighbour rows (positions in `handles`) into handles, -1 staying -1."""
    found = np.full(rows.shape, -1, dtype=np.int64)
    found[rows >= 0] = handles[rows[rows >= 0]]
    return found


def blockwise_top_n(
    matrix: sp.csr_matrix, blocks: list[slice], handles: np.ndarray, n: int, negative: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Search every asking block against every block (itself as None), merge by asking block."""
    found_handles, found_scores = [], []
    for i, asking in enumerate(blocks):
        parts = []
        for j, searched in enumerate(blocks):
            found = block_top_n(
                matrix[asking],
                None if i == j else matrix[searched],
                n,
                negative=negative,
                threads=1,  # tiny blocks: a thread pool would cost more than it saves
            )
            parts.append((as_handles(found.rows, handles[searched]), found.scores))
        merged_handles, merged_scores = merge_top_n(parts, n)
        found_handles.append(merged_handles)
        found_scores.append(merged_scores)
    return np.vstack(found_handles), np.vstack(found_scores)


def assert_blockwise_equals_whole(
    matrix: sp.csr_matrix, cuts: list[int], handles: np.ndarray, n: int, negative: bool = False
) -> None:
    whole = top_n(matrix, n, negative=negative, threads=1)
    got_handles, got_scores = blockwise_top_n(
        matrix, blocks_of(matrix.shape[0], cuts), handles, n, negative
    )
    np.testing.assert_array_equal(got_handles, as_handles(whole.rows, handles))
    np.testing.assert_array_equal(got_scores, whole.scores)


@st.composite
def cut_matrices(
    draw: st.DrawFn, values: st.SearchStrategy[int], features: st.SearchStrategy[int]
) -> tuple[sp.csr_matrix, list[int], np.ndarray, int]:
    """A unit-row matrix of small integers, cuts into up to four row blocks, increasing handles
    with gaps (never the rows' own numbers), and an n up to a few more than the users."""
    users = draw(st.integers(1, 16))
    width = draw(features)
    cells = draw(
        st.lists(st.lists(values, min_size=width, max_size=width), min_size=users, max_size=users)
    )
    cuts = sorted(draw(st.sets(st.integers(1, users - 1), max_size=3))) if users > 1 else []
    gaps = draw(st.lists(st.integers(1, 5), min_size=users, max_size=users))
    handles = 100 + np.cumsum(gaps).astype(np.int64)
    n = draw(st.one_of(st.integers(1, 3), st.integers(1, users + 3)))  # mostly below a block
    matrix = sp.csr_matrix(normalize(np.array(cells, dtype=np.float32))).astype(np.float32)
    return matrix, cuts, handles, n


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(cut_matrices(st.sampled_from([0, 0, 0, 1, 1, 2]), st.integers(1, 5)))
def test_blocks_searched_pair_by_pair_and_merged_equal_the_whole_search_with_ties(case):
    matrix, cuts, handles, n = case
    assert_blockwise_equals_whole(matrix, cuts, handles, n)


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(cut_matrices(st.integers(-2, 2), st.integers(2, 4)))
def test_signed_blocks_searched_pair_by_pair_and_merged_equal_the_whole_search(case):
    matrix, cuts, handles, n = case
    assert_blockwise_equals_whole(matrix, cuts, handles, n, negative=True)


def gapped_handles(users: int) -> np.ndarray:
    return 7 + 3 * np.arange(users, dtype=np.int64) + np.arange(users) % 2


@pytest.mark.parametrize(
    ("make", "negative"),
    [(tied_matrix, False), (signed_matrix, True), (factors_beside_sparse, True)],
)
@pytest.mark.parametrize(
    ("users", "cuts", "n"),
    [
        (5, [1, 2, 3, 4], 3),  # every block one row
        (10, [1, 9], 4),  # one-row blocks at both ends
        (8, [3, 5], 20),  # n larger than the users
    ],
)
def test_blocks_of_one_row_and_n_beyond_the_users_merge_to_the_whole_search(
    make, negative, users, cuts, n
):
    matrix = make(users, 4, seed=users + n)
    assert_blockwise_equals_whole(matrix, cuts, gapped_handles(users), n, negative=negative)


@pytest.mark.parametrize("negative", [False, True])
def test_identical_users_in_several_blocks_list_each_other_by_handle(negative):
    users = 11
    row = [0.5, -1.0, 2.0] if negative else [1.0, 0.0, 2.0]
    matrix = sp.csr_matrix(normalize(np.tile([row], (users, 1)).astype(np.float32)))
    handles = gapped_handles(users)

    found, scores = blockwise_top_n(matrix, blocks_of(users, [1, 4, 8]), handles, 4, negative)

    for user in range(users):
        assert found[user].tolist() == [h for h in handles.tolist() if h != handles[user]][:4]
    assert (scores == 1.0).all()
    assert_blockwise_equals_whole(matrix, [1, 4, 8], handles, 4, negative=negative)


@pytest.mark.parametrize(("make", "negative"), [(tied_matrix, False), (signed_matrix, True)])
def test_an_empty_searched_block_finds_nobody_and_changes_no_merge(make, negative):
    matrix = make(12, 4, seed=3)
    handles = gapped_handles(12)

    empty = block_top_n(matrix, matrix[0:0], 5, negative=negative)
    itself = block_top_n(matrix, None, 5, negative=negative)

    assert empty.rows.shape == empty.scores.shape == (12, 5)
    assert (empty.rows == -1).all()
    assert (empty.scores == 0).all()
    alone = (as_handles(itself.rows, handles), itself.scores)
    with_empty = merge_top_n([alone, (as_handles(empty.rows, handles[0:0]), empty.scores)], 5)
    np.testing.assert_array_equal(with_empty[0], alone[0])
    np.testing.assert_array_equal(with_empty[1], alone[1])


def test_merging_fewer_candidates_than_n_pads_with_no_one():
    first = (np.array([[40, -1], [-1, -1]]), np.array([[0.5, 0.0], [0.0, 0.0]], dtype=np.float32))
    second = (np.array([[12], [30]]), np.array([[0.75], [0.25]], dtype=np.float32))

    handles, scores = merge_top_n([first, second], 5)

    assert handles.tolist() == [[12, 40, -1, -1, -1], [30, -1, -1, -1, -1]]
    assert scores.tolist() == [[0.75, 0.5, 0, 0, 0], [0.25, 0, 0, 0, 0]]
    assert handles.dtype == np.int64
    assert scores.dtype == np.float32


def test_merged_candidates_tied_after_rounding_are_ordered_by_lower_handle():
    # 0.3000001 and 0.3 store as the same score, so the lower handle comes first.
    first = (np.array([[90, 70]]), np.array([[0.3000001, 0.2]], dtype=np.float32))
    second = (np.array([[50]]), np.array([[0.3]], dtype=np.float32))

    handles, _ = merge_top_n([first, second], 3)

    assert handles.tolist() == [[50, 90, 70]]
