"""Choose each signal model's weighting and the hybrid's weights on a validation split.

The validation split is the evaluation's hold-out applied again to its training side, so no test
course (nor anything dated after one) is ever seen while choosing; the choice is measured with the
same recall@k as `generator.evaluate`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import scipy.sparse as sp

from generator.evaluate import MAX_USERS, TOP_N_STORED, Holdout, K, Scores, measure, split
from generator.tables import Tables
from similarity.features import UserIndex
from similarity.models import MODELS, SIGNALS, Model
from similarity.weighting import combine

log = logging.getLogger(__name__)

# The factorization settings course_factors' ALS variants share.
_ALS = {
    "method": "als",
    "factors": 64,
    "regularization": 0.01,
    "alpha": 1.0,
    "iterations": 15,
    "seed": 0,
}
# The weighting variants tried per signal model by `tune`; the first of each is a plain reference.
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "interests": [
        {"tf": "binary"},
        {"tf": "binary", "idf": 1.0},
        {"tf": "sublinear", "idf": 1.0},
        {"tf": "binary", "idf": 2.0},
        {"tf": "sublinear", "idf": 2.0},
    ],
    "course_views": [
        {"tf": "binary"},
        {"tf": "binary", "idf": 1.0},
        {"tf": "log1p", "idf": 1.0},
        {"tf": "log1p", "idf": 2.0},
        {"tf": "bm25", "unit": 600.0, "k1": 1.2, "b": 0.75, "idf": 1.0},
        {"tf": "bm25", "unit": 600.0, "k1": 1.2, "b": 0.75, "idf": 2.0},
    ],
    # Only positive evidence: negative weights would let two users' products cancel to exactly
    # zero, which the neighbour search cannot take (see neighbours.top_n).
    "assessments": [
        {"tf": "raw", "positive": True},
        {"tf": "raw", "positive": True, "idf": 1.0},
    ],
    "course_tags": [
        {"tf": "log1p"},
        {"tf": "log1p", "idf": 1.0},
        {"tf": "log1p", "idf": 2.0},
        {"tf": "bm25", "unit": 600.0, "k1": 1.2, "b": 0.75, "idf": 1.0},
        {"tf": "bm25", "unit": 600.0, "k1": 1.2, "b": 0.75, "idf": 2.0},
    ],
    # Truncated SVD first (the plain reference), then implicit's ALS: a handful of factor counts
    # and regularizations, on the two weightings of views that did best.
    "course_factors": [
        {"tf": "binary", "idf": 1.0, "method": "svd", "factors": 64, "iterations": 5, "seed": 0},
        {"tf": "binary", "idf": 1.0, **_ALS},
        {"tf": "binary", "idf": 1.0, **_ALS, "factors": 32, "regularization": 1.0},
        {"tf": "binary", "idf": 1.0, **_ALS, "factors": 128, "regularization": 1.0},
        {"tf": "bm25", "unit": 600.0, "k1": 1.2, "b": 0.75, "idf": 1.0, **_ALS},
    ],
    # One: the number of traits is chosen by parallel analysis on the answers themselves (and
    # measured on them, `evaluate`'s survey figures); here only its weight in the hybrid is tuned.
    "survey": [{"traits": "auto", "min_answered": 0.5, "seed": 0}],
}
# The hybrid's weights are searched one block at a time over this grid (coordinate ascent).
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
WEIGHT_ROUNDS = 2


@dataclass
class Tuning:
    """What the validation split chose: per-signal weighting variants and the hybrid's weights."""

    k: int
    top_n_stored: int
    users_validated: int
    variants: dict[str, list[tuple[dict[str, Any], Scores]]] = field(default_factory=dict)
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    weight_trials: list[tuple[dict[str, float], Scores]] = field(default_factory=list)

    def models(self) -> list[Model]:
        """Return every model with its tuned settings, the hybrid with its tuned weights."""
        tuned = [SIGNALS[h].with_settings(s) for h, s in self.chosen.items()]
        if self.weights:
            tuned.append(MODELS["hybrid"].with_settings({"weights": self.weights}))
        return tuned

    def as_json(self) -> dict[str, Any]:
        """Return what was tried and chosen as plain JSON-ready data."""
        return {
            "users_validated": self.users_validated,
            "chosen": self.chosen,
            "weights": self.weights,
            "variants": {
                handle: [
                    {"settings": settings, "recall": round(s.recall, 4), "ndcg": round(s.ndcg, 4)}
                    for settings, s in tried
                ]
                for handle, tried in self.variants.items()
            },
        }

    def lines(self) -> list[str]:
        """Return what was tried and chosen, as text lines."""
        lines = [f"validation: {self.users_validated:,} users, recall@{self.k} / NDCG@{self.k}"]
        for handle, tried in self.variants.items():
            lines.append(f"{handle}:")
            for settings, s in tried:
                mark = "*" if settings == self.chosen.get(handle) else " "
                lines.append(f"  {mark} {s.recall:.4f} {s.ndcg:.4f}  {_settings_text(settings)}")
        if self.weights and self.weight_trials:
            equal = self.weight_trials[0][1]
            best = next(s for w, s in self.weight_trials if w == self.weights)
            lines.append(
                f"hybrid: {len(self.weight_trials)} weightings tried; equal weights "
                f"{equal.recall:.4f} {equal.ndcg:.4f}; chosen {best.recall:.4f} {best.ndcg:.4f}  "
                f"{_settings_text(self.weights)}"
            )
        return lines


def _settings_text(settings: Mapping[str, Any]) -> str:
    """Return settings as compact key=value text."""
    return ", ".join(f"{key}={value}" for key, value in settings.items())


def tune(
    tables: Tables,
    k: int = K,
    top_n_stored: int = TOP_N_STORED,
    seed: int = 0,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    max_users: int = MAX_USERS,
) -> Tuning:
    """Choose each signal's weighting and the hybrid's weights on a validation split.

    The validation split is the hold-out applied again to the training side: each user's last
    training courses are hidden, so no test course (nor anything dated after it) is ever seen.
    At most ``max_users`` users are validated, drawn at random.
    """
    train, _ = split(tables, seed=seed)
    validation_train, validation_hidden = split(train, seed=seed + 1)
    index = UserIndex.of(tables)
    holdout = Holdout.build(tables, validation_train, validation_hidden, index).sample(
        max_users, seed
    )
    tuning = Tuning(k=k, top_n_stored=top_n_stored, users_validated=len(holdout.users))
    say = progress or (lambda text: log.info("%s", text))

    signals: dict[str, sp.csr_matrix] = {}
    for handle, variants in VARIANTS.items():
        model = SIGNALS[handle]
        if not model.available(tables):
            continue
        tried = []
        for settings in variants:
            matrix = model.with_settings(settings).matrix(validation_train, index)
            scores, _ = measure(matrix, holdout, k, top_n_stored, threads)
            tried.append((settings, scores))
            if settings == max(tried, key=lambda t: (t[1].recall, t[1].ndcg))[0]:
                signals[handle] = matrix
            say(f"{handle} {_settings_text(settings)}: recall {scores.recall:.4f}")
        tuning.variants[handle] = tried
        tuning.chosen[handle] = max(tried, key=lambda t: (t[1].recall, t[1].ndcg))[0]
    if len(signals) > 1:
        tuning.weights = _search_weights(signals, holdout, tuning, threads, say)
    return tuning


def _search_weights(
    signals: Mapping[str, sp.csr_matrix],
    holdout: Holdout,
    tuning: Tuning,
    threads: int | None,
    say: Callable[[str], None],
) -> dict[str, float]:
    """Search the hybrid's block weights one block at a time over WEIGHT_GRID."""
    handles = list(signals)
    tried: dict[tuple[float, ...], Scores] = {}

    def trial(weights: dict[str, float]) -> Scores:
        key = tuple(weights[h] for h in handles)
        if key not in tried:
            matrix = combine(signals, weights)
            tried[key], _ = measure(matrix, holdout, tuning.k, tuning.top_n_stored, threads)
            tuning.weight_trials.append((dict(weights), tried[key]))
            say(f"hybrid {_settings_text(weights)}: recall {tried[key].recall:.4f}")
        return tried[key]

    weights = dict.fromkeys(handles, 1.0)
    best = trial(weights)
    for _ in range(WEIGHT_ROUNDS):
        improved = False
        for handle in handles:
            for value in WEIGHT_GRID:
                candidate = {**weights, handle: value}
                if not any(candidate.values()):
                    continue
                scores = trial(candidate)
                if (scores.recall, scores.ndcg) > (best.recall, best.ndcg):
                    weights, best, improved = candidate, scores, True
        if not improved:
            break
    return weights
