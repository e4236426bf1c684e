"""The survey signal on its own terms: do a member's neighbours answer as the member does?

A share of each member's answers (`HIDDEN_SHARE`, at least one of a member with two or more) is
hidden; the survey model is built from the rest; each hidden answer is predicted as the
similarity-weighted mean of the member's stored neighbours' answers to that question (those who
answered it; the question's mean when none did). The mean absolute error, on each question's own
scale, is set beside two baselines: every hidden answer predicted as its question's mean answer,
and as the plain mean of as many random members' answers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from similarity.features import Tables, UserIndex, latest_answers
from similarity.models import Model
from similarity.neighbours import top_n

HIDDEN_SHARE = 0.2


@dataclass(frozen=True)
class SurveyQuality:
    """What hiding answers measured (mean absolute errors on the questions' scales)."""

    users_evaluated: int
    answers_hidden: int
    mae: float
    question_mean: float
    random_neighbours: float

    def as_json(self) -> dict[str, Any]:
        """Return the figures as the evaluation's JSON reports them."""
        return {
            "users_evaluated": self.users_evaluated,
            "answers_hidden": self.answers_hidden,
            "mae": round(self.mae, 4),
            "baselines": {
                "question_mean": round(self.question_mean, 4),
                "random_neighbours": round(self.random_neighbours, 4),
            },
        }


def hide(answers: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the answers kept and those hidden: `share` of each member's (rounded, at least one
    of a member with two or more, never all of them), drawn at random."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(answers))
    shuffled = answers.iloc[order]
    rank = shuffled.groupby("user_handle", sort=False).cumcount().to_numpy()
    counts = shuffled.groupby("user_handle", sort=False)["user_handle"].transform("size")
    wanted = np.where(counts >= 2, np.maximum(1, np.round(counts * share)), 0)
    hidden = rank < np.minimum(wanted, counts - 1)
    return shuffled[~hidden].sort_index(), shuffled[hidden].sort_index()


def evaluate_survey(
    tables: Tables,
    model: Model,
    top_n_stored: int = 50,
    share: float = HIDDEN_SHARE,
    seed: int = 0,
) -> SurveyQuality:
    """Hide answers, rebuild the survey model from the rest, and predict them from neighbours."""
    if tables.user_answers is None:
        raise ValueError("the survey is measured on answers (user_answers.csv)")
    answers = latest_answers(tables.user_answers)
    answers = answers.assign(question_id=answers["question_id"].astype(str))
    kept, hidden = hide(answers, share, seed)
    train = dataclasses.replace(tables, user_answers=kept)  # type: ignore[type-var]
    index = UserIndex.of(train)
    matrix = model.matrix(train, index)
    placed = np.diff(matrix.indptr) > 0
    hidden = hidden[placed[index.rows(hidden["user_handle"])]]
    if hidden.empty:
        raise ValueError("no member answered enough questions for answers to be hidden")

    questions = pd.Index(sorted(answers["question_id"].unique()))
    table = np.full((len(index), len(questions)), np.nan)
    table[index.rows(kept["user_handle"]), questions.get_indexer(kept["question_id"])] = kept[
        "answer"
    ].to_numpy(dtype=np.float64)
    seen = ~np.isnan(table)
    counts = seen.sum(axis=0)
    question_mean = np.where(seen, table, 0.0).sum(axis=0) / np.maximum(counts, 1)

    askers = np.unique(index.rows(hidden["user_handle"]))
    found = top_n(matrix, top_n_stored, rows=askers)
    rows = index.rows(hidden["user_handle"])
    at = np.searchsorted(askers, rows)
    cols = questions.get_indexer(hidden["question_id"])
    truth = hidden["answer"].to_numpy(dtype=np.float64)

    def predicted(neighbours: np.ndarray, weights: np.ndarray) -> np.ndarray:
        theirs = table[np.maximum(neighbours, 0), cols[:, None]]
        usable = (neighbours >= 0) & ~np.isnan(theirs) & (weights > 0)
        total = np.where(usable, weights, 0.0).sum(axis=1)
        weighted = np.where(usable, weights * np.nan_to_num(theirs), 0.0).sum(axis=1)
        mean: np.ndarray = question_mean[cols]
        found: np.ndarray = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), mean)
        return found

    ours = predicted(found.rows[at], found.scores[at].astype(np.float64))
    rng = np.random.default_rng(seed + 1)
    strangers = rng.integers(0, len(index), size=(len(rows), top_n_stored))
    strangers = np.where(strangers == rows[:, None], -1, strangers)  # never the member
    chance = predicted(strangers, np.ones(strangers.shape))
    return SurveyQuality(
        users_evaluated=len(askers),
        answers_hidden=len(truth),
        mae=float(np.abs(ours - truth).mean()),
        question_mean=float(np.abs(question_mean[cols] - truth).mean()),
        random_neighbours=float(np.abs(chance - truth).mean()),
    )
