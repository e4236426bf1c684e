"""What a weighting learns adds up over parts of the users: counted apart, then totalled."""

from __future__ import annotations

from functools import reduce
from itertools import pairwise
from operator import add

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from similarity.weighting import counts, statistics, weigh

# Settings that change what is counted (unit, positive), beside ones that do not (tf, idf, k1).
SETTINGS = [
    {},
    {"unit": 60.0},
    {"positive": True},
    {"unit": 0.37, "positive": True, "tf": "bm25", "idf": 1.0, "k1": 1.5},
]


@st.composite
def cut_evidence(draw: st.DrawFn) -> tuple[sp.csr_matrix, list[int]]:
    """Raw evidence (some negative, many zeros, some empty rows) and cuts into row slices, some
    of them empty."""
    users = draw(st.integers(0, 20))
    features = draw(st.integers(1, 6))
    amounts = st.one_of(st.just(0.0), st.floats(-50, 5_000, allow_nan=False, width=32))
    cells = draw(
        st.lists(
            st.lists(amounts, min_size=features, max_size=features),
            min_size=users,
            max_size=users,
        )
    )
    cuts = sorted(draw(st.lists(st.integers(0, users), max_size=4)))
    dense = np.array(cells, dtype=np.float32).reshape(users, features)
    return sp.csr_matrix(dense), cuts


def slices(users: int, cuts: list[int]) -> list[slice]:
    bounds = [0, *cuts, users]
    return [slice(a, b) for a, b in pairwise(bounds)]


@pytest.mark.parametrize("options", SETTINGS)
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(case=cut_evidence())
def test_the_counts_of_row_slices_add_up_to_the_statistics_of_the_whole(options, case):
    values, cuts = case

    total = reduce(add, [counts(values[rows], **options) for rows in slices(values.shape[0], cuts)])
    learned = total.total()

    whole = statistics(values, **options)
    assert learned.users == whole.users == values.shape[0]
    np.testing.assert_array_equal(learned.df, whole.df)
    assert learned.df.dtype == np.int64
    assert learned.average_length == pytest.approx(whole.average_length, rel=1e-12)


# The registered models' kinds of weighting; negative evidence only where it is dropped.
WEIGHINGS = [
    {"tf": "sublinear", "idf": 1.0},
    {"tf": "raw", "positive": True, "idf": 2.0},
    {"tf": "bm25", "unit": 600.0, "k1": 1.2, "b": 0.75, "idf": 1.0},
]


@pytest.mark.parametrize("options", WEIGHINGS)
def test_parts_weighed_with_the_totalled_statistics_are_the_whole_weighed(options):
    rng = np.random.default_rng(5)
    values = sp.random(30, 8, density=0.3, random_state=rng, format="csr", dtype=np.float64)
    shift = 0.2 if options.get("positive") else 0.0
    values.data = np.round((values.data - shift) * 900)  # seconds; some negative if dropped
    parts = [slice(0, 11), slice(11, 11), slice(11, 30)]
    learned = reduce(add, [counts(values[rows], **options) for rows in parts]).total()

    weighed = sp.vstack([weigh(values[rows], **options, learned=learned) for rows in parts])

    expected = weigh(values, **options)
    np.testing.assert_allclose(weighed.toarray(), expected.toarray(), rtol=1e-12, atol=0)
