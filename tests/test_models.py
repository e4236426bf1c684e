"""Similarity models on tiny tables where the right neighbours are obvious."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.linalg import norm as sparse_norm

from generator.tables import Tables
from similarity.features import (
    FeatureMatrix,
    UserIndex,
    assessment_norms,
    assessment_scores,
    course_view_seconds,
    interest_counts,
    latest_assessments,
    vocabulary,
)
from similarity.models import MODELS
from similarity.neighbours import top_n
from tests.builders import PLATFORM_MODELS, dated_tables, make_tables

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


# -- feature columns: sorted by name, whatever the order of the rows; a block's rows by `names` --

# Rows whose names first appear out of sorted order, with repeated (user, name) pairs and a
# retaken assessment. Seconds are whole, as in the export: their float32 sums are exact.
INTEREST_ROWS = [
    (5, "react", "2017-06-01"),
    (2, "c#", "2017-06-02"),
    (5, "python", "2017-06-03"),
    (9, "react", "2017-06-04"),
    (2, "react", "2017-06-05"),
    (2, "c#", "2017-06-06"),
    (7, "angular", "2017-06-07"),
]
VIEW_ROWS = [
    (9, "react-hooks", "2017-06-01", 600.0),
    (2, "Py-Intro", "2017-06-02", 1800.0),
    (2, "react-hooks", "2017-06-03", 45.0),
    (9, "react-hooks", "2017-06-04", 7.0),
    (3, "css-basics", "2017-06-05", 3600.0),
    (5, "Py-Intro", "2017-06-06", 61.0),
    (3, "Py-Intro", "2017-06-07", 1.0),
]
ASSESSMENT_ROWS = [
    (5, "sql", "2017-08-01", 120.0),
    (2, "java", "2017-08-02", 80.0),
    (9, "sql", "2017-08-03", 250.0),
    (2, "sql", "2017-08-04", 40.0),
    (5, "sql", "2017-08-09", 200.0),  # a retake: the latest score counts
    (7, "java", "2017-08-05", 210.0),
    (3, "c", "2017-08-06", 99.0),
    (7, "c", "2017-08-07", 150.0),
]
NAME_COLUMNS = {
    "user_interests": "interest_tag",
    "user_course_views": "course_id",
    "user_assessment_scores": "assessment_tag",
}


def feature_tables(order: list[int] | None = None, coding: str = "sorted") -> Tables:
    """Build the tables above with each table's rows in `order` (positions, cut to its length)
    and its name column coded as categories sorted, categories in order of first appearance
    (as the loader reads a file), or plain str."""

    def reordered(rows: list[tuple]) -> list[tuple]:
        return rows if order is None else [rows[i] for i in order if i < len(rows)]

    tables = dated_tables(
        views=reordered(VIEW_ROWS),
        interests=reordered(INTEREST_ROWS),
        assessments=reordered(ASSESSMENT_ROWS),
    )
    for table, column in NAME_COLUMNS.items():
        frame = getattr(tables, table)
        names = frame[column].astype(str)
        if coding == "appearance":
            frame[column] = pd.Categorical(names, categories=pd.unique(names))
        elif coding == "str":
            frame[column] = names.astype(object)
    return tables


def built(tables: Tables, index: UserIndex) -> dict[str, FeatureMatrix]:
    return {
        "interests": interest_counts(tables.user_interests, index),
        "course_views": course_view_seconds(tables.user_course_views, index),
        "assessments": assessment_scores(tables.user_assessment_scores, index),
    }


def assert_same_matrix(got: FeatureMatrix, expected: FeatureMatrix) -> None:
    assert got.features.tolist() == expected.features.tolist()
    for part in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(got.values, part), getattr(expected.values, part))
    assert got.values.dtype == expected.values.dtype == np.float32


def test_a_vocabulary_is_the_names_used_sorted_as_str():
    plain = pd.Series(["react", "c#", "angular", "react"])
    coded = pd.Series(pd.Categorical(["sql", "c"], categories=["zig", "sql", "c"]))  # zig unused

    assert vocabulary(plain).tolist() == ["angular", "c#", "react"]
    assert vocabulary(coded).tolist() == ["c", "sql"]


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    order=st.permutations(range(max(len(INTEREST_ROWS), len(VIEW_ROWS), len(ASSESSMENT_ROWS)))),
    coding=st.sampled_from(["sorted", "appearance", "str"]),
)
def test_shuffled_rows_build_the_same_matrices_bit_for_bit_with_columns_sorted_by_name(
    order, coding
):
    original = feature_tables()
    index = UserIndex.of(original)
    expected = built(original, index)

    got = built(feature_tables(order, coding), index)

    for handle, matrix in expected.items():
        assert matrix.features.tolist() == sorted(matrix.features.tolist())
        assert_same_matrix(got[handle], matrix)


@pytest.mark.parametrize("block", [[2, 9], [3], [5, 7, 9], [1, 2, 3]])  # 1 is in no table
@pytest.mark.parametrize("coding", ["appearance", "str"])
def test_a_block_of_users_built_with_the_whole_names_has_the_whole_matrix_rows(block, coding):
    tables = feature_tables(coding=coding)
    whole_index = UserIndex.of(tables)
    whole = built(tables, whole_index)
    index = UserIndex(np.array(block, dtype=np.int64))
    rows = whole_index.rows(np.array([h for h in block if h in whole_index.handles]))

    def of_block(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["user_handle"].isin(block)].reset_index(drop=True)

    norms = assessment_norms(latest_assessments(tables.user_assessment_scores))
    got = {
        "interests": interest_counts(
            of_block(tables.user_interests), index, names=whole["interests"].features
        ),
        "course_views": course_view_seconds(
            of_block(tables.user_course_views), index, names=whole["course_views"].features
        ),
        "assessments": assessment_scores(
            of_block(tables.user_assessment_scores),
            index,
            names=whole["assessments"].features,
            norms=norms,
        ),
    }

    present = np.isin(index.handles, whole_index.handles)
    for handle, matrix in whole.items():
        assert got[handle].features.tolist() == matrix.features.tolist()
        dense = got[handle].values.toarray()
        np.testing.assert_array_equal(dense[present], matrix.values[rows].toarray())
        assert not dense[~present].any()


def test_a_name_outside_the_given_names_is_dropped():
    tables = feature_tables()
    index = UserIndex.of(tables)

    found = interest_counts(tables.user_interests, index, names=pd.Index(["c#", "react", "zig"]))

    assert found.features.tolist() == ["c#", "react", "zig"]
    by_name = dict(zip(found.features, np.asarray(found.values.sum(axis=0)).ravel(), strict=True))
    assert by_name == {"c#": 2.0, "react": 3.0, "zig": 0.0}  # python and angular are dropped
