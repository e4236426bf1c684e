"""Offline quality of the similarity models: a temporal leave-last-out hold-out per user.

For every user with at least ``min_courses`` distinct courses viewed, the last ``holdout`` share of
their courses (ordered by first view) is hidden. The user's cutoff is the day they first viewed a
hidden course; the models are built from each user's history as it stood then: no view of a hidden
course, no view after the cutoff day, no interest or assessment dated on or after the cutoff day.
Each model's neighbours (the same top N the product stores) then vote for courses: a course's
score is the sum of the similarities of the neighbours who viewed it, the user's own courses left
out. Recall@k and NDCG@k of the hidden courses measure whether the neighbours mean anything,
next to two baselines that know nothing of the user: the most popular courses, and the votes of
random users.

The cold start measures profile queries as the product will see them: each evaluated user's
training interests and first few courses, as a newcomer's profile, placed in each model's space
and searched among everyone else; their neighbours vote the same way.

Pure functions over Tables and sparse matrices; `generator.tune` chooses the weightings on a
validation split with the same measure, and `generator.plot` draws the report.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from generator.survey_quality import SurveyQuality, evaluate_survey
from generator.tables import Tables
from similarity.features import UserIndex
from similarity.models import MODELS, SIGNALS, Model
from similarity.neighbours import Neighbours, top_n
from similarity.space import ModelSpace, Profile
from similarity.weighting import combine

log = logging.getLogger(__name__)

HOLDOUT = 0.2
MIN_COURSES = 5
K = 10
# The number of neighbours the product stores, so the evaluation measures what is served.
TOP_N_STORED = 50
# Users evaluated at most (a seeded sample of those with hidden courses): each model's neighbours
# are searched for them alone, so the evaluation's cost grows with users × this, not users².
MAX_USERS = 5_000
# The courses of a cold-start profile: each evaluated user's first ones, as a newcomer who has
# just signed up and viewed a couple of courses would have.
COLD_START_COURSES = 2

# --- the hold-out -----------------------------------------------------------------------------


def split(
    tables: Tables, holdout: float = HOLDOUT, min_courses: int = MIN_COURSES, seed: int = 0
) -> tuple[Tables, pd.DataFrame]:
    """Hide each eligible user's last courses; return the training tables and the hidden pairs.

    The hidden pairs are a DataFrame of (user_handle, course_id), one row per hidden course.
    Courses first viewed on the same day are ordered at random (by ``seed``).
    """
    views = tables.user_course_views
    if views is None:
        raise ValueError("the hold-out needs course views (user_course_views.csv)")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be between 0 and 1, got {holdout}")
    if min_courses < 2:
        raise ValueError(f"min_courses must be at least 2, got {min_courses}")
    day = views["view_date"].dt.normalize()
    first = _first_views(views, seed)
    by_user = first.groupby("user_handle", sort=False)
    courses = by_user["course_id"].transform("size").to_numpy()
    position = by_user.cumcount().to_numpy()
    hidden_count = np.where(
        courses >= min_courses, np.maximum(1, np.floor(holdout * courses + 0.5)), 0
    )
    hidden = first.loc[
        position >= courses - hidden_count, ["user_handle", "course_id", "view_date"]
    ]
    cutoff = hidden.groupby("user_handle", sort=True)["view_date"].min()

    hidden_pairs = pd.MultiIndex.from_frame(hidden[["user_handle", "course_id"]])
    in_hidden = pd.MultiIndex.from_arrays([views["user_handle"], views["course_id"]]).isin(
        hidden_pairs
    )
    # A training course viewed on the cutoff day stays: it was first viewed no later than the
    # first hidden one. Interests and assessments carry a time of day that cannot be ordered
    # against a view's day, so the whole cutoff day goes.
    views_kept = ~in_hidden & _before(views["user_handle"], day, cutoff + pd.Timedelta(days=1))
    train = Tables(
        user_interests=_filtered(tables.user_interests, "date_followed", cutoff),
        user_course_views=_kept(views, views_kept),
        user_assessment_scores=_filtered(
            tables.user_assessment_scores, "user_assessment_date", cutoff
        ),
        course_tags=tables.course_tags,
        report=tables.report,
        # A survey describes the member, not their history: all of it is kept.
        user_answers=tables.user_answers,
        questions=tables.questions,
    )
    hidden_frame = hidden[["user_handle", "course_id"]].reset_index(drop=True)
    return train, _kept(hidden_frame, np.ones(len(hidden_frame), dtype=np.bool_))


def _first_views(views: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Return each user's courses in the order of their first view's day, same-day ones at random.

    One row per (user_handle, course): its ``name`` (the id as text), ``course_id`` and the day
    of its first ``view_date``; users in ascending order.
    """
    # Grouped by the course's name, not its category code: the draws that order same-day courses
    # must not depend on the order in which an export happened to list its categories.
    first = (
        views.assign(
            view_date=views["view_date"].dt.normalize(), name=views["course_id"].astype(str)
        )
        .groupby(["user_handle", "name"], sort=True)
        .agg(course_id=("course_id", "first"), view_date=("view_date", "min"))
        .reset_index()
    )
    first["tie"] = np.random.default_rng(seed).random(len(first))
    return first.sort_values(["user_handle", "view_date", "tie"], kind="stable")


def _before(handles: pd.Series, dates: pd.Series, cutoff: pd.Series) -> np.ndarray:
    """Tell, per row, whether its date is before its user's cutoff (users without one: always)."""
    limit = handles.map(cutoff)
    return np.asarray(limit.isna() | (dates < limit), dtype=np.bool_)


def _filtered(frame: pd.DataFrame | None, date: str, cutoff: pd.Series) -> pd.DataFrame | None:
    """Drop the rows dated on or after their user's cutoff day."""
    if frame is None:
        return None
    return _kept(frame, _before(frame["user_handle"], frame[date], cutoff))


def _kept(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """Return the kept rows with fresh row numbers and no category left unused."""
    kept = frame.loc[keep].reset_index(drop=True)
    for column in kept.columns:
        if isinstance(kept[column].dtype, pd.CategoricalDtype):
            kept[column] = kept[column].cat.remove_unused_categories()
    return kept


# --- what every model is measured against -----------------------------------------------------


@dataclass(frozen=True)
class Holdout:
    """The hidden courses of the evaluated users, and what everyone viewed in training."""

    index: UserIndex
    courses: pd.Index  # the catalogue: every course id known to the export
    seen: sp.csr_matrix  # users × courses, 1 where the user viewed the course in training
    users: np.ndarray  # rows of the evaluated users (those with hidden courses), ascending
    hidden: sp.csr_matrix  # evaluated users × courses, 1 where the course was hidden

    @classmethod
    def build(
        cls, tables: Tables, train: Tables, hidden: pd.DataFrame, index: UserIndex
    ) -> Holdout:
        """Index the training views and the hidden pairs by user row and catalogue course."""
        assert tables.user_course_views is not None and train.user_course_views is not None
        known = [tables.user_course_views["course_id"].astype(str)]
        if tables.course_tags is not None:
            known.append(tables.course_tags["course_id"].astype(str))
        courses = pd.Index(np.unique(np.concatenate([k.to_numpy() for k in known])))
        seen = _binary(
            index.rows(train.user_course_views["user_handle"]),
            courses.get_indexer(train.user_course_views["course_id"].astype(str)),
            (len(index), len(courses)),
        )
        users = np.unique(index.rows(hidden["user_handle"]))
        hidden_rows = np.searchsorted(users, index.rows(hidden["user_handle"]))
        hidden_matrix = _binary(
            hidden_rows,
            courses.get_indexer(hidden["course_id"].astype(str)),
            (len(users), len(courses)),
        )
        return cls(index, courses, seen, users, hidden_matrix)

    def sample(self, users: int, seed: int = 0) -> Holdout:
        """Return the hold-out of at most `users` of the evaluated users, drawn at random."""
        if len(self.users) <= users:
            return self
        kept = np.sort(np.random.default_rng(seed).choice(len(self.users), users, replace=False))
        return Holdout(self.index, self.courses, self.seen, self.users[kept], self.hidden[kept])

    @property
    def popularity(self) -> np.ndarray:
        """Return how many users viewed each course in training."""
        return np.asarray(self.seen.sum(axis=0)).ravel()


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Return a 0/1 float32 CSR matrix with ones at the given (row, col) pairs."""
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape, dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


# --- recommendations and metrics --------------------------------------------------------------


def recommend(
    neighbours: Neighbours,
    seen: sp.csr_matrix,
    k: int,
    users: np.ndarray,
    popularity: np.ndarray | None = None,
) -> np.ndarray:
    """Return the k courses the neighbours of each user row vote for most (-1 fills short rows).

    ``neighbours`` holds a row per user of ``users``, in that order. A course's score is the sum of
    the similarities of the user's neighbours who viewed it; the user's own courses are left out;
    equal scores go to the more popular course, then the first.
    """
    rows = neighbours.rows
    valid = rows >= 0
    similarity = sp.csr_matrix(
        (neighbours.scores[valid], (np.nonzero(valid)[0], rows[valid])),
        shape=(len(users), seen.shape[0]),
        dtype=np.float32,
    )
    votes = sp.csr_matrix(similarity @ seen)
    unseen = sp.csr_matrix(votes - votes.multiply(seen[users]))
    unseen.eliminate_zeros()
    return _top_k(unseen, k, popularity)


def _top_k(scores: sp.csr_matrix, k: int, tiebreak: np.ndarray | None) -> np.ndarray:
    """Return each row's k highest-scoring columns, best first (-1 fills short rows)."""
    rows = np.repeat(np.arange(scores.shape[0]), np.diff(scores.indptr))
    cols = scores.indices
    second = -tiebreak[cols] if tiebreak is not None else np.zeros(len(cols))
    order = np.lexsort((cols, second, -scores.data, rows))
    rows, cols = rows[order], cols[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    kept = rank < k
    best = np.full((scores.shape[0], k), -1, dtype=np.int64)
    best[rows[kept], rank[kept]] = cols[kept]
    return best


def most_popular(holdout: Holdout, k: int) -> np.ndarray:
    """Recommend every evaluated user the k most viewed courses they have not viewed."""
    popularity = holdout.popularity
    viewed = np.flatnonzero(popularity > 0)
    ranked = viewed[np.lexsort((viewed, -popularity[viewed]))]
    seen = holdout.seen[holdout.users]
    most_seen = int(np.diff(seen.indptr).max(initial=0))
    candidates = ranked[: k + most_seen]
    unseen = seen[:, candidates].toarray() == 0
    rank = np.cumsum(unseen, axis=1) - 1
    chosen = unseen & (rank < k)
    best = np.full((len(holdout.users), k), -1, dtype=np.int64)
    row, col = np.nonzero(chosen)
    best[row, rank[row, col]] = candidates[col]
    return best


def random_neighbours(
    users: int, n: int, seed: int = 0, rows: np.ndarray | None = None
) -> Neighbours:
    """Give each user row (of ``rows``, default all) up to n distinct other rows drawn at random,
    all of similarity 1; the result holds a row per user asked for."""
    asking = np.arange(users) if rows is None else np.asarray(rows)
    n = min(n, users - 1)
    if n < 1:
        empty = (len(asking), 1)
        return Neighbours(np.full(empty, -1, np.int32), np.zeros(empty, np.float32))
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, users - 1, size=(len(asking), n))
    drawn += drawn >= asking[:, None]  # skip the user themself
    drawn.sort(axis=1)
    repeated = np.zeros_like(drawn, dtype=np.bool_)
    repeated[:, 1:] = drawn[:, 1:] == drawn[:, :-1]
    rows = np.where(repeated, -1, drawn).astype(np.int32)
    return Neighbours(rows, np.where(repeated, 0.0, 1.0).astype(np.float32))


@dataclass(frozen=True)
class Scores:
    """How well one model's (or baseline's) recommendations found the hidden courses."""

    recall: float  # mean over users of hits / min(k, hidden courses)
    ndcg: float  # mean over users of DCG / ideal DCG, binary relevance
    coverage: float  # share of catalogue courses recommended to anyone
    served: float  # share of evaluated users with at least one neighbour (or recommendation)


def score(recommended: np.ndarray, holdout: Holdout, served: np.ndarray) -> Scores:
    """Measure recommendations (one row per evaluated user) against the hidden courses."""
    users, k = recommended.shape
    hidden = holdout.hidden
    courses = hidden.shape[1]
    hidden_keys = np.repeat(np.arange(users), np.diff(hidden.indptr)) * courses + hidden.indices
    keys = np.arange(users)[:, None] * courses + recommended
    hit = (recommended >= 0) & np.isin(keys, hidden_keys)
    relevant = np.minimum(np.diff(hidden.indptr), k)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.maximum(relevant - 1, 0)]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(relevant > 0, hit.sum(axis=1) / relevant, 0.0)
        ndcg = np.where(relevant > 0, (hit * discount).sum(axis=1) / ideal, 0.0)
    shown = np.unique(recommended[recommended >= 0])
    return Scores(
        recall=float(recall.mean()) if users else 0.0,
        ndcg=float(ndcg.mean()) if users else 0.0,
        coverage=len(shown) / courses if courses else 0.0,
        served=float(served.mean()) if users else 0.0,
    )


def overlap(first: Neighbours, second: Neighbours, users: int, k: int) -> float:
    """Return the mean Jaccard overlap of two models' top-k neighbours (the same users' rows, of
    `users` in all), over the users both serve."""
    a = _members(first, users, k)
    b = _members(second, users, k)
    size_a = np.diff(a.indptr)
    size_b = np.diff(b.indptr)
    both = (size_a > 0) & (size_b > 0)
    if not both.any():
        return 0.0
    shared = np.asarray(a.multiply(b).sum(axis=1)).ravel()
    jaccard = shared[both] / (size_a[both] + size_b[both] - shared[both])
    return float(jaccard.mean())


def _members(neighbours: Neighbours, users: int, k: int) -> sp.csr_matrix:
    """Return a 0/1 matrix of each row's top-k neighbours, with a column per user of `users`."""
    rows = neighbours.rows[:, :k]
    valid = rows >= 0
    shape = (len(rows), users)
    return _binary(np.nonzero(valid)[0], rows[valid], shape)


# --- evaluating models ------------------------------------------------------------------------


class Matrices:
    """Each model's space over one set of tables, each signal built once and shared.

    A combined model (the hybrid) is joined from the signal models given here, so that its blocks
    are weighted exactly as the signal models evaluated next to it.
    """

    def __init__(
        self, tables: Tables, index: UserIndex, signals: Mapping[str, Model] = SIGNALS
    ) -> None:
        self.tables = tables
        self.index = index
        self.signals = {**SIGNALS, **signals}
        self._built: dict[str, ModelSpace] = {}

    def of(self, model: Model) -> sp.csr_matrix:
        """Return the model's unit-row matrix."""
        return self.space(model).matrix

    def space(self, model: Model) -> ModelSpace:
        """Return the model's space: its unit-row matrix and what places a profile in it."""
        if not model.blocks:
            if model is self.signals.get(model.handle):
                return self.signal(model.handle)
            return model.space(self.tables, self.index)
        weights: Mapping[str, float] = model.settings["weights"]
        signals = {
            handle: self.signal(handle)
            for handle in model.blocks
            if self.signals[handle].available(self.tables)
        }
        blocks, offset = [], 0
        for handle, signal in signals.items():
            (block,) = signal.blocks
            blocks.append(dataclasses.replace(block, weight=float(weights[handle]), offset=offset))
            offset += block.width
        return ModelSpace(
            model_handle=model.handle,
            settings=dict(model.settings),
            handles=self.index.handles,
            matrix=combine({h: signal.matrix for h, signal in signals.items()}, weights),
            blocks=tuple(blocks),
        )

    def signal(self, handle: str) -> ModelSpace:
        """Return a signal model's space, built on first use."""
        if handle not in self._built:
            self._built[handle] = self.signals[handle].space(self.tables, self.index)
        return self._built[handle]


def measure(
    matrix: sp.csr_matrix,
    holdout: Holdout,
    k: int,
    top_n_stored: int,
    threads: int | None = None,
) -> tuple[Scores, Neighbours]:
    """Find the evaluated users' neighbours and score the courses they vote for.

    The neighbours returned hold a row per evaluated user, in the hold-out's order.
    """
    found = top_n(matrix, top_n_stored, threads=threads, rows=holdout.users)
    served = found.rows[:, 0] >= 0
    recommended = recommend(found, holdout.seen, k, holdout.users, holdout.popularity)
    return score(recommended, holdout, served), found


# --- cold start: newcomers' profiles ----------------------------------------------------------


def profiles(
    train: Tables, handles: np.ndarray, courses: int = COLD_START_COURSES, seed: int = 0
) -> list[Profile]:
    """Return a newcomer's profile of each user (in the order of ``handles``) from their training
    evidence: every interest they followed, their first ``courses`` courses by first view
    (seconds None: the course's typical time, as the API assumes) and no assessment (a newcomer
    has taken none). Same-day courses are ordered at random (by ``seed``)."""
    if courses < 1:
        raise ValueError(f"a cold-start profile needs at least one course, got {courses}")
    asked = pd.Index(handles)
    tags: Mapping[Any, list[str]] = {}
    if train.user_interests is not None:
        followed = train.user_interests[train.user_interests["user_handle"].isin(asked)]
        by_user = followed.groupby("user_handle")["interest_tag"]
        tags = by_user.agg(lambda t: [str(n) for n in t]).to_dict()
    names: Mapping[Any, list[str]] = {}
    if train.user_course_views is not None:
        views = train.user_course_views
        first = _first_views(views[views["user_handle"].isin(asked)], seed)
        earliest = first.groupby("user_handle", sort=False).head(courses)
        names = earliest.groupby("user_handle", sort=False)["name"].agg(list).to_dict()
    return [
        Profile(
            interests=tuple(tags.get(handle, ())),
            courses=dict.fromkeys(names.get(handle, [])),
        )
        for handle in asked.tolist()
    ]


def search(space: ModelSpace, vectors: sp.csr_matrix, rows: np.ndarray, n: int) -> Neighbours:
    """Return the n users most similar to each unit row of ``vectors``, never the user of the
    matching entry of ``rows`` (the asker's own row), as `ModelSpace.search` finds them exactly."""
    found = np.full((vectors.shape[0], n), -1, dtype=np.int32)
    scores = np.zeros((vectors.shape[0], n), dtype=np.float32)
    for at, own in enumerate(np.asarray(rows).tolist()):
        vector = vectors[at]
        if not vector.nnz:
            continue
        matches = space.search(vector, n, exact_max_users=space.users, exclude=own)
        handles = np.fromiter((m.user_handle for m in matches), dtype=np.int64, count=len(matches))
        found[at, : len(matches)] = np.searchsorted(space.handles, handles)
        scores[at, : len(matches)] = [m.score for m in matches]
    return Neighbours(found, scores)


def measure_cold_start(
    space: ModelSpace, asked: Sequence[Profile], holdout: Holdout, k: int, top_n_stored: int
) -> Scores:
    """Place each evaluated user's profile (one per user, in the hold-out's order) in a space,
    find its neighbours among everyone else and score the courses they vote for.

    The user's own row is left out of the candidates, not out of the space: the weighting's
    statistics (IDF) and a factorization's items still count them, one user among all. The votes
    leave out every course the user viewed in training, as the warm evaluation's do: the courses
    between the profile's and the hidden ones are neither targets nor fair misses, so only how
    the neighbours are found differs between the two measures.
    """
    found = search(space, space.encode_many(asked), holdout.users, top_n_stored)
    served = found.rows[:, 0] >= 0
    recommended = recommend(found, holdout.seen, k, holdout.users, holdout.popularity)
    return score(recommended, holdout, served)


@dataclass
class Report:
    """What the evaluation measured: scores per model and baseline, and how alike models are."""

    k: int
    top_n_stored: int
    users: int  # users in the index
    users_evaluated: int
    users_eligible: int  # users with hidden courses, of whom users_evaluated were sampled
    hidden_courses: int
    models: dict[str, Scores] = field(default_factory=dict)
    baselines: dict[str, Scores] = field(default_factory=dict)
    overlap: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # Scores per model, and most_popular, of profiles of interests and the first
    # cold_start_courses courses (empty when not measured).
    cold_start: dict[str, Scores] = field(default_factory=dict)
    cold_start_courses: int | None = None
    # The survey model's answers hidden and predicted from neighbours (None: no survey).
    survey: SurveyQuality | None = None

    @property
    def default_model(self) -> str | None:
        """Return the model with the best recall@k (then NDCG@k), the one to serve by default."""
        if not self.models:
            return None
        return max(self.models, key=lambda h: (self.models[h].recall, self.models[h].ndcg))

    def quality(self, handle: str) -> dict[str, Any]:
        """Return what a model's run records of this evaluation (rounded like `as_json`)."""
        scores = self.models[handle]
        return {
            "k": self.k,
            "recall": round(scores.recall, 4),
            "ndcg": round(scores.ndcg, 4),
            "coverage": round(scores.coverage, 4),
            "served": round(scores.served, 4),
            "users_evaluated": self.users_evaluated,
            "users_eligible": self.users_eligible,
            "most_popular_recall": round(self.baselines["most_popular"].recall, 4),
            "random_neighbours_recall": round(self.baselines["random_neighbours"].recall, 4),
        }

    def as_json(self) -> dict[str, Any]:
        """Return the report as plain JSON-ready data."""

        def plain(scores: Mapping[str, Scores]) -> dict[str, dict[str, float]]:
            return {
                handle: {name: round(value, 4) for name, value in vars(s).items()}
                for handle, s in scores.items()
            }

        document = {
            "k": self.k,
            "top_n_stored": self.top_n_stored,
            "users": self.users,
            "users_evaluated": self.users_evaluated,
            "users_eligible": self.users_eligible,
            "hidden_courses": self.hidden_courses,
            "default_model": self.default_model,
            "models": plain(self.models),
            "baselines": plain(self.baselines),
            "overlap": {
                a: {b: round(v, 4) for b, v in row.items()} for a, row in self.overlap.items()
            },
            "settings": self.settings,
            "skipped": self.skipped,
            "seconds": {name: round(value, 2) for name, value in self.seconds.items()},
        }
        if self.cold_start:
            document["cold_start"] = plain(self.cold_start)
            document["cold_start_courses"] = self.cold_start_courses
        if self.survey is not None:
            document["survey"] = self.survey.as_json()
        return document

    def table(self) -> list[str]:
        """Return the scores as aligned text lines, models best first, then the baselines."""
        k = self.k
        lines = _score_lines(k, self.models, self.baselines)
        if self.cold_start:
            lines.append("")
            lines.append(
                f"cold start: profiles of interests and the first {self.cold_start_courses} "
                "courses, the user's own row excluded"
            )
            models = {h: s for h, s in self.cold_start.items() if h in self.models}
            baselines = {h: s for h, s in self.cold_start.items() if h not in self.models}
            lines += _score_lines(k, models, baselines)
        if self.survey is not None:
            s = self.survey
            lines.append("")
            lines.append(
                f"survey: {s.answers_hidden:,} answers of {s.users_evaluated:,} members hidden, "
                "predicted from their neighbours (mean absolute error)"
            )
            lines.append(f"{'survey':<18} {s.mae:>9.4f}")
            lines.append(f"{'(question_mean)':<18} {s.question_mean:>9.4f}")
            lines.append(f"{'(random_neighbours)':<18} {s.random_neighbours:>9.4f}")
        handles = list(self.overlap)
        if len(handles) > 1:
            lines.append("")
            lines.append(f"mean Jaccard overlap of top-{k} neighbour lists")
            lines.append(" " * 14 + "".join(f"{h[:12]:>13}" for h in handles))
            for a in handles:
                row = "".join(
                    f"{self.overlap[a][b]:>13.2f}" if b != a else f"{'—':>13}" for b in handles
                )
                lines.append(f"{a[:13]:<14}{row}")
        return lines


def _score_lines(
    k: int, models: Mapping[str, Scores], baselines: Mapping[str, Scores]
) -> list[str]:
    """Return a header and a line per model (best recall first) and per baseline."""
    lines = [f"{'model':<18} {f'recall@{k}':>9} {f'NDCG@{k}':>8} {'coverage':>8} {'served':>7}"]
    ranked = sorted(models, key=lambda h: -models[h].recall)
    for handle, s in [(h, models[h]) for h in ranked] + [
        (f"({name})", s) for name, s in baselines.items()
    ]:
        lines.append(
            f"{handle:<18} {s.recall:>9.4f} {s.ndcg:>8.4f} {s.coverage:>8.1%} {s.served:>7.1%}"
        )
    return lines


def evaluate(
    tables: Tables,
    models: Sequence[Model] | None = None,
    k: int = K,
    top_n_stored: int = TOP_N_STORED,
    seed: int = 0,
    threads: int | None = None,
    max_users: int = MAX_USERS,
    cold_start: bool = False,
    cold_start_courses: int = COLD_START_COURSES,
) -> Report:
    """Hide each user's latest courses and measure how well every model's neighbours find them.

    At most ``max_users`` users with hidden courses are evaluated, drawn at random (by ``seed``).
    ``cold_start``: also measure the neighbours of each evaluated user's newcomer profile (see
    `profiles`), searched among everyone else, next to the most popular courses.
    """
    if k < 1 or top_n_stored < 1:
        raise ValueError(f"k and top_n_stored must be at least 1, got {k} and {top_n_stored}")
    started = time.monotonic()
    chosen, skipped = _available(tables, models)
    index = UserIndex.of(tables)
    surveyed = next((m for m in chosen if m.handle == "survey"), None)
    quality = None
    if surveyed is not None:
        quality = evaluate_survey(tables, surveyed, top_n_stored, seed=seed)
        log.info(
            "survey: %s answers hidden of %s members, MAE %.4f (question mean %.4f, random "
            "neighbours %.4f)",
            f"{quality.answers_hidden:,}",
            f"{quality.users_evaluated:,}",
            quality.mae,
            quality.question_mean,
            quality.random_neighbours,
        )
    if tables.user_course_views is None and quality is not None:
        # A survey-only export: the answers are all there is to measure.
        report = Report(k, top_n_stored, len(index), 0, 0, 0, skipped=skipped, survey=quality)
        report.seconds["total"] = time.monotonic() - started
        return report
    train, hidden = split(tables, seed=seed)
    eligible = Holdout.build(tables, train, hidden, index)
    holdout = eligible.sample(max_users, seed)
    report = Report(
        k=k,
        top_n_stored=top_n_stored,
        users=len(index),
        users_evaluated=len(holdout.users),
        users_eligible=len(eligible.users),
        hidden_courses=int(holdout.hidden.nnz),
        skipped=skipped,
        survey=quality,
    )
    if not len(holdout.users):
        raise ValueError(
            f"no user has {MIN_COURSES} or more distinct courses viewed, so nothing can be hidden"
        )
    log.info(
        "hold-out: %s of %s users evaluated (of %s with hidden courses), %s courses hidden, "
        "%s training views kept (%.1f s)",
        f"{len(holdout.users):,}",
        f"{len(index):,}",
        f"{len(eligible.users):,}",
        f"{holdout.hidden.nnz:,}",
        f"{len(train.user_course_views) if train.user_course_views is not None else 0:,}",
        time.monotonic() - started,
    )
    report.seconds["split"] = time.monotonic() - started

    matrices = Matrices(train, index, {m.handle: m for m in chosen if not m.blocks})
    found: dict[str, Neighbours] = {}
    for model in chosen:
        began = time.monotonic()
        scores, found[model.handle] = measure(matrices.of(model), holdout, k, top_n_stored, threads)
        report.models[model.handle] = scores
        report.settings[model.handle] = model.settings
        report.seconds[model.handle] = time.monotonic() - began
        log.info(
            "%s: recall@%d %.4f, NDCG@%d %.4f, coverage %.1f%%, served %.1f%% (%.1f s)",
            model.handle,
            k,
            scores.recall,
            k,
            scores.ndcg,
            100 * scores.coverage,
            100 * scores.served,
            report.seconds[model.handle],
        )

    everyone = np.ones(len(holdout.users), dtype=np.bool_)
    popular = most_popular(holdout, k)
    report.baselines["most_popular"] = score(popular, holdout, everyone)
    strangers = random_neighbours(len(index), top_n_stored, seed, rows=holdout.users)
    chance = recommend(strangers, holdout.seen, k, holdout.users, holdout.popularity)
    report.baselines["random_neighbours"] = score(chance, holdout, strangers.counts() > 0)

    if cold_start:
        began = time.monotonic()
        asked = profiles(train, index.handles[holdout.users], cold_start_courses, seed)
        report.cold_start_courses = cold_start_courses
        for model in chosen:
            modelled = time.monotonic()
            measured = measure_cold_start(matrices.space(model), asked, holdout, k, top_n_stored)
            report.cold_start[model.handle] = measured
            log.info(
                "%s cold start: recall@%d %.4f, NDCG@%d %.4f, served %.1f%% (%.1f s)",
                model.handle,
                k,
                measured.recall,
                k,
                measured.ndcg,
                100 * measured.served,
                time.monotonic() - modelled,
            )
        # The votes leave out every training course (see `measure_cold_start`), so the most
        # popular courses a newcomer is shown are those of the warm measure.
        report.cold_start["most_popular"] = report.baselines["most_popular"]
        report.seconds["cold_start"] = time.monotonic() - began

    for a, b in itertools.combinations(found, 2):
        shared = overlap(found[a], found[b], len(index), k)
        report.overlap.setdefault(a, {})[b] = shared
        report.overlap.setdefault(b, {})[a] = shared
    report.seconds["total"] = time.monotonic() - started
    return report


def _available(tables: Tables, models: Sequence[Model] | None) -> tuple[list[Model], list[str]]:
    """Split the requested models into those the tables can build and messages for the rest."""
    chosen, skipped = [], []
    for model in models if models is not None else list(MODELS.values()):
        if model.available(tables):
            chosen.append(model)
        else:
            message = f"skipping model {model.handle}: {model.unavailable(tables)}"
            log.warning("%s", message)
            skipped.append(message)
    return chosen, skipped
