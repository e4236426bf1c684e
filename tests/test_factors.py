"""The factorization model: users as low-rank factors of their course views, searched by cosine."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from generator import pipeline
from similarity.factors import factorize
from similarity.features import UserIndex
from similarity.models import MODELS, SIGNALS
from similarity.neighbours import top_n
from store.memory import MemoryStore
from tests.builders import make_tables

ROOT = Path(__file__).resolve().parents[1]
FACTORS = SIGNALS["course_factors"]
SVD = FACTORS.with_settings(
    {"tf": "binary", "idf": 1.0, "method": "svd", "factors": 4, "iterations": 5, "seed": 0}
)

# Users 1-4 take Python courses, users 5-8 JavaScript ones, each three of four so that no two
# users of a community are identical; user 9 follows a tag but viewed nothing.
PYTHON = ["py-intro", "py-web", "py-data", "py-test"]
JAVASCRIPT = ["js-intro", "js-react", "js-node", "js-test"]
TABLES = make_tables(
    interests=[(9, "cobol")],
    views=[
        (user, course, 600.0 * (1 + i))
        for community, first in ((PYTHON, 1), (JAVASCRIPT, 5))
        for user in range(first, first + 4)
        for i, course in enumerate(community)
        if i != user - first
    ],
)
INDEX = UserIndex.of(TABLES)


def similarity(matrix: sp.csr_matrix) -> np.ndarray:
    return (matrix @ matrix.T).toarray()


@pytest.mark.parametrize("model", [FACTORS, SVD], ids=["als", "svd"])
def test_users_with_the_same_courses_are_closer_than_users_with_disjoint_ones(model):
    scores = similarity(model.matrix(TABLES, INDEX))
    python, javascript = np.arange(0, 4), np.arange(4, 8)

    for community, other in [(python, javascript), (javascript, python)]:
        within = scores[np.ix_(community, community)][~np.eye(4, dtype=bool)]
        assert within.min() > scores[np.ix_(community, other)].max()


@pytest.mark.parametrize("model", [FACTORS, SVD], ids=["als", "svd"])
def test_each_user_s_neighbours_are_their_own_community(model):
    found = top_n(model.matrix(TABLES, INDEX), 3)

    for row in range(8):
        community = set(range(0, 4)) if row < 4 else set(range(4, 8))
        assert set(found.rows[row].tolist()) == community - {row}


def test_factors_are_unit_rows_with_negative_values_and_a_user_without_views_has_none():
    matrix = FACTORS.matrix(TABLES, INDEX)

    assert matrix.dtype == np.float32
    assert matrix.data.min() < 0
    assert np.diff(matrix.indptr).tolist() == [32] * 8 + [0]  # user 9: no views, no factors
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms[:8], 1.0, atol=1e-5)
    assert top_n(matrix, 3).counts()[8] == 0


@pytest.mark.parametrize("model", [FACTORS, SVD], ids=["als", "svd"])
def test_the_same_seed_gives_the_same_factors(model):
    first, again = model.matrix(TABLES, INDEX), model.matrix(TABLES, INDEX)

    np.testing.assert_array_equal(first.toarray(), again.toarray())


def test_the_factors_do_not_depend_on_the_order_the_export_lists_its_views_and_courses():
    views = TABLES.user_course_views
    shuffled = views.iloc[::-1].reset_index(drop=True)
    shuffled["course_id"] = shuffled["course_id"].cat.reorder_categories(
        views["course_id"].cat.categories[::-1]
    )
    reordered = dataclasses.replace(TABLES, user_course_views=shuffled)

    np.testing.assert_array_equal(
        FACTORS.matrix(reordered, INDEX).toarray(), FACTORS.matrix(TABLES, INDEX).toarray()
    )


def test_another_seed_gives_other_factors():
    other = FACTORS.with_settings({**FACTORS.settings, "seed": 1})

    assert not np.array_equal(
        FACTORS.matrix(TABLES, INDEX).toarray(), other.matrix(TABLES, INDEX).toarray()
    )


def test_the_settings_are_the_whole_of_the_model():
    fewer = FACTORS.with_settings({**FACTORS.settings, "factors": 3})

    assert fewer.matrix(TABLES, INDEX).shape == (9, 3)
    assert set(FACTORS.settings) >= {
        "tf",
        "method",
        "factors",
        "regularization",
        "iterations",
        "seed",
    }


def test_a_catalogue_no_larger_than_the_factors_is_kept_whole_by_the_svd():
    values = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=np.float32))

    found = factorize(values, method="svd", factors=3)

    np.testing.assert_array_equal(found, [[1, 0, 0], [0, 2, 0], [0, 0, 0]])


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"method": "nmf"}, "unknown factorization 'nmf'"), ({"factors": 0}, "at least 1")],
)
def test_bad_factorization_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        factorize(sp.csr_matrix(np.eye(3, dtype=np.float32)), **settings)


def test_the_registry_imports_no_factorization_library():
    # The server imports the registry; fitting libraries load only when a model is built.
    code = "import sys, similarity.models; print('implicit' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_the_pipeline_publishes_course_factors_runs_with_their_settings():
    store = MemoryStore()

    results = pipeline.run(TABLES, store, ["course_factors"], top_n_stored=5)

    run = store.current_run("course_factors")
    assert [r.model_handle for r in results] == ["course_factors"]
    assert run.user_count == 8  # user 9 viewed nothing: no list
    assert run.settings == {**FACTORS.settings, "search": "exact"}
    found = store.get_list(run, 2)
    assert {n.user_handle for n in found.neighbours[:3]} == {1, 3, 4}
    assert 2 not in {n.user_handle for n in found.neighbours}
    assert all(n.score > 0 for n in found.neighbours)
    assert store.get_list(run, 9) is None


def test_an_approximate_search_of_the_factors_finds_each_community():
    store = MemoryStore()

    pipeline.run(TABLES, store, ["course_factors"], top_n_stored=3, approximate=True)

    run = store.current_run("course_factors")
    assert run.settings["search"] == "approximate"
    assert run.settings["recall_sample"] == 1.0
    for user in range(1, 9):
        community = set(range(1, 5)) if user < 5 else set(range(5, 9))
        found = store.get_list(run, user)
        assert {n.user_handle for n in found.neighbours} == community - {user}


def test_the_hybrid_can_weigh_the_factors_as_a_block():
    weights = {handle: 0.0 for handle in SIGNALS} | {"course_views": 1.0, "course_factors": 1.0}
    hybrid = MODELS["hybrid"].with_settings({"weights": weights})

    found = top_n(hybrid.matrix(TABLES, INDEX), 3)

    for row in range(8):
        community = set(range(0, 4)) if row < 4 else set(range(4, 8))
        assert set(found.rows[row].tolist()) == community - {row}
