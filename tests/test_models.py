"""Similarity models on tiny tables where the right neighbours are obvious."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.linalg import norm as sparse_norm

from similarity.features import UserIndex
from similarity.models import MODELS
from similarity.neighbours import top_n
from tests.builders import PLATFORM_MODELS, make_tables

# Two communities in every signal: users 1-3 do Python things, users 4-6 do JavaScript things.
# User 7 only has weak evidence shared with both; user 8 appears in the interests table only.
TABLES = make_tables(
    interests=[(u, t) for u in (1, 2, 3) for t in ("python", "django")]
    + [(u, t) for u in (4, 5, 6) for t in ("javascript", "react")]
    + [(7, "python"), (7, "javascript"), (8, "c#")],
    views=[(u, "py-intro", 1800.0) for u in (1, 2, 3)]
    + [(u, "django-deep-dive", 3600.0) for u in (1, 2, 3)]
    + [(u, "js-intro", 1800.0) for u in (4, 5, 6)]
    + [(u, "react-hooks", 2400.0) for u in (4, 5, 6)]
    + [(7, "py-intro", 60.0), (7, "js-intro", 60.0)],
    assessments=[(u, "python", 250.0) for u in (1, 2, 3)]
    + [(u, "javascript", 250.0) for u in (4, 5, 6)]
    + [(u, "python", 50.0) for u in (4, 5, 6)]
    + [(u, "javascript", 50.0) for u in (1, 2, 3)],
    course_tags=[
        ("py-intro", "python"),
        ("django-deep-dive", "python"),
        ("django-deep-dive", "django"),
        ("js-intro", "javascript"),
        ("react-hooks", "javascript"),
        ("react-hooks", "react"),
    ],
)
INDEX = UserIndex.of(TABLES)


def neighbours_of(model: str, handle: int, n: int = 2) -> list[int]:
    found = top_n(MODELS[model].matrix(TABLES, INDEX), n)
    row = int(INDEX.rows(np.array([handle]))[0])
    return [int(INDEX.handles[r]) for r in found.rows[row] if r >= 0]


@pytest.mark.parametrize("model", PLATFORM_MODELS)
def test_every_model_finds_each_users_own_community(model):
    for handle, community in [(1, {2, 3}), (2, {1, 3}), (5, {4, 6})]:
        assert set(neighbours_of(model, handle)) == community


@pytest.mark.parametrize("model", PLATFORM_MODELS)
def test_every_model_yields_unit_rows_or_empty_rows(model):
    matrix = MODELS[model].matrix(TABLES, INDEX)
    assert matrix.shape[0] == len(INDEX)
    assert matrix.dtype == np.float32
    norms = sparse_norm(matrix, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("model", "users_without_evidence"),
    [
        ("interests", set()),
        ("course_views", {8}),
        ("assessments", {7, 8}),
        ("course_tags", {8}),
        ("course_factors", {8}),
        ("hybrid", set()),
    ],
)
def test_users_without_evidence_in_a_model_have_empty_rows(model, users_without_evidence):
    matrix = MODELS[model].matrix(TABLES, INDEX)
    empty = {
        int(h) for h, nnz in zip(INDEX.handles, np.diff(matrix.indptr), strict=True) if nnz == 0
    }
    assert empty == users_without_evidence


def test_tags_are_whole_tokens_so_csharp_is_not_c():
    tables = make_tables(interests=[(1, "c#"), (2, "c"), (3, "c#")])
    index = UserIndex.from_tables(tables.user_interests)
    found = top_n(MODELS["interests"].matrix(tables, index), 5)
    assert found.rows[0].tolist()[:1] == [2]  # row 2 is user 3
    assert found.counts().tolist() == [1, 0, 1]


def test_a_rare_shared_interest_counts_more_than_a_common_one():
    everyone = [(u, "javascript") for u in range(3, 11)]
    tables = make_tables(
        interests=[*everyone, (1, "javascript"), (1, "elm"), (2, "elm"), (2, "ocaml"), (3, "go")]
    )
    index = UserIndex.from_tables(tables.user_interests)
    matrix = MODELS["interests"].matrix(tables, index)
    similarity = (matrix @ matrix.T).toarray()
    # User 1 shares rare elm with user 2 and common javascript with user 3; both pairs are
    # otherwise alike (one tag of their own each).
    assert similarity[0, 1] > similarity[0, 2] > 0


def test_a_popular_course_counts_less_than_a_niche_one():
    popular = [(u, "intro", 600.0) for u in range(1, 21)]
    tables = make_tables(views=[*popular, (1, "niche", 600.0), (2, "niche", 600.0)])
    index = UserIndex.from_tables(tables.user_course_views)
    matrix = MODELS["course_views"].matrix(tables, index)
    similarity = (matrix @ matrix.T).toarray()
    assert similarity[0, 1] > 0.9 > similarity[0, 2]


def test_zero_second_views_are_no_evidence():
    tables = make_tables(views=[(1, "a", 0.0), (2, "a", 0.0), (3, "a", 10.0)])
    index = UserIndex.from_tables(tables.user_course_views)
    matrix = MODELS["course_views"].matrix(tables, index)
    assert np.diff(matrix.indptr).tolist() == [0, 0, 1]


def test_assessments_compare_users_by_their_standing_on_each_tag():
    tables = make_tables(
        assessments=[(1, "sql", 290.0), (2, "sql", 280.0), (3, "sql", 20.0), (4, "sql", 10.0)]
    )
    index = UserIndex.from_tables(tables.user_assessment_scores)
    found = top_n(MODELS["assessments"].matrix(tables, index), 3)
    assert found.rows[0].tolist() == [1, -1, -1]
    assert found.counts().tolist() == [1, 1, 0, 0]


def test_the_latest_assessment_score_counts_when_a_tag_was_retaken():
    first = [(1, "sql", 10.0), (2, "sql", 200.0), (3, "sql", 100.0)]
    tables = make_tables(assessments=[*first, (1, "sql", 290.0)])  # rows are dated in order
    index = UserIndex.from_tables(tables.user_assessment_scores)
    matrix = MODELS["assessments"].matrix(tables, index)
    assert np.diff(matrix.indptr).tolist() == [1, 1, 0]


def test_course_tags_relate_users_who_watched_different_courses_on_the_same_topic():
    tables = make_tables(
        views=[(1, "a", 600.0), (2, "b", 600.0), (3, "c", 600.0)],
        course_tags=[("a", "kubernetes"), ("b", "kubernetes"), ("c", "excel")],
    )
    index = UserIndex.from_tables(tables.user_course_views)
    found = top_n(MODELS["course_tags"].matrix(tables, index), 2)
    assert found.rows[0].tolist() == [1, -1]
    assert found.counts().tolist() == [1, 1, 0]
