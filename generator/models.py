"""The registry of similarity models: each is a signal (a feature builder) plus a weighting.

Every model turns the tables into one L2-normalised user×feature matrix, so that cosine similarity
is just the dot product of two rows. Users with no evidence in a model get an all-zero row, and so
no neighbours under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.preprocessing import normalize

from generator import features
from generator.features import FeatureMatrix, UserIndex
from generator.tables import Tables

Weighting = Callable[[sp.csr_matrix], sp.csr_matrix]


def log_idf(values: sp.csr_matrix) -> sp.csr_matrix:
    """Damp amounts with log1p, then down-weight features most users share (smoothed IDF)."""
    damped = values.copy()
    np.log1p(damped.data, out=damped.data)
    damped.eliminate_zeros()
    weighted: sp.csr_matrix = TfidfTransformer(norm=None, sublinear_tf=False).fit_transform(damped)
    return weighted


def sublinear_tfidf(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Weight counts by TF-IDF with sublinear term frequency (1 + log tf)."""
    weighted: sp.csr_matrix = TfidfTransformer(norm=None, sublinear_tf=True).fit_transform(counts)
    return weighted


def positive_part(values: sp.csr_matrix) -> sp.csr_matrix:
    """Keep only positive evidence (e.g. scores above a tag's mean)."""
    kept = values.copy()
    kept.data = np.maximum(kept.data, 0)
    kept.eliminate_zeros()
    return kept


@dataclass(frozen=True)
class Model:
    """A similarity model: which tables it needs, how it builds features, how it weights them."""

    handle: str
    needs: tuple[str, ...]  # attributes of Tables that must be present
    features: Callable[[Tables, UserIndex], FeatureMatrix]
    weighting: Weighting
    description: str
    settings: dict[str, Any] = field(default_factory=dict)

    def available(self, tables: Tables) -> bool:
        """Tell whether every table the model needs was loaded."""
        return all(getattr(tables, name) is not None for name in self.needs)

    def matrix(self, tables: Tables, index: UserIndex) -> sp.csr_matrix:
        """Return the model's L2-normalised users×features matrix (float32, CSR)."""
        weighted = self.weighting(self.features(tables, index).values)
        normalised = normalize(sp.csr_matrix(weighted, dtype=np.float32), norm="l2", copy=False)
        normalised.eliminate_zeros()
        return sp.csr_matrix(normalised, dtype=np.float32)


MODELS: dict[str, Model] = {
    model.handle: model
    for model in [
        Model(
            handle="interests",
            needs=("interests",),
            features=lambda t, i: features.interest_counts(t.interests, i),  # type: ignore[arg-type]
            weighting=sublinear_tfidf,
            description="interest tags followed, TF-IDF over whole tags",
            settings={"weighting": "tfidf", "tf": "sublinear"},
        ),
        Model(
            handle="course_views",
            needs=("course_views",),
            features=lambda t, i: features.course_view_seconds(t.course_views, i),  # type: ignore[arg-type]
            weighting=log_idf,
            description="seconds viewed per course, log-damped, popular courses down-weighted",
            settings={"weighting": "log1p-idf"},
        ),
        Model(
            handle="assessments",
            needs=("assessments",),
            features=lambda t, i: features.assessment_scores(t.assessments, i),  # type: ignore[arg-type]
            weighting=positive_part,
            description="assessment scores standardised per tag, above-average evidence only",
            settings={"weighting": "zscore-positive"},
        ),
        Model(
            handle="course_tags",
            needs=("course_views", "course_tags"),
            features=lambda t, i: features.course_tag_seconds(t.course_views, t.course_tags, i),  # type: ignore[arg-type]
            weighting=log_idf,
            description="seconds viewed spread over each course's tags, log-damped, TF-IDF",
            settings={"weighting": "log1p-idf"},
        ),
    ]
}
