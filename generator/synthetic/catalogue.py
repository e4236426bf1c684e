"""Build the catalogue a synthetic export draws from: courses, tags, authors, levels, topics.

It holds the courses with their tags, authors and levels, the interest and assessment tags, and
the latent topic of each; none of it depends on the users, so it is built once per export. Given a
folder with a real course_tags.csv or user_assessment_scores.csv, their courses, tags and scores
are reused and the real tags are grouped into topics; otherwise a catalogue of the real one's
shape is invented from the built-in themes.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from generator.synthetic.sampling import (
    Floats,
    Ints,
    Sampler,
    Strings,
    draw,
    ranks,
    sampler,
    weighted_subset,
    zipf_within,
)
from generator.synthetic.topics import (
    TOPICS_FROM_REAL_CATALOGUE,
    clustered_topics,
    course_words,
    guess_topic,
    tag_words,
    topic_words,
)
from generator.synthetic.vocabulary import (
    COURSE_NOUNS,
    COURSE_QUALIFIERS,
    INTEREST_SUFFIXES,
    THEMES,
    Theme,
)
from generator.tables import column_names, file_name

log = logging.getLogger(__name__)

# The tables (keys of generator.tables.SCHEMAS) whose real files a catalogue can reuse.
COURSE_TAGS = "course_tags"
ASSESSMENTS = "user_assessment_scores"
COURSE_ID, COURSE_TAG = column_names(COURSE_TAGS)
ASSESSED_USER, ASSESSMENT_TAG, _, SCORE = column_names(ASSESSMENTS)

# Real-looking shape targets (see DATA.md); levels are shares of the real export's view rows.
_LEVEL_SHARES = (0.466, 0.479, 0.055)
_TAGS_PER_COURSE_WEIGHTS = (3032, 1587, 706, 378, 96, 69, 33, 22, 7, 6, 1, 1, 3, 0, 1)
_COURSES = 5942
_DISTINCT_COURSE_TAGS = 998
_UNTAGGED_COURSES = 112
_AUTHORS_PER_COURSE = 1412 / 5942
_INTEREST_VOCABULARY = 748
_INTEREST_COURSE_TAGS = 591
_INTEREST_ASSESSMENT_TAGS = 17
# Learners' interest beside what assessments show, spread over all topics by catalogue size, so
# that topics no assessment tests keep some learners.
_UNASSESSED_INTEREST = 0.07
# An interest tag's weight within its topic grows with its courses, slowly: a topic's followers
# spread over its tags, and the most followed tags are those suggested to everyone (below).
_FOLLOW_EXPONENT = 0.4
# How many tags the platform suggests to everyone, and how slowly interest falls along the list.
_SUGGESTED_TAGS = 15
_SUGGESTION_OFFSET = 20.0


@dataclass(frozen=True)
class Catalogue:
    """Everything that does not depend on the users: courses, vocabularies, topics."""

    course_tag_rows: pd.DataFrame  # the rows of course_tags.csv, in file order
    course_ids: Strings
    course_order: Ints  # rank of each course id in sorted order
    course_author: Ints
    course_level: Ints
    topic_weight: Floats
    courses: Sampler
    interest_tags: Strings
    interests: Sampler
    suggested_topic: int  # the topic of `interests` holding the tags suggested to everyone
    assessment_tags: Strings
    assessment_topic: Ints
    assessment_order: Ints  # rank of each assessment tag in sorted order
    assessments: Sampler
    scores: Floats  # sorted sample of the score distribution


def build_catalogue(rng: np.random.Generator, catalogue_dir: Path | None) -> Catalogue:
    """Build the catalogue, reusing real course and assessment files found in catalogue_dir."""
    real_courses = _read_real(catalogue_dir, COURSE_TAGS)
    real_scores = _read_real(catalogue_dir, ASSESSMENTS)
    if real_courses is None:
        tag_rows, tag_topic, topic_weight = _built_courses(rng)
    else:
        tag_rows = real_courses
        distinct_tags = _named_tags(tag_rows).nunique()
        if distinct_tags < TOPICS_FROM_REAL_CATALOGUE:
            raise ValueError(
                f"{catalogue_dir}/{file_name(COURSE_TAGS)}: {distinct_tags} distinct tags, "
                f"need at least {TOPICS_FROM_REAL_CATALOGUE} to group them into topics"
            )
        tag_topic, topic_weight = clustered_topics(tag_rows[COURSE_ID], tag_rows[COURSE_TAG])
    n_topics = len(topic_weight)
    words = topic_words(tag_rows[COURSE_ID], tag_rows[COURSE_TAG], tag_topic, n_topics)

    if real_scores is None:
        assessment_tags, assessment_count = _built_assessment_tags()
        scores = np.sort(np.clip(np.round(rng.normal(142.5, 55.6, 20_000)), 0, 298))
    else:
        counts = real_scores[ASSESSMENT_TAG].value_counts(sort=False).sort_index()
        assessment_tags = counts.index.to_numpy(dtype=str)
        assessment_count = np.asarray(counts.to_numpy(), dtype=np.float64)
        scores = np.sort(real_scores[SCORE].to_numpy(dtype=np.float64))
    assessment_topic = np.array(
        [guess_topic(rng, tag, tag_words(tag), words, topic_weight) for tag in assessment_tags],
        dtype=np.int64,
    )
    # Learners' interest in a topic shows in the assessments they take; a little more is spread
    # by the size of each topic's catalogue (or audience), so that every topic has learners.
    shown = _interest_shown(
        real_scores, assessment_tags, assessment_topic, assessment_count, n_topics
    )
    topic_weight = _UNASSESSED_INTEREST * topic_weight / topic_weight.sum() + shown / shown.sum()
    topic_weight = topic_weight / topic_weight.sum()

    course_ids, course_topic = _course_topics(rng, tag_rows, tag_topic, words, topic_weight)
    n_courses = len(course_ids)
    course_share = np.bincount(course_topic, minlength=n_topics) / n_courses
    course_weight = zipf_within(rng, course_topic, n_topics, exponent=0.85, offset=5.0)
    course_order = np.empty(n_courses, dtype=np.int64)
    course_order[np.argsort(course_ids, kind="stable")] = np.arange(n_courses)
    # Browsing (the noise in course choice) reaches big-catalogue topics more than interest.
    courses = sampler(course_topic, course_weight, topic_weight + course_share)
    course_level = _levels(rng, topic_weight @ courses.shares[:-1] + courses.shares[-1])
    course_author = _authors(rng, course_topic, n_topics)

    interest_tags, interest_topic, interest_weight = _interest_vocabulary(
        rng, tag_rows, tag_topic, assessment_tags, assessment_topic, assessment_count
    )
    assessment_order = np.empty(len(assessment_tags), dtype=np.int64)
    assessment_order[np.argsort(assessment_tags, kind="stable")] = np.arange(len(assessment_tags))
    interests = _with_suggestions(interest_topic, interest_weight, topic_weight)
    return Catalogue(
        course_tag_rows=tag_rows,
        course_ids=course_ids,
        course_order=course_order,
        course_author=course_author,
        course_level=course_level,
        topic_weight=topic_weight,
        courses=courses,
        interest_tags=interest_tags,
        interests=interests,
        suggested_topic=n_topics,
        assessment_tags=assessment_tags,
        assessment_topic=assessment_topic,
        assessment_order=assessment_order,
        assessments=sampler(assessment_topic, assessment_count, topic_weight),
        scores=scores,
    )


def _levels(rng: np.random.Generator, views: Floats) -> Ints:
    """Give each course a level so that each level gets its real share of the expected views.

    Courses are dealt from the most viewed down, each to a level drawn by how far that level is
    still below its share, so that a few popular courses cannot tip the shares of view rows.
    """
    target = np.array(_LEVEL_SHARES) / sum(_LEVEL_SHARES) * views.sum()
    got = np.zeros(len(target))
    level = np.empty(len(views), dtype=np.int64)
    u = rng.random(len(views))
    for course in np.argsort(-views, kind="stable"):
        short = np.cumsum(np.maximum(target - got, 0.0) + 1e-12)
        pick = min(int(np.searchsorted(short, u[course] * short[-1], side="right")), len(got) - 1)
        level[course] = pick
        got[pick] += views[course]
    return level


def _read_real(catalogue_dir: Path | None, table: str) -> pd.DataFrame | None:
    """Read table `table`'s real file from catalogue_dir as strings, or return None when absent."""
    if catalogue_dir is None:
        return None
    path = catalogue_dir / file_name(table)
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    columns = list(column_names(table))
    missing = set(columns) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    frame = frame[columns]
    if table == ASSESSMENTS:
        scores = pd.to_numeric(frame[SCORE], errors="coerce")
        if scores.isna().any():
            row = int(np.flatnonzero(scores.isna().to_numpy())[0])
            value = frame[SCORE].iloc[row]
            raise ValueError(f"{path}, line {row + 2}, column {SCORE}: {value!r} is not a number")
        frame = frame.assign(**{SCORE: scores})
    log.info("reusing %s rows of %s", len(frame), path)
    return frame


def _interest_shown(
    scores: pd.DataFrame | None, tags: Strings, topic: Ints, count: Floats, n_topics: int
) -> Floats:
    """Split each assessed user's interest evenly over their assessments; sum it per topic.

    Without the real scores, each topic gets the invented counts of its assessments.
    """
    if scores is None:
        return np.asarray(np.bincount(topic, weights=count, minlength=n_topics), dtype=np.float64)
    rows = scores[ASSESSMENT_TAG].map(pd.Series(topic, index=tags)).to_numpy(dtype=np.int64)
    per_user = scores.groupby(ASSESSED_USER)[ASSESSED_USER].transform("size").to_numpy()
    return np.asarray(np.bincount(rows, weights=1.0 / per_user, minlength=n_topics), np.float64)


def _named_tags(tag_rows: pd.DataFrame) -> pd.Series:
    """Return the course tags of the rows that name one (a course without tags has one empty)."""
    tags = tag_rows[COURSE_TAG]
    return tags[tags != ""]


def _built_courses(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, int], Floats]:
    """Invent a course catalogue shaped like the real one from the built-in themes."""
    pools = [_theme_tags(theme) for theme in THEMES]
    seen: set[str] = set()
    for index, pool in enumerate(pools):
        pools[index] = [tag for tag in pool if tag not in seen]
        seen.update(pools[index])
    sizes = _tag_counts(np.array([len(pool) for pool in pools]), _DISTINCT_COURSE_TAGS)
    theme_tags = [pool[:size] for pool, size in zip(pools, sizes, strict=True)]
    tag_topic = {tag: topic for topic, tags in enumerate(theme_tags) for tag in tags}

    catalogue_weight = np.array([theme.catalogue for theme in THEMES])
    course_topic = np.sort(
        rng.choice(len(THEMES), size=_COURSES, p=catalogue_weight / catalogue_weight.sum())
    )
    tag_pmf = np.array(_TAGS_PER_COURSE_WEIGHTS, dtype=np.float64)
    tags_per_course = 1 + rng.choice(len(tag_pmf), size=_COURSES, p=tag_pmf / tag_pmf.sum())
    empty = np.zeros(_COURSES, dtype=bool)
    empty[rng.choice(_COURSES, size=_UNTAGGED_COURSES, replace=False)] = True
    tags_per_course[empty] = 1

    # A fifth of the courses with several tags take one of them from another theme.
    crossed = (tags_per_course > 1) & (rng.random(_COURSES) < 0.2)
    used: set[str] = set()
    ids: list[str] = []
    tags: list[str] = []
    for topic in range(len(THEMES)):
        members = np.flatnonzero(course_topic == topic)
        vocabulary = theme_tags[topic]
        weight = 1.0 / (np.arange(len(vocabulary)) + 1.5) ** 1.5
        slots = int((tags_per_course[members] - crossed[members]).sum())
        # Every tag is used at least once, the rest follow a skewed popularity.
        drawn = rng.choice(
            len(vocabulary), size=max(slots - len(vocabulary), 0), p=weight / weight.sum()
        )
        stream = deque(rng.permutation(np.r_[np.arange(len(vocabulary)), drawn]).tolist())
        for course in members:
            own = _distinct_tags(stream, vocabulary, int(tags_per_course[course] - crossed[course]))
            own = own or [vocabulary[0]]
            if crossed[course]:
                other = theme_tags[int(rng.integers(len(theme_tags)))]
                own = list(dict.fromkeys([*own, other[int(rng.integers(len(other)))]]))
            course_id = _course_id(rng, own[0], used)
            if empty[course]:
                own = [""]
            ids.extend([course_id] * len(own))
            tags.extend(own)
    frame = pd.DataFrame({COURSE_ID: ids, COURSE_TAG: tags})
    frame = frame.sort_values(COURSE_ID, kind="stable", ignore_index=True)
    audience = np.array([theme.audience for theme in THEMES], dtype=np.float64)
    return frame, tag_topic, audience * rng.lognormal(0, 0.2, len(THEMES))


def _distinct_tags(stream: deque[int], vocabulary: list[str], wanted: int) -> list[str]:
    """Take up to wanted distinct tags off the front of stream; put repeats back for the next."""
    own: list[str] = []
    repeats: list[int] = []
    while len(own) < wanted and stream:
        token = stream.popleft()
        if vocabulary[token] in own:
            repeats.append(token)
        else:
            own.append(vocabulary[token])
    stream.extendleft(reversed(repeats))
    return own


def _theme_tags(theme: Theme) -> list[str]:
    """List a theme's candidate course tags, core ones first."""
    core = theme.tags.split()
    stems = theme.stems.split()
    combined = [f"{stem}-{facet}" for facet in theme.facets.split() for stem in stems]
    versions = [f"{stem}-{version}" for version in ("2016", "2014", "2017") for stem in stems]
    return list(dict.fromkeys(core + combined + versions))


def _tag_counts(capacity: Ints, total: int) -> Ints:
    """Split total tags over themes evenly, never beyond a theme's capacity."""
    sizes = np.zeros_like(capacity)
    while sizes.sum() < min(total, int(capacity.sum())):
        open_ = sizes < capacity
        sizes[open_] += 1
        excess = int(sizes.sum()) - total
        if excess > 0:
            sizes[np.flatnonzero(open_)[-excess:]] -= 1
    return sizes


def _course_id(rng: np.random.Generator, tag: str, used: set[str]) -> str:
    """Invent a unique course id about tag, like "aws-system-admin-fundamentals-1234"."""
    subject = tag.replace("c#", "csharp").replace("c++", "cpp").replace("+", "-plus")
    subject = subject.replace(".", "dot").strip("-")
    while True:
        qualify, before, qualifier, noun, numbered = rng.random(5)
        parts = [subject, COURSE_NOUNS[int(noun * len(COURSE_NOUNS))]]
        if qualify < 0.5:
            parts.insert(
                int(before * 2), COURSE_QUALIFIERS[int(qualifier * len(COURSE_QUALIFIERS))]
            )
        if numbered < 0.45:
            parts.append(str(100 + int(numbered / 0.45 * 3500)))
        course_id = "-".join(parts)
        if course_id not in used:
            used.add(course_id)
            return course_id


def _built_assessment_tags() -> tuple[Strings, Floats]:
    """List the built-in assessment tags with how often each is taken."""
    tags: list[str] = []
    counts: list[float] = []
    for theme in THEMES:
        names = [name for name in theme.assessments.split() if name not in tags]
        tags.extend(names)
        # Takers grow faster than the audience: a few themes draw most of them, as c-sharp and
        # javascript (a quarter of the real rows) do.
        counts.extend(theme.audience**2.3 * 10 / (1 + np.arange(len(names))) ** 1.5)
    order = np.argsort(tags)
    return np.array(tags, dtype=str)[order], np.array(counts)[order]


def _course_topics(
    rng: np.random.Generator,
    tag_rows: pd.DataFrame,
    tag_topic: dict[str, int],
    words: dict[str, Floats],
    topic_weight: Floats,
) -> tuple[Strings, Ints]:
    """Give every course the most common topic of its tags, or guess one from its id if untagged."""
    course_ids = np.array(pd.unique(tag_rows[COURSE_ID]), dtype=str)
    topic_of_row = tag_rows[COURSE_TAG].map(tag_topic)
    known = tag_rows.assign(topic=topic_of_row)[topic_of_row.notna()]
    counts = known.groupby([COURSE_ID, "topic"], sort=False).size().reset_index(name="rows")
    # Most common topic per course; ties go to the topic of the course's earliest tag.
    counts = counts.sort_values("rows", ascending=False, kind="stable")
    majority = counts.drop_duplicates(COURSE_ID).set_index(COURSE_ID)["topic"]
    topics = majority.reindex(course_ids).to_numpy(dtype=np.float64, na_value=-1.0).astype(np.int64)
    for index in np.flatnonzero(topics < 0):
        course_id = str(course_ids[index])
        topics[index] = guess_topic(rng, course_id, course_words(course_id), words, topic_weight)
    return course_ids, topics


def _authors(rng: np.random.Generator, course_topic: Ints, n_topics: int) -> Ints:
    """Give every course one author; authors keep to one topic and some write many courses."""
    per_topic = np.bincount(course_topic, minlength=n_topics)
    authors = np.maximum(np.round(per_topic * _AUTHORS_PER_COURSE), per_topic > 0).astype(np.int64)
    author_topic = np.repeat(np.arange(n_topics), authors)
    weight = zipf_within(rng, author_topic, n_topics, exponent=0.8, offset=1.0)
    pick = draw(rng, sampler(author_topic, weight, per_topic.astype(np.float64)), course_topic)
    # Every author has at least one course; the rest go mostly to prolific authors.
    rank = np.empty(len(course_topic), dtype=np.int64)
    rank[np.lexsort((rng.random(len(course_topic)), course_topic))] = ranks(np.sort(course_topic))
    first_author = np.r_[0, np.cumsum(authors)[:-1]]
    own = rank < authors[course_topic]
    pick[own] = first_author[course_topic[own]] + rank[own]
    handles = 1 + rng.permutation(int(len(author_topic) * 1.3))[: len(author_topic)]
    return np.asarray(handles[pick], dtype=np.int64)


def _with_suggestions(topic: Ints, weight: Floats, topic_weight: Floats) -> Sampler:
    """Prepare drawing interest tags, with one more topic: the tags suggested to everyone.

    The suggestions are the tags most likely followed anyway, the likelier first, each suggested
    a little less often than the one before it.
    """
    n_topics = len(topic_weight)
    alone = sampler(topic, weight, topic_weight)
    followed = topic_weight @ alone.shares[:-1]
    suggested = np.argsort(-followed, kind="stable")[:_SUGGESTED_TAGS]
    rank = np.arange(len(suggested))
    return sampler(
        np.r_[topic, np.full(len(suggested), n_topics)],
        np.r_[weight, 1.0 / (rank + _SUGGESTION_OFFSET)],
        np.r_[topic_weight, 0.0],
        item=np.r_[np.arange(len(topic)), suggested],
    )


def _interest_vocabulary(
    rng: np.random.Generator,
    tag_rows: pd.DataFrame,
    tag_topic: dict[str, int],
    assessment_tags: Strings,
    assessment_topic: Ints,
    assessment_count: Floats,
) -> tuple[Strings, Ints, Floats]:
    """Build the interest tags: mostly course tags, a few assessment tags and some of their own."""
    counts = _named_tags(tag_rows).value_counts()
    counts = counts.sort_index()
    course_tags = counts.index.to_numpy(dtype=str)
    followers = np.asarray(counts.to_numpy(), dtype=np.float64)
    chosen = weighted_subset(rng, followers**0.6, _INTEREST_COURSE_TAGS)
    tags = [str(tag) for tag in course_tags[chosen]]
    topics = [tag_topic[tag] for tag in tags]
    weights = list(followers[chosen] ** _FOLLOW_EXPONENT)

    known = set(tags)
    shared = len(known.intersection(assessment_tags))
    outside = ~np.isin(assessment_tags, course_tags)
    picked = np.flatnonzero(outside)[
        weighted_subset(rng, assessment_count[outside], max(_INTEREST_ASSESSMENT_TAGS - shared, 0))
    ]
    typical = float(np.median(weights))
    for index in picked:
        tags.append(str(assessment_tags[index]))
        topics.append(int(assessment_topic[index]))
        weights.append(typical)
        known.add(tags[-1])

    # The remaining interest tags are the platform's own: no course or assessment uses them.
    known.update(course_tags)
    known.update(assessment_tags)
    bases = len(tags)
    while len(tags) < _INTEREST_VOCABULARY:
        base = int(rng.integers(bases))
        suffix = INTEREST_SUFFIXES[int(rng.integers(len(INTEREST_SUFFIXES)))]
        tag = f"{tags[base]}{suffix}" if suffix.isdigit() else f"{tags[base]}-{suffix}"
        if tag not in known:
            tags.append(tag)
            topics.append(topics[base])
            weights.append(weights[base] * 0.3)
            known.add(tag)
    noisy = np.array(weights) * rng.lognormal(0, 0.25, len(weights))
    return np.array(tags, dtype=str), np.array(topics, dtype=np.int64), noisy
