"""User×feature matrices: one user index shared by every matrix, one small builder per signal.

Every builder returns raw evidence (counts, seconds, scores) as a ``csr_matrix`` with a row per user
of the index, in the index's order, and the feature vocabulary of its columns; weighting and
normalisation belong to the models. Builders read DataFrames in the loader's column names; where
those frames come from (files, S3, Spark) is not this package's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp


class Tables(Protocol):
    """The tables the models read, named as the export's files; None where a file was missing."""

    @property
    def user_interests(self) -> pd.DataFrame | None: ...
    @property
    def user_course_views(self) -> pd.DataFrame | None: ...
    @property
    def user_assessment_scores(self) -> pd.DataFrame | None: ...
    @property
    def course_tags(self) -> pd.DataFrame | None: ...
    @property
    def user_answers(self) -> pd.DataFrame | None: ...
    @property
    def questions(self) -> pd.DataFrame | None: ...


@dataclass(frozen=True)
class UserIndex:
    """The one mapping between user handles and matrix rows: row i holds ``handles[i]`` (sorted)."""

    handles: np.ndarray  # int64, sorted ascending, unique

    @classmethod
    def from_tables(cls, *frames: pd.DataFrame | None) -> UserIndex:
        """Return the index of every user that appears in any of the frames."""
        parts = [f["user_handle"].to_numpy(dtype=np.int64) for f in frames if f is not None]
        handles = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
        return cls(handles)

    @classmethod
    def of(cls, tables: Tables) -> UserIndex:
        """Return the index of every user of the tables (course_tags and questions have none)."""
        return cls.from_tables(
            tables.user_interests,
            tables.user_course_views,
            tables.user_assessment_scores,
            getattr(tables, "user_answers", None),
        )

    def __len__(self) -> int:
        return len(self.handles)

    def rows(self, handles: np.ndarray | pd.Series) -> np.ndarray:
        """Return the rows of the given handles; every handle must be in the index."""
        values = np.asarray(handles, dtype=np.int64)
        rows = np.searchsorted(self.handles, values)
        if len(values) and (
            rows.max(initial=0) >= len(self.handles) or (self.handles[rows] != values).any()
        ):
            raise KeyError("some user handles are not in the user index")
        return rows


@dataclass(frozen=True)
class FeatureMatrix:
    """Raw evidence per user and feature, with the name of each feature column."""

    values: sp.csr_matrix  # users × features, float32
    features: pd.Index


def vocabulary(features: pd.Series) -> pd.Index:
    """Return the distinct names of a feature column, sorted as str: the matrix columns' order.

    Sorted by name, not by first appearance, so that the columns (and the order in which every
    dot product adds them up) do not depend on the order of the export's rows, and any engine
    that finds the same names finds the same columns.
    """
    if isinstance(features.dtype, pd.CategoricalDtype):
        used = features.cat.remove_unused_categories().cat.categories
        names = used.astype(str).to_numpy(dtype=object)
    else:
        names = pd.unique(features.astype(str).to_numpy(dtype=object))
    return pd.Index(np.sort(names), dtype=object)  # type: ignore[no-any-return]


def _codes(features: pd.Series, names: pd.Index) -> np.ndarray:
    """Return each value's column among `names` (-1 for a name not there)."""
    if isinstance(features.dtype, pd.CategoricalDtype):
        categories = names.get_indexer(features.cat.categories.astype(str))
        codes = features.cat.codes.to_numpy()
        return np.where(codes >= 0, categories[codes], -1)
    return names.get_indexer(pd.Index(features.astype(str)))


def _matrix(
    index: UserIndex,
    users: pd.Series,
    features: pd.Series,
    values: np.ndarray,
    names: pd.Index | None = None,
) -> FeatureMatrix:
    """Sum values into a users×features matrix (duplicate (user, feature) pairs add up).

    Columns are `names` when given (a vocabulary found over more rows than these, as a Spark
    block's is; a name not in it is dropped), else `vocabulary(features)`.
    """
    names = vocabulary(features) if names is None else names
    codes = _codes(features, names)
    known = codes >= 0
    if not known.all():
        users, codes, values = users[known], codes[known], values[known]
    matrix = sp.csr_matrix(
        (values.astype(np.float32), (index.rows(users), codes)),
        shape=(len(index), len(names)),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    return FeatureMatrix(matrix, pd.Index(names))


def interest_counts(
    interests: pd.DataFrame, index: UserIndex, names: pd.Index | None = None
) -> FeatureMatrix:
    """Count how often each user followed each interest tag (columns: `names` if given)."""
    ones = np.ones(len(interests), dtype=np.float32)
    return _matrix(index, interests["user_handle"], interests["interest_tag"], ones, names)


def latest_assessments(assessments: pd.DataFrame) -> pd.DataFrame:
    """Return each user's latest score per assessment tag (a retake replaces the earlier one)."""
    return assessments.sort_values("user_assessment_date", kind="stable").drop_duplicates(
        ["user_handle", "assessment_tag"], keep="last"
    )


def assessment_norms(latest: pd.DataFrame) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Return the tags of the latest scores, sorted, with each tag's mean and spread (std).

    A spread of 0 (one taker, or all scored the same) means a score on that tag is no evidence.
    """
    by_tag = latest.groupby("assessment_tag", observed=True, sort=True)["user_assessment_score"]
    mean, spread = by_tag.mean(), by_tag.std(ddof=0).fillna(0.0)
    return (
        pd.Index(mean.index.astype(str)),
        mean.to_numpy(dtype=np.float64),
        spread.to_numpy(dtype=np.float64),
    )


def standardised(scores: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Return scores as z-scores against their tags' mean and spread (0 where no spread)."""
    safe = np.where(spread > 0, spread, 1.0)
    return np.where(spread > 0, (scores - mean) / safe, 0.0)


Norms = tuple[pd.Index, np.ndarray, np.ndarray]  # tags, each one's mean and spread


def assessment_scores(
    assessments: pd.DataFrame,
    index: UserIndex,
    names: pd.Index | None = None,
    norms: Norms | None = None,
) -> FeatureMatrix:
    """Standardise each user's latest score per tag against everyone who took that tag (z-score).

    Done here rather than in a weighting because a score of 0 is real evidence, which a sparse
    matrix could not tell from "not taken". A tag taken by one user, or by users who all scored the
    same, carries no evidence (z = 0). `names` and `norms` (as `assessment_norms` returns them)
    are the columns and norms of all users when these rows are some of them (a Spark block).
    """
    latest = latest_assessments(assessments)
    tags, mean, spread = assessment_norms(latest) if norms is None else norms
    tag = tags.get_indexer(pd.Index(latest["assessment_tag"].astype(str)))
    if (tag < 0).any():
        missing = sorted(set(latest["assessment_tag"].astype(str)[tag < 0]))[:5]
        raise ValueError(f"no norms for assessment tags {missing}: norms must cover every tag")
    scores = latest["user_assessment_score"].to_numpy(dtype=np.float64)
    z = standardised(scores, mean[tag], spread[tag])
    return _matrix(index, latest["user_handle"], latest["assessment_tag"], z, names)


def course_view_seconds(
    course_views: pd.DataFrame, index: UserIndex, names: pd.Index | None = None
) -> FeatureMatrix:
    """Total the seconds each user spent on each course (columns: `names` if given)."""
    seconds = course_views["view_time_seconds"].to_numpy(dtype=np.float64)
    return _matrix(index, course_views["user_handle"], course_views["course_id"], seconds, names)


def typical_seconds(views: FeatureMatrix) -> np.ndarray:
    """Return the median of each course's users' total seconds on it (0 for a course nobody saw),
    what a profile naming a course without saying how long it was viewed counts as."""
    by_course = sp.csc_matrix(views.values)
    typical = np.zeros(by_course.shape[1], dtype=np.float64)
    for course in range(by_course.shape[1]):
        seen = by_course.data[by_course.indptr[course] : by_course.indptr[course + 1]]
        if len(seen):
            typical[course] = float(np.median(seen))
    return typical


def course_tag_shares(courses: pd.Index, course_tags: pd.DataFrame) -> FeatureMatrix:
    """Return each course's tags (courses × tags), a course's share spread evenly over its tags."""
    tags = course_tags[course_tags["course_id"].isin(courses)]
    course_rows = courses.get_indexer(pd.Index(tags["course_id"]))
    tag_names = vocabulary(tags["course_tags"])
    tag_codes = _codes(tags["course_tags"], tag_names)
    tags_per_course = np.bincount(course_rows, minlength=len(courses))
    share = 1.0 / tags_per_course[course_rows]
    spread = sp.csr_matrix(
        (share.astype(np.float32), (course_rows, tag_codes)),
        shape=(len(courses), len(tag_names)),
        dtype=np.float32,
    )
    spread.sum_duplicates()
    return FeatureMatrix(spread, pd.Index(tag_names))


def survey_questions(
    answers: pd.DataFrame, questions: pd.DataFrame | None
) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
    """Return the survey's questions (sorted ids) and each one's scale (low, high) and keying.

    From questions.csv when there is one (its questions only); else the questions answered, each
    on the scale its answers span, none reverse-keyed.
    """
    if questions is not None:
        table = questions.drop_duplicates("question_id").assign(
            question_id=lambda q: q["question_id"].astype(str)
        )
        table = table.sort_values("question_id")
        return (
            pd.Index(table["question_id"]),
            table["scale_min"].to_numpy(dtype=np.float64),
            table["scale_max"].to_numpy(dtype=np.float64),
            table["reverse_keyed"].to_numpy(dtype=bool),
        )
    seen = answers.assign(question_id=answers["question_id"].astype(str))
    span = seen.groupby("question_id", sort=True)["answer"].agg(["min", "max"])
    reverse = np.zeros(len(span), dtype=bool)
    return (
        pd.Index(span.index),
        span["min"].to_numpy(dtype=np.float64),
        span["max"].to_numpy(dtype=np.float64),
        reverse,
    )


def latest_answers(answers: pd.DataFrame) -> pd.DataFrame:
    """Return each user's latest answer per question (by answered_at, else the later row)."""
    ordered = answers
    if "answered_at" in answers.columns:
        ordered = answers.sort_values("answered_at", kind="stable", na_position="first")
    return ordered.drop_duplicates(["user_handle", "question_id"], keep="last")
