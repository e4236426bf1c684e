"""Tiny hand-built tables and matrices for tests, in the loader's column names and types."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from generator.tables import LoadReport, Tables
from similarity.features import UserIndex
from similarity.models import MODELS
from similarity.space import ModelSpace


def course_tags_frame(course_tags: list[tuple[str, str]] | None) -> pd.DataFrame | None:
    """Build the course_tags table from (course_id, tag) pairs; None stays None."""
    if course_tags is None:
        return None
    return pd.DataFrame(
        {
            "course_id": pd.Categorical([c for c, _ in course_tags]),
            "course_tags": pd.Categorical([t for _, t in course_tags]),
        }
    )


def make_tables(
    interests: list[tuple[int, str]] | None = None,
    views: list[tuple[int, str, float]] | None = None,
    assessments: list[tuple[int, str, float]] | None = None,
    course_tags: list[tuple[str, str]] | None = None,
    answers: list[tuple[int, str, float]] | None = None,
    questions: list[tuple[str, float, float, bool]] | None = None,
) -> Tables:
    """Build Tables from rows; a table left as None is missing, as when its file is absent.

    `answers` are (user, question_id, answer), answered a day apart in list order; `questions`
    are (question_id, scale_min, scale_max, reverse_keyed), each question's text its id.
    """
    day = pd.Timestamp("2017-06-01")
    return Tables(
        user_interests=None
        if interests is None
        else pd.DataFrame(
            {
                "user_handle": pd.Series([u for u, _ in interests], dtype="int64"),
                "interest_tag": pd.Categorical([t for _, t in interests]),
                "date_followed": [day] * len(interests),
            }
        ),
        user_course_views=None
        if views is None
        else pd.DataFrame(
            {
                "user_handle": pd.Series([u for u, _, _ in views], dtype="int64"),
                "view_date": [day + pd.Timedelta(days=i) for i in range(len(views))],
                "course_id": pd.Categorical([c for _, c, _ in views]),
                "view_time_seconds": pd.Series([s for _, _, s in views], dtype="float64"),
            }
        ),
        user_assessment_scores=None
        if assessments is None
        else pd.DataFrame(
            {
                "user_handle": pd.Series([u for u, _, _ in assessments], dtype="int64"),
                "assessment_tag": pd.Categorical([t for _, t, _ in assessments]),
                "user_assessment_date": [
                    day + pd.Timedelta(days=i) for i in range(len(assessments))
                ],
                "user_assessment_score": pd.Series([s for _, _, s in assessments], dtype="float64"),
            }
        ),
        course_tags=course_tags_frame(course_tags),
        report=LoadReport(),
        user_answers=None
        if answers is None
        else pd.DataFrame(
            {
                "user_handle": pd.Series([u for u, _, _ in answers], dtype="int64"),
                "question_id": pd.Categorical([q for _, q, _ in answers]),
                "answer": pd.Series([a for _, _, a in answers], dtype="float64"),
                "answered_at": pd.Series(
                    [day + pd.Timedelta(days=i) for i in range(len(answers))],
                    dtype="datetime64[ns]",
                ),
            }
        ),
        questions=None
        if questions is None
        else pd.DataFrame(
            {
                "question_id": pd.Categorical([q for q, _, _, _ in questions]),
                "text": pd.Categorical([q for q, _, _, _ in questions]),
                "scale_min": pd.Series([lo for _, lo, _, _ in questions], dtype="float64"),
                "scale_max": pd.Series([hi for _, _, hi, _ in questions], dtype="float64"),
                "reverse_keyed": pd.Series([r for _, _, _, r in questions], dtype="bool"),
            }
        ),
    )


def dated_tables(
    views: list[tuple[int, str, str, float]],
    interests: list[tuple[int, str, str]] | None = None,
    assessments: list[tuple[int, str, str, float]] | None = None,
    course_tags: list[tuple[str, str]] | None = None,
) -> Tables:
    """Build Tables whose rows carry their own dates ("2017-06-01", "2017-06-01 10:00:00")."""
    return Tables(
        user_interests=None
        if interests is None
        else pd.DataFrame(
            {
                "user_handle": pd.Series([u for u, _, _ in interests], dtype="int64"),
                "interest_tag": pd.Categorical([t for _, t, _ in interests]),
                "date_followed": pd.to_datetime(
                    [d for _, _, d in interests], format="ISO8601"
                ).astype("datetime64[ns]"),
            }
        ),
        user_course_views=pd.DataFrame(
            {
                "user_handle": pd.Series([u for u, _, _, _ in views], dtype="int64"),
                "view_date": pd.to_datetime([d for _, _, d, _ in views], format="ISO8601").astype(
                    "datetime64[ns]"
                ),
                "course_id": pd.Categorical([c for _, c, _, _ in views]),
                "view_time_seconds": pd.Series([s for _, _, _, s in views], dtype="float64"),
            }
        ),
        user_assessment_scores=None
        if assessments is None
        else pd.DataFrame(
            {
                "user_handle": pd.Series([u for u, _, _, _ in assessments], dtype="int64"),
                "assessment_tag": pd.Categorical([t for _, t, _, _ in assessments]),
                "user_assessment_date": pd.to_datetime(
                    [d for _, _, d, _ in assessments], format="ISO8601"
                ).astype("datetime64[ns]"),
                "user_assessment_score": pd.Series(
                    [s for _, _, _, s in assessments], dtype="float64"
                ),
            }
        ),
        course_tags=course_tags_frame(course_tags),
        report=LoadReport(),
    )


def tied_matrix(users: int, features: int, seed: int) -> sp.csr_matrix:
    """Many users with one or two binary features, so that equal scores abound."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for user in range(users):
        for feature in rng.choice(features, size=rng.integers(0, 3), replace=False):
            rows.append(user)
            cols.append(feature)
    values = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(users, features))
    return normalize(matrix).astype(np.float32)


SCRIPT_TAG = "<script>alert(1)</script>"


def people_tables() -> Tables:
    """Eight learners whose likenesses are plain to see: Python people (1, 2, 7), web people (3,
    8), a Java person (4), one whose interests are not in ASCII (5) and one whose export holds a
    hostile tag (6)."""
    return make_tables(
        interests=[
            (1, "python"),
            (1, "data-science"),
            (2, "python"),
            (2, "machine-learning"),
            (3, "javascript"),
            (3, "react"),
            (4, "java"),
            (4, "spring"),
            (5, "c++ für anfänger"),
            (5, "日本語"),
            (6, SCRIPT_TAG),
            (6, "python"),
            (7, "data-science"),
            (7, "machine-learning"),
            (8, "react"),
            (8, "javascript"),
            (8, "css"),
        ],
        views=[
            (1, "python-beyond-basics", 600.0),
            (1, "pandas-fundamentals", 300.0),
            (2, "python-beyond-basics", 900.0),
            (3, "react-fundamentals", 500.0),
            (4, "java-fundamentals", 700.0),
            (5, "c++ für anfänger", 400.0),
            (7, "pandas-fundamentals", 800.0),
            (8, "react-fundamentals", 300.0),
            (8, "css-basics", 200.0),
        ],
        assessments=[
            (1, "python", 250.0),
            (2, "python", 220.0),
            (4, "python", 50.0),
            (7, "python", 120.0),
            (3, "javascript", 200.0),
            (8, "javascript", 100.0),
            (4, "java", 150.0),
            (1, "java", 90.0),
        ],
        course_tags=[
            ("python-beyond-basics", "python"),
            ("pandas-fundamentals", "python"),
            ("pandas-fundamentals", "data-science"),
            ("react-fundamentals", "javascript"),
            ("react-fundamentals", "react"),
            ("java-fundamentals", "java"),
            ("css-basics", "css"),
            ("c++ für anfänger", "c++"),
        ],
    )


# The models an export of the platform's four tables builds: all but the survey's.
PLATFORM_MODELS = sorted(handle for handle in MODELS if handle != "survey")


def people_spaces() -> dict[str, ModelSpace]:
    """Return every model's space of `people_tables`."""
    tables = people_tables()
    index = UserIndex.of(tables)
    return {handle: MODELS[handle].space(tables, index) for handle in PLATFORM_MODELS}
