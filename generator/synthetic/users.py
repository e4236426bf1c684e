"""Draw a chunk of users: the tags they follow, the courses they view, the assessments they take.

Every user gets a sparse mixture of one to three of the catalogue's topics and draws each signal
from that mixture plus some noise, so similar users really exist and every signal says so. Counts,
dates and amounts follow the shapes of the real export (README, "The data").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from generator.synthetic.catalogue import ASSESSMENTS, Catalogue
from generator.synthetic.sampling import Floats, Ints, Sampler, Strings, draw, ranks
from generator.synthetic.vocabulary import LEVELS
from generator.tables import column_names

# The user tables (keys of generator.tables.SCHEMAS) besides ASSESSMENTS.
INTERESTS = "user_interests"
VIEWS = "user_course_views"
ANSWERS = "user_answers"

# What draws a chunk's survey answers, from its users' handles, topics and topic shares (both
# (users, 3)) and the times they first followed tags; the writer gives it its own generator.
AnswerDraw = Callable[[Ints, Ints, Floats, Ints], pd.DataFrame]

# Date windows of the real export, as (first, last) calendar days.
_INTEREST_WINDOW = ("2017-05-03", "2017-11-28")
_VIEW_WINDOW = ("2017-05-01", "2017-11-28")
_ASSESSMENT_WINDOW = ("2016-07-13", "2017-11-28")
# Share of first follows per calendar month, May..November 2017, as seen in the real export.
_FOLLOW_MONTHS = (
    ("2017-05-03", 0.004),
    ("2017-06-01", 0.096),
    ("2017-07-01", 0.323),
    ("2017-08-01", 0.140),
    ("2017-09-01", 0.159),
    ("2017-10-01", 0.149),
    ("2017-11-01", 0.129),
)
# Relative number of assessments taken per calendar month, July 2016..November 2017.
_ASSESSMENT_MONTH_WEIGHTS = (
    40,
    128,
    216,
    70,
    144,
    200,
    190,
    187,
    212,
    238,
    317,
    403,
    758,
    647,
    1033,
    982,
    806,
)
# Real-looking shape targets (see DATA.md).
_ASSESSMENTS_PER_USER_WEIGHTS = (1734, 561, 329, 177, 133, 70, 41, 29, 15, 12, 4, 4, 2, 2, 1)
_VIEWER_SHARE = 0.876
_ASSESSED_SHARE = 0.311
_DUPLICATE_INTEREST_SHARE = 0.065
# Each signal is a noisy view of the same latent topics. Following a tag is a deliberate choice, so
# few follows stray from a user's topics; what people watch strays far more (a course a colleague
# shared, required training, whatever is trending). The real export's first user follows ASP.NET
# MVC tags and watched a SharePoint branding course and an AWS administration course.
_STRAY_INTEREST_SHARE = 0.2
# The platform suggests its most followed tags to everyone, and many follow some of them whatever
# their own topics: the real export's most followed tag has about one row per two users.
_SUGGESTED_SHARE = 0.05
_BROWSING_SHARE = 0.4
_STRAY_ASSESSMENT_SHARE = 0.3
_MAX_VIEW_SECONDS = 44_410
# Courses per viewer have the real quartiles 2, 5 and 14 and a mean of 12.0: a log-normal around
# the median whose spread is one below it, another up to the upper quartile and a third above it
# (a single spread through those quartiles would have a mean of 16).
_COURSES_MEDIAN = 5.0
_COURSES_SPREAD = (1.36, 1.53, 1.2)
_UPPER_QUARTILE_Z = 0.6745


def user_rows(
    rng: np.random.Generator,
    catalogue: Catalogue,
    first: int,
    size: int,
    answers: AnswerDraw | None = None,
) -> dict[str, pd.DataFrame]:
    """Draw users first..first+size-1 and return their rows of each user table, keyed by table;
    with `answers`, their survey answers too."""
    people = _users(rng, catalogue, first, size)
    # The order of the draws is part of the output: the same seed must give the same files.
    frames = {
        INTERESTS: _interests(rng, catalogue, people),
        VIEWS: _views(rng, catalogue, people),
        ASSESSMENTS: _assessments(rng, catalogue, people),
    }
    if answers is not None:
        shares = np.diff(people.mixture, axis=1, prepend=0.0)
        frames[ANSWERS] = answers(people.handles, people.topics, shares, people.joined)
    return frames


def _rows(table: str, *columns: object) -> pd.DataFrame:
    """Return the columns of table `table`, in its schema's order, as a frame named by it."""
    return pd.DataFrame(dict(zip(column_names(table), columns, strict=True)))


@dataclass(frozen=True)
class _Users:
    """The latent side of one chunk of users: their topic mixtures and when they joined."""

    handles: Ints
    topics: Ints  # (users, 3)
    mixture: Floats  # (users, 3) cumulative topic weights, last column 1
    main: Ints
    joined: Ints  # seconds since the Unix epoch of the first follow


def _users(rng: np.random.Generator, catalogue: Catalogue, first: int, size: int) -> _Users:
    """Give each user of a chunk a sparse mixture of one to three topics and a join time."""
    n_topics = len(catalogue.topic_weight)
    # Gumbel-top-k draws distinct topics per user, more popular ones more often.
    keys = np.log(catalogue.topic_weight) + rng.gumbel(size=(size, n_topics))
    topics = np.argsort(-keys, axis=1)[:, :3].astype(np.int64)
    count = rng.choice(3, size=size, p=(0.4, 0.4, 0.2)) + 1
    share = rng.dirichlet(np.ones(3), size=size)
    share[np.arange(3)[None, :] >= count[:, None]] = 0.0
    share /= share.sum(axis=1, keepdims=True)
    main = topics[np.arange(size), np.argmax(share, axis=1)]
    mixture = np.cumsum(share, axis=1)
    mixture[:, -1] = 1.0

    starts = np.array([_epoch(day) for day, _ in _FOLLOW_MONTHS], dtype=np.int64)
    ends = np.append(starts[1:], _epoch(_INTEREST_WINDOW[1]) + 86_400)
    month = rng.choice(len(starts), size=size, p=np.array([w for _, w in _FOLLOW_MONTHS]))
    joined = starts[month] + (rng.random(size) * (ends[month] - starts[month])).astype(np.int64)
    handles = np.arange(first, first + size, dtype=np.int64)
    return _Users(handles, topics, mixture, main, joined)


def _epoch(day: str) -> int:
    """Return the seconds since the Unix epoch at the start of a YYYY-MM-DD day."""
    return int(np.datetime64(day, "s").astype(np.int64))


def _mixed_topics(
    rng: np.random.Generator, people: _Users, owner: Ints, noise: float, common: _Common
) -> Ints:
    """Pick a topic for each draw from its owner's mixture, or -1 (anything) with prob noise.

    With prob common.share, a draw is from common.topic instead, the same for everyone.
    """
    u = rng.random(len(owner))
    slot = (u[:, None] >= people.mixture[owner]).sum(axis=1)
    topics = people.topics[owner, np.minimum(slot, 2)]
    stray = rng.random(len(owner))
    return np.where(stray < noise, -1, np.where(stray < noise + common.share, common.topic, topics))


@dataclass(frozen=True)
class _Common:
    """A topic every user draws from now and then whatever their own topics, and how often."""

    topic: int = -1
    share: float = 0.0


def _distinct(
    rng: np.random.Generator,
    sampler: Sampler,
    people: _Users,
    wanted: Ints,
    noise: float,
    exact_above: int = 30,
    common: _Common = _Common(),
) -> tuple[Ints, Ints]:
    """Draw wanted[u] distinct items for each user u from their mixture; return owners and items.

    Both paths sample without replacement from the same weights: light users by drawing with
    replacement and keeping first occurrences, heavy users (who would need endless redraws to
    reach rare items) by Gumbel-top-k over their full weight vector.
    """
    n_items = sampler.shares.shape[1]
    wanted = np.minimum(wanted, n_items)
    heavy = wanted > exact_above
    light = np.where(heavy, 0, wanted)
    owner = np.repeat(np.arange(len(wanted)), 2 * light + 3 * (light > 0))
    items = draw(rng, sampler, _mixed_topics(rng, people, owner, noise, common))
    keep = _first_distinct(owner, items, n_items, light)
    owners, picks = [owner[keep]], [items[keep]]
    heavy_users = np.flatnonzero(heavy)
    for batch in np.array_split(heavy_users, max(1, -(-len(heavy_users) // 256))):
        share = np.diff(people.mixture[batch], axis=1, prepend=0.0)
        weight = (
            noise * sampler.shares[-1]
            + common.share * sampler.shares[common.topic]
            + (1 - noise - common.share)
            * sum(
                share[:, slot, None] * sampler.shares[people.topics[batch, slot]]
                for slot in range(3)
            )
        )
        keys = np.log(np.maximum(weight, 1e-300)) + rng.gumbel(size=weight.shape)
        ranked = np.argsort(-keys, axis=1)
        take = np.arange(n_items)[None, :] < wanted[batch, None]
        owners.append(np.broadcast_to(batch[:, None], ranked.shape)[take])
        picks.append(ranked[take])
    owner, items = np.concatenate(owners), np.concatenate(picks)
    order = np.argsort(owner, kind="stable")
    return owner[order].astype(np.int64), items[order].astype(np.int64)


def _first_distinct(owner: Ints, item: Ints, n_items: int, limit: Ints) -> Ints:
    """Return the indices of each owner's first limit[owner] distinct items, in draw order."""
    _, first = np.unique(owner * n_items + item, return_index=True)
    keep = np.sort(first)
    rank = ranks(owner[keep])
    return np.asarray(keep[rank < limit[owner[keep]]], dtype=np.int64)


def _labels(codes: Ints, names: Strings) -> pd.Categorical:
    """Return names[codes] as a categorical, which stays small however many rows repeat a name."""
    return pd.Categorical.from_codes(codes, categories=pd.Index(names))


def _timestamp_labels(seconds: Ints, index: Ints) -> pd.Categorical:
    """Return the formatted times seconds[index], formatting each distinct second once."""
    distinct, code = np.unique(seconds, return_inverse=True)
    return _labels(code[index], _timestamps(distinct))


def _timestamps(seconds: Ints) -> Strings:
    """Format seconds since the Unix epoch as "YYYY-MM-DD HH:MM:SS"."""
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    # Swapping the "T" in the fixed-width UCS-4 buffer is far faster than string replacement.
    chars = text.view(np.uint32).reshape(-1, text.dtype.itemsize // 4)
    chars[:, 10] = ord(" ")
    return text


def _interests(rng: np.random.Generator, catalogue: Catalogue, people: _Users) -> pd.DataFrame:
    """Draw each user's followed tags, saved in one or more growing batches, with some repeats."""
    size = len(people.handles)
    wanted = np.where(
        rng.random(size) < 0.12,
        1,
        np.clip(np.round(rng.lognormal(2.6, 1.0, size)), 2, 500),
    ).astype(np.int64)
    suggested = _Common(catalogue.suggested_topic, _SUGGESTED_SHARE)
    owner, tags = _distinct(
        rng, catalogue.interests, people, wanted, _STRAY_INTEREST_SHARE, common=suggested
    )
    distinct = np.bincount(owner, minlength=size)
    list_start = np.r_[0, np.cumsum(distinct)[:-1]]

    # Some users save their tag list several times, each save a superset of the previous one.
    # Users with many tags re-save their list more often (seen in the real per-save counts).
    saves = 1 + rng.poisson(0.005 + 0.012 * distinct)
    save_owner = np.repeat(np.arange(size), saves)
    save_rank = ranks(save_owner)
    last = save_rank == saves[save_owner] - 1
    fraction = np.where(last, 1.0, rng.uniform(0.3, 1.0, len(save_owner)))
    fraction = _sorted_within(save_owner, fraction)
    save_size = np.maximum(np.ceil(fraction * distinct[save_owner]), 1).astype(np.int64)
    gap = np.where(
        rng.random(len(save_owner)) < 0.75,
        rng.integers(15, 400, len(save_owner)),
        (rng.exponential(15 * 86_400, len(save_owner))).astype(np.int64),
    )
    at = _within_window(
        people.joined[save_owner], save_owner, gap, _epoch(_INTEREST_WINDOW[1]) + 86_399
    )

    row_save = np.repeat(np.arange(len(save_owner)), save_size)
    row_tag = tags[list_start[save_owner[row_save]] + ranks(row_save)]
    repeat = 1 + (rng.random(len(row_save)) < _DUPLICATE_INTEREST_SHARE)
    row_save, row_tag = np.repeat(row_save, repeat), np.repeat(row_tag, repeat)
    return _rows(
        INTERESTS,
        people.handles[save_owner[row_save]],
        _labels(row_tag, catalogue.interest_tags),
        _timestamp_labels(at, row_save),
    )


def _sorted_within(groups: Ints, values: Floats) -> Floats:
    """Sort values ascending within each run of equal, sorted group values."""
    return values[np.lexsort((values, groups))]


def _cumsum_within(groups: Ints, values: Ints) -> Ints:
    """Cumulative sums of values restarting at each run of equal, sorted group values."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    total = np.cumsum(values)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    before = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, len(groups)]))
    return np.asarray(total - before, dtype=np.int64)


def _courses_per_viewer(rng: np.random.Generator, size: int) -> Floats:
    """Draw how many courses viewers view: log-normal, through the real export's quartiles."""
    z = rng.standard_normal(size)
    below, middle, above = _COURSES_SPREAD
    upper = middle * _UPPER_QUARTILE_Z + above * (z - _UPPER_QUARTILE_Z)
    log = np.where(z < 0, below * z, np.where(z < _UPPER_QUARTILE_Z, middle * z, upper))
    return np.asarray(_COURSES_MEDIAN * np.exp(log), dtype=np.float64)


def _views(rng: np.random.Generator, catalogue: Catalogue, people: _Users) -> pd.DataFrame:
    """Draw each viewer's courses from their topics and spread the views over their active days."""
    size = len(people.handles)
    n_courses = len(catalogue.course_ids)
    viewer = rng.random(size) < _VIEWER_SHARE
    length = np.clip(np.round(_courses_per_viewer(rng, size)), 1, min(540, n_courses))
    wanted = np.where(viewer, length, 0).astype(np.int64)
    owner, courses = _distinct(rng, catalogue.courses, people, wanted, noise=_BROWSING_SHARE)

    # A user is active from a little before they first followed tags until some later day.
    last_day = (_epoch(_VIEW_WINDOW[1]) - _epoch(_VIEW_WINDOW[0])) // 86_400
    joined_day = (people.joined - _epoch(_VIEW_WINDOW[0])) // 86_400
    start = np.maximum(joined_day - rng.exponential(20, size).astype(np.int64), 0)
    span = np.ceil((last_day - start) * rng.random(size) ** 0.5).astype(np.int64)
    first_day = start[owner] + (rng.random(len(owner)) * (span[owner] + 1)).astype(np.int64)

    days = np.minimum(rng.geometric(0.42, len(owner)), 40)
    pair = np.repeat(np.arange(len(owner)), days)
    gap = rng.geometric(0.3, len(pair))
    gap[ranks(pair) == 0] = 0
    day = np.minimum(first_day[pair] + _cumsum_within(pair, gap), last_day)
    key = (owner[pair] * (last_day + 1) + day) * n_courses + catalogue.course_order[courses[pair]]
    _, unique = np.unique(key, return_index=True)
    row_owner, row_day, row_course = owner[pair][unique], day[unique], courses[pair][unique]

    # Log-normal with the real mean and spread; a few views are recorded as zero seconds.
    seconds = np.round(rng.lognormal(7.026, 0.962, len(unique)))
    seconds[rng.random(len(unique)) < 0.0005] = 0
    day_names = np.datetime_as_string(
        np.datetime64(_VIEW_WINDOW[0], "D") + np.arange(last_day + 1), unit="D"
    )
    return _rows(
        VIEWS,
        people.handles[row_owner],
        _labels(row_day, day_names),
        _labels(row_course, catalogue.course_ids),
        catalogue.course_author[row_course],
        _labels(catalogue.course_level[row_course], np.array(LEVELS)),
        np.minimum(seconds, _MAX_VIEW_SECONDS).astype(np.int64),
    )


def _assessments(rng: np.random.Generator, catalogue: Catalogue, people: _Users) -> pd.DataFrame:
    """Draw a third of the users' assessments from their topics, scoring their main topic higher."""
    size = len(people.handles)
    n_tags = len(catalogue.assessment_tags)
    pmf = np.array(_ASSESSMENTS_PER_USER_WEIGHTS, dtype=np.float64)
    wanted = 1 + rng.choice(len(pmf), size=size, p=pmf / pmf.sum())
    wanted = np.where(rng.random(size) < _ASSESSED_SHARE, np.minimum(wanted, n_tags), 0)
    # Few assessment tags exist, so exact sampling without replacement is cheap for everyone.
    owner, tags = _distinct(
        rng,
        catalogue.assessments,
        people,
        wanted.astype(np.int64),
        noise=_STRAY_ASSESSMENT_SHARE,
        exact_above=0,
    )

    ability = rng.normal(0, 0.6, size)[owner]
    strength = ability + 0.7 * (catalogue.assessment_topic[tags] == people.main[owner])
    strength = strength + rng.normal(0, 0.75, len(owner))
    if len(owner) > 1 and strength.std() > 0:
        strength = (strength - strength.mean()) / strength.std()
    quantile = (ndtr(strength) * len(catalogue.scores)).astype(np.int64)
    scores = catalogue.scores[np.clip(quantile, 0, len(catalogue.scores) - 1)]

    taken = _assessment_times(rng, owner, size)
    # Real rows come grouped by user in no particular user order, tags sorted within a user.
    user_order = rng.permutation(size)
    order = np.lexsort((catalogue.assessment_order[tags], user_order[owner]))
    return _rows(
        ASSESSMENTS,
        people.handles[owner[order]],
        _labels(tags[order], catalogue.assessment_tags),
        _timestamp_labels(taken, order),
        scores[order].astype(np.int64),
    )


def _assessment_times(rng: np.random.Generator, owner: Ints, size: int) -> Ints:
    """Date assessments: a user's first at a random time, the rest in that session or later."""
    weights = np.array(_ASSESSMENT_MONTH_WEIGHTS, dtype=np.float64)
    months = np.datetime64("2016-07", "M") + np.arange(len(weights) + 1)
    edges = months.astype("datetime64[s]").astype(np.int64)
    edges[0] = _epoch(_ASSESSMENT_WINDOW[0])
    end = _epoch(_ASSESSMENT_WINDOW[1]) + 86_399
    edges[-1] = end
    month = rng.choice(len(weights), size=size, p=weights / weights.sum())
    base = edges[month] + (rng.random(size) * (edges[month + 1] - edges[month])).astype(np.int64)
    gap = np.where(
        rng.random(len(owner)) < 0.75,
        rng.integers(120, 1_800, len(owner)),
        rng.exponential(60 * 86_400, len(owner)).astype(np.int64),
    )
    return _within_window(base[owner], owner, gap, end)


def _within_window(start: Ints, owner: Ints, gap: Ints, end: int) -> Ints:
    """Add each owner's cumulative gaps to start, falling back to short gaps past end."""
    rank = ranks(owner)
    gap[rank == 0] = 0
    at = start + _cumsum_within(owner, gap)
    # Clipping at the end would pile events onto the last second; keep them close instead.
    late = at > end
    at[late] = start[late] + 97 * rank[late]
    return np.asarray(np.minimum(at, end), dtype=np.int64)
