"""Compare an export's aggregate figures with the real export's, each within a stated tolerance.

The real figures come from two places: the prose of `shared/data/DATA.md` (constants below, for
the files the project does not have) and the real sample files, measured when they are present.
Both sides are measured the same way, on the rows as an export holds them: the loader removes
exact duplicates, but the real counts include them, so the figures are taken before loading.
Every figure is for an export of the real sample's size (10,000 users); counts of distinct tags,
courses, authors and days grow with the number of users.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from generator.tables import PLATFORM_TABLES, column_names, file_name

INTERESTS, VIEWS, ASSESSMENTS, COURSE_TAGS = PLATFORM_TABLES
USER, TAG, FOLLOWED = column_names(INTERESTS)
_, DAY, COURSE, AUTHOR, LEVEL, SECONDS = column_names(VIEWS)
_, ASSESSMENT_TAG, _, SCORE = column_names(ASSESSMENTS)
_, COURSE_TAG = column_names(COURSE_TAGS)
# The real aggregate of the missing user_interests.csv: rows per user and follow timestamp.
INTEREST_SAVES_FILE = "interest_rows_per_user_and_time.csv"
SAVE_ROWS = "N Rows"

DATA_MD = "DATA.md"
# DATA.md: "The public sample of this export has 10,000 users".
REAL_USERS = 10_000
# DATA.md, "user_interests": 297,526 rows, 748 distinct tags, 18,209 exact duplicate rows; the most
# followed tags with their counts. Those counts are read as rows, like every other count there (a
# tag's rows exceed its followers: a user's every save of their list repeats it).
_INTEREST_ROWS = 297_526
_TOP_TAG_ROWS = (4_878, 4_469, 4_469, 4_178, 3_933, 3_761, 3_750)
# DATA.md, "user_course_views": rows, viewing users, (user, course) pairs, rows per level.
_VIEW_ROWS = 249_238
_VIEWERS = 8_760
_VIEW_PAIRS = 105_353
_LEVEL_ROWS = {"Beginner": 116_143, "Intermediate": 119_373, "Advanced": 13_722}
DATA_MD_FIGURES: Mapping[str, float] = {
    "interest tags, distinct": 748,
    "interest rows that are exact duplicates, share": 18_209 / _INTEREST_ROWS,
    "most followed tag, rows per user": _TOP_TAG_ROWS[0] / REAL_USERS,
    "7th most followed tag, rows per user": _TOP_TAG_ROWS[-1] / REAL_USERS,
    "7 most followed tags, rows per user": sum(_TOP_TAG_ROWS) / REAL_USERS,
    # "591 interest tags also occur as course tags; only 17 also occur as assessment tags."
    "interest tags that are course tags": 591,
    "interest tags that are assessment tags": 17,
    "users with course views, share": _VIEWERS / REAL_USERS,
    "view rows per viewing user": _VIEW_ROWS / _VIEWERS,
    "view rows per (user, course)": _VIEW_ROWS / _VIEW_PAIRS,
    # "Courses per viewing user: mean 12.0, median 5, 25% 2, 75% 14, max 533."
    "courses per viewing user, mean": _VIEW_PAIRS / _VIEWERS,
    "courses per viewing user, 25%": 2,
    "courses per viewing user, median": 5,
    "courses per viewing user, 75%": 14,
    "courses per viewing user, max": 533,
    # "5,942 courses (all present in course_tags), 1,412 authors, 212 distinct dates".
    "courses viewed, distinct": 5_942,
    "authors viewed, distinct": 1_412,
    "view days, distinct": 212,
    **{f"{level} rows, share": rows / _VIEW_ROWS for level, rows in _LEVEL_ROWS.items()},
    # "view_time_seconds: mean 1,788, std about 2,207, right-skewed, zeros occur, max 44,410".
    "view seconds, mean": 1_788,
    "view seconds, std": 2_207,
    "view seconds, max": 44_410,
    # "105,353 distinct (user, course) pairs; 29 of them total 0 seconds."
    "(user, course) pairs of 0 seconds, share": 29 / _VIEW_PAIRS,
}


@dataclass(frozen=True)
class Tolerance:
    """How far a synthetic figure may be from the real one: the larger of both bounds, and why."""

    relative: float  # a share of the real value
    absolute: float
    reason: str
    factor: float = 0.0  # when set, the bound is instead real ÷ factor to real × factor

    def allows(self, real: float, synthetic: float) -> bool:
        """Say whether synthetic is within this tolerance of real."""
        if self.factor:
            return real / self.factor <= synthetic <= real * self.factor
        return abs(synthetic - real) <= max(self.relative * abs(real), self.absolute) + 1e-9

    def describe(self) -> str:
        """Say the bound in a few characters, like "±10 %", "±1" or "×÷2"."""
        if self.factor:
            return f"×÷{self.factor:g}"
        parts = [f"±{self.relative:.0%}".replace("%", " %")] if self.relative else []
        if self.absolute:
            parts.append(f"±{self.absolute:g}")
        return " or ".join(parts)


# Every tolerance in one place. They were set from how far ten seeds of the 10,000-user export
# spread (`python -m bench.realism --seeds 10`), so that a figure outside is a real gap; the
# built-in catalogue, invented anew for each seed, spreads more (README, "How realistic").
BUILT = Tolerance(
    0.05,
    0,
    "fixed by construction (the catalogue's shape, a share drawn directly, a date window): "
    "only sampling moves it",
)
CENTRE = Tolerance(
    0.10, 0, "a mean or quantile over thousands of users or rows: seeds move it by a few percent"
)
STEP = Tolerance(0.10, 1, "a quantile of small whole numbers moves in steps of one")
HEAD = Tolerance(
    0.15,
    0,
    "set by a handful of popular tags or a few hundred heavy users, and the catalogue gives each "
    "seed its own popular tags",
)
TAIL = Tolerance(
    0.15, 0.01, "a share of a few percent of users: a hundred users more or less is 1 point"
)
EXTREME = Tolerance(
    0,
    0,
    "the single largest value among 10,000 users or 300,000 rows: seeds move it by half",
    factor=2,
)
MOST = Tolerance(
    0, 3, "the real tail is 5 users with 13 to 15: an export of 10,000 may have none of them"
)
RARE = Tolerance(0, 8, "a few dozen tags, each of which an export may or may not happen to use")
RARE_SHARE = Tolerance(
    0, 0.0005, "29 of 105,353 pairs in the real export: a few dozen events, each a coin toss"
)


@dataclass(frozen=True)
class Figure:
    """One aggregate figure: where its real value comes from and how close the synthetic must be."""

    name: str
    source: str  # DATA.md or the name of a real sample file
    tolerance: Tolerance


def _figures(source: str, *named: tuple[str, Tolerance]) -> list[Figure]:
    return [Figure(name, source, tolerance) for name, tolerance in named]


FIGURES: tuple[Figure, ...] = (
    *_figures(
        INTEREST_SAVES_FILE,
        ("interest rows per user, mean", CENTRE),
        ("interest rows per user, 25%", STEP),
        ("interest rows per user, median", STEP),
        ("interest rows per user, 75%", CENTRE),
        ("interest rows per user, 90%", HEAD),
        ("interest rows per user, max", EXTREME),
        ("users with one interest row, share", TAIL),
        ("users with 100+ interest rows, share", TAIL),
        ("users who followed everything at one time, share", CENTRE),
        ("follow times per user, mean", CENTRE),
    ),
    *_figures(
        DATA_MD,
        ("interest tags, distinct", BUILT),
        ("interest rows that are exact duplicates, share", CENTRE),
        ("most followed tag, rows per user", HEAD),
        ("7th most followed tag, rows per user", HEAD),
        ("7 most followed tags, rows per user", HEAD),
        ("interest tags that are course tags", BUILT),
        ("interest tags that are assessment tags", RARE),
        ("users with course views, share", BUILT),
        ("view rows per viewing user", CENTRE),
        ("view rows per (user, course)", CENTRE),
        ("courses per viewing user, mean", CENTRE),
        ("courses per viewing user, 25%", STEP),
        ("courses per viewing user, median", STEP),
        ("courses per viewing user, 75%", CENTRE),
        ("courses per viewing user, max", EXTREME),
        ("courses viewed, distinct", BUILT),
        ("authors viewed, distinct", BUILT),
        ("view days, distinct", BUILT),
        *((f"{level} rows, share", CENTRE) for level in _LEVEL_ROWS),
        ("view seconds, mean", CENTRE),
        ("view seconds, std", CENTRE),
        ("view seconds, max", BUILT),
        ("(user, course) pairs of 0 seconds, share", RARE_SHARE),
    ),
    *_figures(
        file_name(ASSESSMENTS),
        ("users with assessments, share", BUILT),
        ("assessments per assessed user, mean", CENTRE),
        ("assessments per assessed user, median", STEP),
        ("assessments per assessed user, 90%", STEP),
        ("assessments per assessed user, max", MOST),
        ("assessed users with one assessment, share", CENTRE),
        ("assessment tags, distinct", BUILT),
        ("most taken assessment tag, share of rows", HEAD),
        ("assessment score, mean", BUILT),
        ("assessment score, std", BUILT),
        ("assessment score, 25%", BUILT),
        ("assessment score, median", BUILT),
        ("assessment score, 75%", BUILT),
    ),
    *_figures(
        file_name(COURSE_TAGS),
        ("courses", BUILT),
        ("course tags, distinct", BUILT),
        ("tags per course, mean", BUILT),
        ("tags per course, max", EXTREME),
        ("courses without a tag", BUILT),
        ("most used course tag, courses", HEAD),
    ),
)


@dataclass(frozen=True)
class Comparison:
    """A figure measured on both exports."""

    figure: Figure
    real: float
    synthetic: float

    @property
    def ratio(self) -> float:
        """Return synthetic over real (1: the same), or nan when the real value is 0."""
        return self.synthetic / self.real if self.real else math.nan

    @property
    def within(self) -> bool:
        """Say whether the synthetic figure is within the figure's tolerance of the real one."""
        return self.figure.tolerance.allows(self.real, self.synthetic)


Frames = Mapping[str, pd.DataFrame | None]


def read_export(folder: Path) -> dict[str, pd.DataFrame | None]:
    """Read the export files in folder as written, duplicates kept; None for a missing file."""
    frames: dict[str, pd.DataFrame | None] = {}
    for table in PLATFORM_TABLES:
        path = folder / file_name(table)
        frames[table] = (
            pd.read_csv(path, dtype={COURSE_TAG: str}, keep_default_na=False)
            if path.is_file()
            else None
        )
    return frames


def export_users(frames: Frames) -> int:
    """Count the distinct users of an export's user tables."""
    handles = [f[USER] for t, f in frames.items() if f is not None and t != COURSE_TAGS]
    return int(pd.concat(handles).nunique()) if handles else 0


def figures(frames: Frames, users: int) -> dict[str, float]:
    """Measure every figure an export's tables allow; `users` is how many users it has."""
    interests, views = frames.get(INTERESTS), frames.get(VIEWS)
    assessments, course_tags = frames.get(ASSESSMENTS), frames.get(COURSE_TAGS)
    found: dict[str, float] = {}
    if interests is not None:
        found |= save_figures(interest_saves(interests), users)
        found |= interest_figures(interests, users, course_tags, assessments)
    if views is not None:
        found |= view_figures(views, users)
    if assessments is not None:
        found |= assessment_figures(assessments, users)
    if course_tags is not None:
        found |= course_tag_figures(course_tags)
    return found


def interest_saves(interests: pd.DataFrame) -> pd.DataFrame:
    """Count the interest rows of every (user, follow time): the real aggregate file's shape."""
    saves = interests.groupby([USER, FOLLOWED], sort=False, observed=True).size()
    return saves.rename(SAVE_ROWS).reset_index()


def save_figures(saves: pd.DataFrame, users: int) -> dict[str, float]:
    """Measure how many interest rows users have and how often they save, from rows per save."""
    rows = saves.groupby(USER)[SAVE_ROWS].sum()
    times = saves.groupby(USER).size()
    return {
        **_spread("interest rows per user", rows, ("mean", 0.25, 0.5, 0.75, 0.9, "max")),
        "users with one interest row, share": float((rows == 1).sum() / users),
        "users with 100+ interest rows, share": float((rows >= 100).sum() / users),
        "users who followed everything at one time, share": float((times == 1).mean()),
        "follow times per user, mean": float(times.mean()),
    }


def interest_figures(
    interests: pd.DataFrame,
    users: int,
    course_tags: pd.DataFrame | None,
    assessments: pd.DataFrame | None,
) -> dict[str, float]:
    """Measure the interest tags: how many, how concentrated, how many repeat exactly."""
    rows = interests[TAG].value_counts().to_numpy()
    top = np.sort(rows)[::-1][: len(_TOP_TAG_ROWS)]
    tags = set(interests[TAG].astype(str))
    found = {
        "interest tags, distinct": float(len(tags)),
        "interest rows that are exact duplicates, share": float(interests.duplicated().mean()),
        "most followed tag, rows per user": float(top[0] / users),
        "7th most followed tag, rows per user": float(top[-1] / users),
        "7 most followed tags, rows per user": float(top.sum() / users),
    }
    if course_tags is not None:
        found["interest tags that are course tags"] = float(
            len(tags & set(course_tags[COURSE_TAG]))
        )
    if assessments is not None:
        found["interest tags that are assessment tags"] = float(
            len(tags & set(assessments[ASSESSMENT_TAG].astype(str)))
        )
    return found


def view_figures(views: pd.DataFrame, users: int) -> dict[str, float]:
    """Measure who views courses, how many, how long, on how many days, at which levels."""
    pairs = views.groupby([USER, COURSE], sort=False)[SECONDS].sum()
    courses = pairs.groupby(level=0).size()
    levels = views[LEVEL].value_counts(normalize=True)
    return {
        "users with course views, share": float(len(courses) / users),
        "view rows per viewing user": float(len(views) / len(courses)),
        "view rows per (user, course)": float(len(views) / len(pairs)),
        **_spread("courses per viewing user", courses, ("mean", 0.25, 0.5, 0.75, "max")),
        "courses viewed, distinct": float(views[COURSE].nunique()),
        "authors viewed, distinct": float(views[AUTHOR].nunique()),
        "view days, distinct": float(views[DAY].nunique()),
        **{f"{level} rows, share": float(levels.get(level, 0.0)) for level in _LEVEL_ROWS},
        "view seconds, mean": float(views[SECONDS].mean()),
        "view seconds, std": float(views[SECONDS].std()),
        "view seconds, max": float(views[SECONDS].max()),
        "(user, course) pairs of 0 seconds, share": float((pairs == 0).mean()),
    }


def assessment_figures(assessments: pd.DataFrame, users: int) -> dict[str, float]:
    """Measure who takes assessments, how many, on which tags, with which scores."""
    per_user = assessments.groupby(USER).size()
    tags = assessments[ASSESSMENT_TAG].value_counts(normalize=True)
    return {
        "users with assessments, share": float(len(per_user) / users),
        **_spread("assessments per assessed user", per_user, ("mean", 0.5, 0.9, "max")),
        "assessed users with one assessment, share": float((per_user == 1).mean()),
        "assessment tags, distinct": float(len(tags)),
        "most taken assessment tag, share of rows": float(tags.iloc[0]),
        **_spread("assessment score", assessments[SCORE], ("mean", "std", 0.25, 0.5, 0.75)),
    }


def course_tag_figures(course_tags: pd.DataFrame) -> dict[str, float]:
    """Measure the catalogue: courses, tags, tags per course."""
    named = course_tags[course_tags[COURSE_TAG] != ""]
    per_course = named.groupby(COURSE).size()
    return {
        "courses": float(course_tags[COURSE].nunique()),
        "course tags, distinct": float(named[COURSE_TAG].nunique()),
        "tags per course, mean": float(per_course.mean()),
        "tags per course, max": float(per_course.max()),
        "courses without a tag": float((course_tags[COURSE_TAG] == "").sum()),
        "most used course tag, courses": float(named[COURSE_TAG].value_counts().iloc[0]),
    }


def _spread(name: str, values: pd.Series, which: tuple[str | float, ...]) -> dict[str, float]:
    """Name the mean, std, max and quantiles (as 0.25 → "25%", 0.5 → "median") of values."""
    found: dict[str, float] = {}
    for what in which:
        if isinstance(what, float):
            label = "median" if what == 0.5 else f"{what:.0%}"
            found[f"{name}, {label}"] = float(values.quantile(what))
        else:
            found[f"{name}, {what}"] = float(getattr(values, what)())
    return found


def real_figures(sample_dir: Path | None) -> dict[str, float]:
    """Return the real figures: DATA.md's, and those measured on the sample files in sample_dir."""
    found = dict(DATA_MD_FIGURES)
    if sample_dir is None:
        return found
    saves_path = sample_dir / INTEREST_SAVES_FILE
    if saves_path.is_file():
        found |= save_figures(pd.read_csv(saves_path), REAL_USERS)
    sample = {
        table: pd.read_csv(path, dtype={COURSE_TAG: str}, keep_default_na=False)
        for table in (ASSESSMENTS, COURSE_TAGS)
        if (path := sample_dir / file_name(table)).is_file()
    }
    if ASSESSMENTS in sample:
        found |= assessment_figures(sample[ASSESSMENTS], REAL_USERS)
    if COURSE_TAGS in sample:
        found |= course_tag_figures(sample[COURSE_TAGS])
    return found


def compare(synthetic: Mapping[str, float], real: Mapping[str, float]) -> list[Comparison]:
    """Pair every figure known on both sides, in the order of FIGURES."""
    return [
        Comparison(figure, real[figure.name], synthetic[figure.name])
        for figure in FIGURES
        if figure.name in real and figure.name in synthetic
    ]
