"""The registry of similarity models: each is a signal (a feature builder) plus a weighting.

Every model turns the tables into one L2-normalised user×feature matrix, so that cosine similarity
is just the dot product of two rows. Users with no evidence in a model get an all-zero row, and so
no neighbours under it. A model's ``settings`` are the whole of its weighting: the matrix is built
from them, so the settings recorded with a run are exactly what produced it. The defaults below
are the ones the offline evaluation chose (``run_generator.py evaluate --tune``, see README).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from similarity import factors, features
from similarity.features import FeatureMatrix, Tables, UserIndex
from similarity.weighting import combine, unit_rows, weigh

Builder = Callable[[Tables, UserIndex, Mapping[str, Any]], sp.csr_matrix]


def _signal(build: Callable[[Tables, UserIndex], FeatureMatrix]) -> Builder:
    """Return a builder that weighs one feature matrix by the model's settings."""

    def weighted(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> sp.csr_matrix:
        return weigh(build(tables, index).values, **settings)

    return weighted


def _course_factors(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> sp.csr_matrix:
    """Factorize the weighted course views; return the user factors (dense values, as CSR)."""
    fitting = {key: value for key, value in settings.items() if key in factors.SETTINGS}
    weighting = {key: value for key, value in settings.items() if key not in factors.SETTINGS}
    views = features.course_view_seconds(tables.user_course_views, index)  # type: ignore[arg-type]
    # Columns by course name: the fit's random start must not depend on the order in which an
    # export happened to list its courses.
    by_name = np.argsort(views.features.astype(str).to_numpy())
    return sp.csr_matrix(factors.factorize(weigh(views.values[:, by_name], **weighting), **fitting))


@dataclass(frozen=True)
class Model:
    """A similarity model: which tables it needs, how it builds weighted features, its settings.

    A model whose settings hold ``weights`` combines signal models (see ``combine``): it needs no
    table of its own and can be built when any signal it weighs above zero can.
    """

    handle: str
    needs: tuple[str, ...]  # attributes of Tables that must all be present
    build: Builder  # (tables, index, settings) → weighted users×features, any scale
    description: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> dict[str, Model]:
        """Return the signal models a combined model weighs above zero (none for a signal)."""
        weights: Mapping[str, float] = self.settings.get("weights", {})
        return {h: SIGNALS[h] for h, w in weights.items() if w > 0}

    def available(self, tables: Tables) -> bool:
        """Tell whether the tables the model needs were loaded."""
        return self.unavailable(tables) is None

    def unavailable(self, tables: Tables) -> str | None:
        """Return why the model cannot be built from the tables (which are missing), or None."""
        if self.blocks:
            if any(block.available(tables) for block in self.blocks.values()):
                return None
            missing = sorted(
                {n for b in self.blocks.values() for n in b.needs if getattr(tables, n) is None}
            )
            return f"no {' nor '.join(missing)} table for any of {', '.join(self.blocks)}"
        missing = [name for name in self.needs if getattr(tables, name) is None]
        return f"no {' or '.join(missing)} table" if missing else None

    def matrix(self, tables: Tables, index: UserIndex) -> sp.csr_matrix:
        """Return the model's L2-normalised users×features matrix (float32, CSR)."""
        return unit_rows(self.build(tables, index, self.settings))

    def with_settings(self, settings: Mapping[str, Any]) -> Model:
        """Return the same model with other settings (how variants are tried)."""
        return dataclasses.replace(self, settings=dict(settings))


SIGNALS: dict[str, Model] = {
    model.handle: model
    for model in [
        Model(
            handle="interests",
            needs=("user_interests",),
            build=_signal(lambda t, i: features.interest_counts(t.user_interests, i)),  # type: ignore[arg-type]
            description="interest tags followed, TF-IDF over whole tags",
            settings={"tf": "sublinear", "idf": 1.0},
        ),
        Model(
            handle="course_views",
            needs=("user_course_views",),
            build=_signal(lambda t, i: features.course_view_seconds(t.user_course_views, i)),  # type: ignore[arg-type]
            description="courses viewed, popular courses down-weighted (IDF)",
            settings={"tf": "binary", "idf": 1.0},
        ),
        Model(
            handle="assessments",
            needs=("user_assessment_scores",),
            build=_signal(lambda t, i: features.assessment_scores(t.user_assessment_scores, i)),  # type: ignore[arg-type]
            description="assessment scores standardised per tag, above-average evidence only",
            settings={"tf": "raw", "positive": True},
        ),
        Model(
            handle="course_tags",
            needs=("user_course_views", "course_tags"),
            build=_signal(
                lambda t, i: features.course_tag_seconds(t.user_course_views, t.course_tags, i)  # type: ignore[arg-type]
            ),
            description="seconds viewed spread over each course's tags, BM25-saturated, TF-IDF",
            settings={"tf": "bm25", "unit": 600.0, "k1": 1.2, "b": 0.75, "idf": 1.0},
        ),
        Model(
            handle="course_factors",
            needs=("user_course_views",),
            build=_course_factors,
            description="courses viewed, as low-rank user factors (ALS for implicit feedback)",
            settings={
                "tf": "binary",
                "idf": 1.0,
                "method": "als",
                "factors": 32,
                "regularization": 1.0,
                "alpha": 1.0,
                "iterations": 15,
                "seed": 0,
            },
        ),
    ]
}


def _hybrid(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> sp.csr_matrix:
    """Join the blocks of the weighted signal models whose tables are present."""
    weights: Mapping[str, float] = settings["weights"]
    blocks = {
        handle: SIGNALS[handle].matrix(tables, index)
        for handle, weight in weights.items()
        if weight > 0 and SIGNALS[handle].available(tables)
    }
    return combine(blocks, weights)


HYBRID = Model(
    handle="hybrid",
    needs=(),
    build=_hybrid,
    description="the signals' cosines summed with weights chosen by the offline evaluation",
    # Chosen by `run_generator.py evaluate --tune` on the 10,000-user synthetic export (README).
    settings={
        "weights": {
            "interests": 2.0,
            "course_views": 1.0,
            "assessments": 0.5,
            "course_tags": 1.0,
            "course_factors": 0.0,
        }
    },
)

MODELS: dict[str, Model] = {**SIGNALS, HYBRID.handle: HYBRID}
