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
import pandas as pd
import scipy.sparse as sp

from similarity import factors, features, survey
from similarity.features import FeatureMatrix, Tables, UserIndex
from similarity.space import ANSWERS, Block, ModelSpace
from similarity.weighting import Statistics, combine, statistics, unit_rows, weigh


@dataclass(frozen=True)
class Fitted:
    """A model built on tables: weighted users × columns (any scale) and the blocks that made it."""

    values: sp.csr_matrix
    blocks: tuple[Block, ...]


Builder = Callable[[Tables, UserIndex, Mapping[str, Any]], Fitted]


def _names(index: pd.Index | list[str]) -> np.ndarray:
    """Return names as an object array of str (a fixed-width one is as wide as the longest)."""
    names = np.empty(len(index), dtype=object)
    names[:] = [str(name) for name in index]
    return names


# Each weighed signal's block: the kind of evidence a profile gives it, and its features' label.
WEIGHED_BLOCKS: dict[str, tuple[str, str]] = {
    "interests": ("interests", "interest"),
    "course_views": ("courses", "course"),
    "assessments": ("assessments", "assessment"),
    "course_tags": ("courses", "course_tag"),
}


def weighed_block(
    handle: str,
    settings: Mapping[str, Any],
    inputs: pd.Index | list[str],
    columns: pd.Index | list[str],
    learned: Statistics,
    **arrays: np.ndarray,
) -> Block:
    """Return a weighed signal's block: what its weighting learned (whichever engine counted it)
    and the arrays that place a profile's inputs in its columns."""
    kind, label = WEIGHED_BLOCKS[handle]
    return Block(
        handle=handle,
        kind=kind,
        label=label,
        settings=dict(settings),
        inputs=_names(inputs),
        features=_names(columns),
        users=learned.users,
        average_length=learned.average_length,
        arrays={"df": learned.df, **arrays},
    )


def _weighed(
    handle: str, raw: FeatureMatrix, settings: Mapping[str, Any], **arrays: np.ndarray
) -> Fitted:
    """Weigh raw evidence whose columns are a profile's inputs; keep what the weighting learned."""
    learned = statistics(raw.values, **settings)
    block = weighed_block(handle, settings, raw.features, raw.features, learned, **arrays)
    return Fitted(weigh(raw.values, **settings, learned=learned), (block,))


def _interests(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> Fitted:
    raw = features.interest_counts(tables.user_interests, index)  # type: ignore[arg-type]
    return _weighed("interests", raw, settings)


def _course_views(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> Fitted:
    raw = features.course_view_seconds(tables.user_course_views, index)  # type: ignore[arg-type]
    typical = features.typical_seconds(raw)
    return _weighed("course_views", raw, settings, typical=typical)


def assessment_arrays(columns: pd.Index, norms: features.Norms) -> dict[str, np.ndarray]:
    """Return each assessment column's mean and spread, what place a profile's scores."""
    tags, mean, spread = norms
    at = tags.get_indexer(pd.Index(columns.astype(str)))
    return {"mean": mean[at], "spread": spread[at]}


def _assessments(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> Fitted:
    scores = tables.user_assessment_scores
    raw = features.assessment_scores(scores, index)  # type: ignore[arg-type]
    norms = features.assessment_norms(features.latest_assessments(scores))  # type: ignore[arg-type]
    return _weighed("assessments", raw, settings, **assessment_arrays(raw.features, norms))


def _course_tags(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> Fitted:
    views = features.course_view_seconds(tables.user_course_views, index)  # type: ignore[arg-type]
    shares = features.course_tag_shares(views.features, tables.course_tags)  # type: ignore[arg-type]
    tagged = tag_seconds(views.values, shares.values)
    learned = statistics(tagged, **settings)
    block = weighed_block(
        "course_tags",
        settings,
        views.features,
        shares.features,
        learned,
        **course_tag_arrays(features.typical_seconds(views), shares.values),
    )
    return Fitted(weigh(tagged, **settings, learned=learned), (block,))


def tag_seconds(seconds: sp.csr_matrix, shares: sp.csr_matrix) -> sp.csr_matrix:
    """Spread each user's seconds on each course over the course's tags (users × tags)."""
    return sp.csr_matrix(seconds @ shares)


def course_tag_arrays(typical: np.ndarray, shares: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Return what places a profile's courses in course_tags' columns: each course's typical
    seconds and its share of each tag."""
    return {
        "typical": typical,
        "shares.data": shares.data,
        "shares.indices": shares.indices,
        "shares.indptr": shares.indptr,
    }


def _course_factors(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> Fitted:
    """Factorize the weighted course views; the user factors are the rows (dense, as CSR)."""
    fitting = {key: value for key, value in settings.items() if key in factors.SETTINGS}
    weighting = {key: value for key, value in settings.items() if key not in factors.SETTINGS}
    views = features.course_view_seconds(tables.user_course_views, index)  # type: ignore[arg-type]
    # Columns by course name: the fit's random start must not depend on the order in which an
    # export happened to list its courses.
    by_name = np.argsort(views.features.astype(str).to_numpy())
    raw = FeatureMatrix(sp.csr_matrix(views.values[:, by_name]), views.features[by_name])
    learned = statistics(raw.values, **weighting)
    users, items = factors.fit(weigh(raw.values, **weighting, learned=learned), **fitting)
    block = Block(
        handle="course_factors",
        kind="courses",
        label="factor",
        settings=dict(settings),
        inputs=_names(raw.features),
        features=_names([f"factor {i + 1}" for i in range(items.shape[1])]),
        users=learned.users,
        average_length=learned.average_length,
        arrays={"df": learned.df, "typical": features.typical_seconds(raw), "items": items},
    )
    return Fitted(sp.csr_matrix(users), (block,))


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
                {
                    n
                    for b in self.blocks.values()
                    for n in b.needs
                    if getattr(tables, n, None) is None
                }
            )
            return f"no {' nor '.join(missing)} table for any of {', '.join(self.blocks)}"
        missing = [name for name in self.needs if getattr(tables, name, None) is None]
        return f"no {' or '.join(missing)} table" if missing else None

    def matrix(self, tables: Tables, index: UserIndex) -> sp.csr_matrix:
        """Return the model's L2-normalised users×features matrix (float32, CSR)."""
        return unit_rows(self.build(tables, index, self.settings).values)

    def space(self, tables: Tables, index: UserIndex) -> ModelSpace:
        """Return the model's space: its unit matrix and what places a profile in it."""
        fitted = self.build(tables, index, self.settings)
        return ModelSpace(
            model_handle=self.handle,
            settings=dict(self.settings),
            handles=index.handles,
            matrix=unit_rows(fitted.values),
            blocks=fitted.blocks,
        )

    def with_settings(self, settings: Mapping[str, Any]) -> Model:
        """Return the same model with other settings (how variants are tried)."""
        return dataclasses.replace(self, settings=dict(settings))


def _survey(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> Fitted:
    """Place users by their survey answers: keyed, standardised, reduced to traits (factor
    analysis); a user who answered fewer than `min_answered` of the questions gets no row."""
    assert tables.user_answers is not None  # the model needs it: checked by `available`
    answers = features.latest_answers(tables.user_answers)
    ids, low, high, reverse = features.survey_questions(answers, tables.questions)
    rows = index.rows(answers["user_handle"])
    cols = ids.get_indexer(pd.Index(answers["question_id"].astype(str)))
    known = cols >= 0  # an answer to a question not in questions.csv (the loader rejects them)
    rows, cols = rows[known], cols[known]
    values = answers["answer"].to_numpy(dtype=np.float64)[known]
    scales = survey.Scales(low, high, reverse)
    shares = np.zeros((len(index), len(ids)))
    answered = np.zeros((len(index), len(ids)), dtype=bool)
    shares[rows, cols], answered[rows, cols] = scales.shares(values, cols), True
    counts = answered.sum(axis=0)
    mean = np.where(counts > 0, (shares * answered).sum(axis=0) / np.maximum(counts, 1), 0.0)
    spread = np.sqrt(
        np.where(
            counts > 0, ((shares - mean) ** 2 * answered).sum(axis=0) / np.maximum(counts, 1), 0.0
        )
    )
    z = survey.standardised(shares, answered, mean, spread)
    served = answered.sum(axis=1) >= settings["min_answered"] * len(ids)
    chosen = settings["traits"]
    if chosen == "auto":
        chosen = survey.parallel_analysis(z[served], seed=settings["seed"])
    fitted = survey.fit_traits(z[served], int(chosen), seed=settings["seed"])
    scores = np.zeros((len(index), len(fitted.components)))
    scores[served] = fitted.scores(z[served])
    names = [f"trait {i + 1}" for i in range(len(fitted.components))]
    block = Block(
        handle="survey",
        kind=ANSWERS,
        label="trait",
        settings=dict(settings),
        inputs=_names(ids),
        features=_names(names),
        users=len(index),
        arrays={
            "low": low,
            "high": high,
            "reverse": reverse,
            "mean": mean,
            "spread": spread,
            "components": fitted.components,
            "noise_variance": fitted.noise_variance,
            "fit_mean": fitted.mean,
        },
        summary={
            "traits": len(names),
            "traits_from": "parallel analysis" if settings["traits"] == "auto" else "settings",
            "questions": len(ids),
            "users_placed": int(served.sum()),
            "users_not_placed": int((answered.any(axis=1) & ~served).sum()),
            "loadings": {
                str(q): [round(float(x), 3) for x in fitted.components[:, at]]
                for at, q in enumerate(ids)
            },
        },
    )
    return Fitted(sp.csr_matrix(scores), (block,))


SIGNALS: dict[str, Model] = {
    model.handle: model
    for model in [
        Model(
            handle="interests",
            needs=("user_interests",),
            build=_interests,
            description="interest tags followed, TF-IDF over whole tags",
            settings={"tf": "sublinear", "idf": 1.0},
        ),
        Model(
            handle="course_views",
            needs=("user_course_views",),
            build=_course_views,
            description="courses viewed, popular courses down-weighted (IDF)",
            settings={"tf": "binary", "idf": 1.0},
        ),
        Model(
            handle="assessments",
            needs=("user_assessment_scores",),
            build=_assessments,
            description="assessment scores standardised per tag, above-average evidence only",
            settings={"tf": "raw", "positive": True},
        ),
        Model(
            handle="course_tags",
            needs=("user_course_views", "course_tags"),
            build=_course_tags,
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
        Model(
            handle="survey",
            needs=("user_answers",),
            build=_survey,
            description="survey answers, keyed and standardised, as traits (factor analysis)",
            settings={"traits": "auto", "min_answered": survey.MIN_ANSWERED, "seed": 0},
        ),
    ]
}


def _hybrid(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> Fitted:
    """Join the blocks of the weighted signal models whose tables are present."""
    weights: Mapping[str, float] = settings["weights"]
    fitted = {
        handle: SIGNALS[handle].build(tables, index, SIGNALS[handle].settings)
        for handle, weight in weights.items()
        if weight > 0 and SIGNALS[handle].available(tables)
    }
    values = combine({h: unit_rows(f.values) for h, f in fitted.items()}, weights)
    blocks, offset = [], 0
    for handle, part in fitted.items():
        (block,) = part.blocks
        blocks.append(dataclasses.replace(block, weight=float(weights[handle]), offset=offset))
        offset += block.width
    return Fitted(values, tuple(blocks))


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
            "survey": 0.0,
        }
    },
)

MODELS: dict[str, Model] = {**SIGNALS, HYBRID.handle: HYBRID}
