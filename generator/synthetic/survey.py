"""Draw a survey of how people like to learn: Likert questions on a few traits, and the answers.

Every user has five latent traits (hands-on, structured, social, deep, driven), mostly their own
but partly set by the topics they follow, so survey neighbours share course taste a little. Each
question loads mainly on one trait (some a little on a second); a reverse-keyed question is worded
against its trait. An answer is the question's loadings times the user's traits plus noise (and a
small agreeing tendency of the user's), spread over the question's scale, rounded and clipped.
Each user skips 10-20% of the questions at random, 5% give up after a few, and 3% answer a few
questions again days later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from generator.synthetic.sampling import Floats, Ints, Strings
from generator.synthetic.users import _epoch, _labels, _timestamp_labels
from generator.tables import column_names

Bools = NDArray[np.bool_]

ANSWERS = "user_answers"
QUESTIONS = "questions"

TRAITS = ("hands-on", "structured", "social", "deep", "driven")
# (trait, reverse-keyed, text): seven questions a trait, two of them worded against it.
BANK: tuple[tuple[int, bool, str], ...] = (
    (0, False, "I prefer learning by doing (exercises) over reading."),
    (0, False, "I learn a new tool fastest by building something small with it."),
    (0, False, "I skip ahead to the exercises and go back to the explanations when stuck."),
    (0, False, "I would rather follow a hands-on lab than watch a lecture."),
    (0, False, "Practice projects teach me more than quizzes."),
    (0, True, "I like to read a whole chapter before I try anything myself."),
    (0, True, "I rarely type along with a video course."),
    (1, False, "I plan my study time for the week ahead."),
    (1, False, "I prefer a learning path with a fixed order of courses."),
    (1, False, "I finish one course before I start another."),
    (1, False, "I set myself deadlines for what I want to learn."),
    (1, False, "I keep my notes organised by topic."),
    (1, True, "I pick my next course on a whim."),
    (1, True, "I often leave a course half-finished when something else catches my eye."),
    (2, False, "I like to study together with colleagues."),
    (2, False, "Discussing a topic with others helps me understand it."),
    (2, False, "I ask questions in forums or chats when I am stuck."),
    (2, False, "I enjoy explaining what I have learned to others."),
    (2, False, "I would join a study group if one were offered."),
    (2, True, "I prefer to learn alone, at my own pace."),
    (2, True, "Group exercises slow me down."),
    (3, False, "I want to understand why a technique works, not just how to use it."),
    (3, False, "I enjoy the theory behind a technology."),
    (3, False, "I read the official documentation, not only tutorials."),
    (3, False, "I like courses that go deep into one topic."),
    (3, False, "I look up the details when a course glosses over them."),
    (3, True, "A quick recipe that works is all I need."),
    (3, True, "I lose interest when a course gets theoretical."),
    (4, False, "I choose advanced courses even when they are hard for me."),
    (4, False, "I take assessments to see where I stand."),
    (4, False, "I learn new skills mainly to move on in my career."),
    (4, False, "I enjoy a difficult problem more than an easy one."),
    (4, False, "I keep learning even when my job does not require it."),
    (4, True, "I stick to topics I already know well."),
    (4, True, "I avoid tests and assessments when I can."),
)
# Scales: most questions agree/disagree on 1-5, the others on 1-7.
_SEVEN_POINT_SHARE = 0.3
_MAIN_LOADING = (0.55, 0.85)
_CROSS_LOADING_SHARE = 0.3
_CROSS_LOADING = (0.1, 0.3)
# The share of a trait's variance set by the user's topics: a little, the rest is the user's own.
_TOPIC_SHARE = 0.25
# How far a question's mean answer sits from its scale's middle, and the users' agreeing tendency,
# in standard deviations of an answer.
_QUESTION_MEAN_SPREAD = 0.35
_AGREEING_SPREAD = 0.2
# Noise never falls below this share of an answer's variance, however high a question's loadings.
_MIN_NOISE_SHARE = 0.2
# Each user skips between these shares of the questions; some give up after a few.
SKIPPED_SHARE = (0.10, 0.20)
GIVING_UP_SHARE = 0.05
GIVING_UP_AFTER = (1, 5)  # questions answered by those who give up: at least, at most
# Some users answer a few questions again, days later, with a fresh answer.
_AGAIN_SHARE = 0.03
_AGAIN_QUESTIONS = (1, 3)
_AGAIN_DAYS = (1, 60)
# Seconds from the first follow to the survey's start, and from one question to the next.
_START_SECONDS = (30, 600)
_ANSWER_SECONDS = (4, 25)
# Nothing is dated after the export's last day (DATA.md's windows end on 2017-11-28).
_LAST_SECOND = _epoch("2017-11-28") + 86_399


@dataclass(frozen=True)
class Survey:
    """The questions, in the order they are asked, with what makes people answer them."""

    question_ids: Strings
    texts: Strings
    scale_min: Ints
    scale_max: Ints
    reverse_keyed: Bools
    loadings: Floats  # (questions, traits); a reverse-keyed question's main loading is negative
    mean: Floats  # (questions,) in standard deviations of an answer from the scale's middle
    noise: Floats  # (questions,) standard deviation of the noise
    topic_traits: Floats  # (topics, traits): where each topic's followers lean

    def question_rows(self) -> pd.DataFrame:
        """Return the rows of questions.csv."""
        return pd.DataFrame(
            dict(
                zip(
                    column_names(QUESTIONS),
                    (
                        self.question_ids,
                        self.texts,
                        self.scale_min,
                        self.scale_max,
                        np.where(self.reverse_keyed, "true", "false"),
                    ),
                    strict=True,
                )
            )
        )


def build_survey(rng: np.random.Generator, n_topics: int) -> Survey:
    """Draw the survey's order, scales and loadings, and the traits of each topic's followers."""
    order = rng.permutation(len(BANK))
    trait = np.array([BANK[i][0] for i in order], dtype=np.int64)
    reverse = np.array([BANK[i][1] for i in order], dtype=np.bool_)
    texts = np.array([BANK[i][2] for i in order])
    n = len(order)
    seven = rng.random(n) < _SEVEN_POINT_SHARE
    loadings = np.zeros((n, len(TRAITS)))
    loadings[np.arange(n), trait] = rng.uniform(*_MAIN_LOADING, n) * np.where(reverse, -1, 1)
    crossed = np.flatnonzero(rng.random(n) < _CROSS_LOADING_SHARE)
    # Another trait than the question's own: a shift of 1 to 4 traits along.
    other = (trait[crossed] + rng.integers(1, len(TRAITS), len(crossed))) % len(TRAITS)
    sign = rng.choice([-1.0, 1.0], len(crossed))
    loadings[crossed, other] = sign * rng.uniform(*_CROSS_LOADING, len(crossed))
    explained = (loadings**2).sum(axis=1)
    return Survey(
        question_ids=np.array([f"q{i + 1:02d}" for i in range(n)]),
        texts=texts,
        scale_min=np.ones(n, dtype=np.int64),
        scale_max=np.where(seven, 7, 5).astype(np.int64),
        reverse_keyed=reverse,
        loadings=loadings,
        mean=rng.normal(0.0, _QUESTION_MEAN_SPREAD, n),
        noise=np.sqrt(np.maximum(1.0 - explained, _MIN_NOISE_SHARE)),
        topic_traits=rng.standard_normal((n_topics, len(TRAITS))),
    )


def answer_rows(
    rng: np.random.Generator,
    survey: Survey,
    handles: Ints,
    topics: Ints,
    shares: Floats,
    joined: Ints,
) -> pd.DataFrame:
    """Draw the answers of users `handles` (their topics and topic shares (users, 3), and when
    they first followed tags, in seconds since the epoch); return rows of user_answers.csv."""
    size, n = len(handles), len(survey.question_ids)
    # The topics' lean, weighted by the user's shares and scaled back to unit variance.
    lean = np.einsum("us,ust->ut", shares, survey.topic_traits[topics])
    lean /= np.sqrt((shares**2).sum(axis=1))[:, None]
    traits = np.sqrt(_TOPIC_SHARE) * lean + np.sqrt(1 - _TOPIC_SHARE) * rng.standard_normal(
        (size, len(TRAITS))
    )
    agreeing = rng.normal(0.0, _AGREEING_SPREAD, size)
    signal = traits @ survey.loadings.T + survey.mean[None, :] + agreeing[:, None]

    # Each user skips a share of the questions; some give up after the first few.
    skips = np.round(rng.uniform(*SKIPPED_SHARE, size) * n).astype(np.int64)
    rank = np.argsort(np.argsort(rng.random((size, n)), axis=1), axis=1)
    answered = rank >= skips[:, None]
    giving_up = rng.random(size) < GIVING_UP_SHARE
    low, high = GIVING_UP_AFTER
    last = rng.integers(low, high + 1, size)
    answered[giving_up] = np.arange(n)[None, :] < last[giving_up, None]

    # Questions come in order, one every few seconds, shortly after the user's first follows.
    start = joined + rng.integers(*_START_SECONDS, size)
    at = start[:, None] + np.cumsum(rng.integers(*_ANSWER_SECONDS, (size, n)), axis=1)
    at = np.minimum(at, _LAST_SECOND)
    value = _on_scale(survey, signal + survey.noise * rng.standard_normal((size, n)))
    user, question = np.nonzero(answered)
    rows = [(user, question, value[user, question], at[user, question])]

    # A few answer some of their questions again, days later; the latest answer is the one.
    end = np.where(answered, at, 0).max(axis=1)
    room = _LAST_SECOND - end
    again = ~giving_up & (rng.random(size) < _AGAIN_SHARE) & (room > 2 * 86_400)
    for u in np.flatnonzero(again):
        mine = np.flatnonzero(answered[u])
        count = min(int(rng.integers(_AGAIN_QUESTIONS[0], _AGAIN_QUESTIONS[1] + 1)), len(mine))
        picked = np.sort(rng.choice(mine, count, replace=False))
        days = rng.uniform(_AGAIN_DAYS[0], min(_AGAIN_DAYS[1], room[u] / 86_400 - 1))
        when = end[u] + int(days * 86_400) + np.cumsum(rng.integers(*_ANSWER_SECONDS, count))
        noise = survey.noise[picked] * rng.standard_normal(count)
        fresh = _on_scale(survey, signal[u, picked] + noise, picked)
        rows.append((np.full(count, u), picked, fresh, np.minimum(when, _LAST_SECOND)))

    user, question, value, at = (np.concatenate(part) for part in zip(*rows, strict=True))
    order = np.lexsort((question, at, user))
    return pd.DataFrame(
        dict(
            zip(
                column_names(ANSWERS),
                (
                    handles[user[order]],
                    _labels(question[order], survey.question_ids),
                    value[order],
                    _timestamp_labels(at, order),
                ),
                strict=True,
            )
        )
    )


def _on_scale(survey: Survey, z: Floats, questions: Ints | None = None) -> Ints:
    """Spread z (standard deviations from the middle) over the questions' scales, rounded and
    clipped; `questions` says whose scales, by default every question's in order."""
    picked = slice(None) if questions is None else questions
    low, high = survey.scale_min[picked], survey.scale_max[picked]
    # Two standard deviations either side reach the ends of the scale.
    middle, spread = (low + high) / 2, (high - low) / 4
    return np.clip(np.round(middle + z * spread), low, high).astype(np.int64)
