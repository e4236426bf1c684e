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
from sklearn.preprocessing import normalize

from generator import features
from generator.features import FeatureMatrix, UserIndex
from generator.tables import Tables

Builder = Callable[[Tables, UserIndex, Mapping[str, Any]], sp.csr_matrix]
TERM_WEIGHTS = ("raw", "binary", "log1p", "sublinear", "bm25")


def weigh(
    values: sp.csr_matrix,
    tf: str = "log1p",
    idf: float = 0.0,
    unit: float = 1.0,
    k1: float = 1.2,
    b: float = 0.75,
    positive: bool = False,
) -> sp.csr_matrix:
    """Weight raw evidence per user (rows) and feature (columns): a term weight times IDF**idf.

    ``tf`` is one of: ``raw``; ``binary``; ``log1p`` (of amount / unit); ``sublinear`` (1 + log of
    a count); ``bm25`` (amount / unit saturated by k1, longer rows damped by b). ``idf`` is the
    power of the smoothed IDF, log((1 + users) / (1 + users with the feature)) + 1: 0 turns it
    off, 1 is TF-IDF, more damps popular features harder. ``positive`` drops negative evidence.
    """
    if tf not in TERM_WEIGHTS:
        raise ValueError(f"unknown term weighting {tf!r}; known: {', '.join(TERM_WEIGHTS)}")
    weighted = sp.csr_matrix(values, dtype=np.float64, copy=True)
    if positive:
        np.maximum(weighted.data, 0, out=weighted.data)
    weighted.eliminate_zeros()
    data = weighted.data
    if tf == "binary":
        data[:] = 1.0
    elif tf == "log1p":
        np.log1p(data / unit, out=data)
    elif tf == "sublinear":
        data[:] = 1.0 + np.log(np.maximum(data, 1.0))
    elif tf == "bm25":
        amount = data / unit
        length = np.asarray(sp.csr_matrix((amount, weighted.indices, weighted.indptr)).sum(axis=1))
        length = length.ravel()
        average = length[length > 0].mean() if (length > 0).any() else 1.0
        row_length = np.repeat(length, np.diff(weighted.indptr))
        data[:] = amount * (k1 + 1) / (amount + k1 * (1 - b + b * row_length / average))
    if idf:
        users = weighted.shape[0]
        df = np.bincount(weighted.indices, minlength=weighted.shape[1])
        weights = (np.log((1.0 + users) / (1.0 + df)) + 1.0) ** idf
        data *= weights[weighted.indices]
    return weighted


def unit_rows(matrix: sp.spmatrix) -> sp.csr_matrix:
    """Scale every non-empty row to unit length and drop explicit zeros (float32 CSR)."""
    normalised = normalize(sp.csr_matrix(matrix, dtype=np.float32), norm="l2", copy=False)
    normalised.eliminate_zeros()
    return sp.csr_matrix(normalised, dtype=np.float32)


def combine(blocks: Mapping[str, sp.csr_matrix], weights: Mapping[str, float]) -> sp.csr_matrix:
    """Join unit-row blocks side by side, each scaled by sqrt(weight), and renormalise the rows.

    Before the renormalisation the dot product of two rows is the weighted sum of the blocks'
    cosines, so the hybrid similarity is that sum divided by the two users' norms: a user missing
    a signal is compared on the signals they have.
    """
    kept = [
        blocks[handle] * np.float32(np.sqrt(weights[handle]))
        for handle in blocks
        if weights.get(handle, 0.0) > 0
    ]
    if not kept:
        raise ValueError(f"no block with a positive weight among {sorted(blocks)}: {weights}")
    return unit_rows(sp.hstack(kept, format="csr"))


def _signal(build: Callable[[Tables, UserIndex], FeatureMatrix]) -> Builder:
    """Return a builder that weighs one feature matrix by the model's settings."""

    def weighted(tables: Tables, index: UserIndex, settings: Mapping[str, Any]) -> sp.csr_matrix:
        return weigh(build(tables, index).values, **settings)

    return weighted


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
            needs=("interests",),
            build=_signal(lambda t, i: features.interest_counts(t.interests, i)),  # type: ignore[arg-type]
            description="interest tags followed, TF-IDF over whole tags",
            settings={"tf": "sublinear", "idf": 1.0},
        ),
        Model(
            handle="course_views",
            needs=("course_views",),
            build=_signal(lambda t, i: features.course_view_seconds(t.course_views, i)),  # type: ignore[arg-type]
            description="courses viewed, popular courses down-weighted (IDF)",
            settings={"tf": "binary", "idf": 1.0},
        ),
        Model(
            handle="assessments",
            needs=("assessments",),
            build=_signal(lambda t, i: features.assessment_scores(t.assessments, i)),  # type: ignore[arg-type]
            description="assessment scores standardised per tag, above-average evidence only",
            settings={"tf": "raw", "positive": True},
        ),
        Model(
            handle="course_tags",
            needs=("course_views", "course_tags"),
            build=_signal(
                lambda t, i: features.course_tag_seconds(t.course_views, t.course_tags, i)  # type: ignore[arg-type]
            ),
            description="seconds viewed spread over each course's tags, BM25-saturated, TF-IDF",
            settings={"tf": "bm25", "unit": 600.0, "k1": 1.2, "b": 0.75, "idf": 1.0},
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
        "weights": {"interests": 2.0, "course_views": 1.0, "assessments": 0.5, "course_tags": 1.0}
    },
)

MODELS: dict[str, Model] = {**SIGNALS, HYBRID.handle: HYBRID}
