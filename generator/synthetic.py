"""Write a realistic synthetic export of the platform: the four CSV files, for any number of users.

Users are drawn from latent topics (groups of related course tags, interest tags and assessment
tags): every user gets a sparse mixture of one to three topics, and their interests, course views
and assessments are all drawn from that mixture plus some noise, so similar users really exist.
Users are generated and written in fixed-size chunks, each from its own seeded generator, so memory
stays bounded and the same seed always gives byte-identical files.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import ndtr

__all__ = ["synthesize"]

log = logging.getLogger(__name__)

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Strings = NDArray[np.str_]

_INTERESTS_FILE = "user_interests.csv"
_VIEWS_FILE = "user_course_views.csv"
_ASSESSMENTS_FILE = "user_assessment_scores.csv"
_COURSE_TAGS_FILE = "course_tags.csv"

_COLUMNS: dict[str, tuple[str, ...]] = {
    _INTERESTS_FILE: ("user_handle", "interest_tag", "date_followed"),
    _VIEWS_FILE: (
        "user_handle",
        "view_date",
        "course_id",
        "author_handle",
        "level",
        "view_time_seconds",
    ),
    _ASSESSMENTS_FILE: (
        "user_handle",
        "assessment_tag",
        "user_assessment_date",
        "user_assessment_score",
    ),
    _COURSE_TAGS_FILE: ("course_id", "course_tags"),
}

# Chunk size is part of the output's definition (each chunk has its own generator), so changing it
# changes the files a seed produces.
_CHUNK_USERS = 20_000
_TOPICS_FROM_REAL_CATALOGUE = 40
_LEVELS = ("Beginner", "Intermediate", "Advanced")
_LEVEL_SHARES = (0.455, 0.485, 0.06)

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
_TAGS_PER_COURSE_WEIGHTS = (3032, 1587, 706, 378, 96, 69, 33, 22, 7, 6, 1, 1, 3, 0, 1)
_ASSESSMENTS_PER_USER_WEIGHTS = (1734, 561, 329, 177, 133, 70, 41, 29, 15, 12, 4, 4, 2, 2, 1)
_COURSES = 5942
_DISTINCT_COURSE_TAGS = 998
_EMPTY_TAG_SHARE = 112 / 5942
_AUTHORS_PER_COURSE = 1412 / 5942
_INTEREST_VOCABULARY = 748
_INTEREST_COURSE_TAGS = 591
_INTEREST_ASSESSMENT_TAGS = 17
_VIEWER_SHARE = 0.876
_ASSESSED_SHARE = 0.311
_DUPLICATE_INTEREST_SHARE = 0.065
# Each signal is a noisy view of the same latent topics. Following a tag is a deliberate choice, so
# few follows stray from a user's topics; what people watch strays far more (a course a colleague
# shared, required training, whatever is trending). The real export's first user follows ASP.NET
# MVC tags and watched a SharePoint branding course and an AWS administration course.
_STRAY_INTEREST_SHARE = 0.2
_BROWSING_SHARE = 0.4
_STRAY_ASSESSMENT_SHARE = 0.3
_MAX_VIEW_SECONDS = 44_410

_STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "for",
        "in",
        "of",
        "on",
        "to",
        "with",
        "using",
        "from",
        "by",
        "your",
        "you",
        "core",
        "skills",
        "getting",
        "started",
        "introduction",
        "intro",
        "fundamentals",
        "basics",
        "advanced",
        "cc",
        "part",
        "series",
        "volume",
        "course",
    ]
)
# Assessment tags spell some technologies differently from course tags.
_ALIASES = {
    "c-sharp": ("c#", "csharp"),
    "c-plus-plus": ("c++", "cpp"),
    "node-js": ("nodejs", "node"),
    "angular-js": ("angularjs", "angular"),
    "aspnet-mvc-5": ("asp.net-mvc", "aspdotnet", "mvc5"),
    "html5": ("html",),
    "css": ("css3",),
}


class _Theme(NamedTuple):
    """A hand-written topic of the built-in catalogue."""

    audience: float  # how many learners care, relative
    catalogue: float  # how many courses it has, relative
    tags: str  # core course tags
    stems: str  # products that combine with facets into more tags ("maya" + "rigging")
    facets: str
    assessments: str


_THEMES = (
    _Theme(
        audience=2.0,
        catalogue=16.0,
        tags="3d-modeling 3d-rendering 3d-texturing 3d-animation 3d-sculpting 3d-rigging "
        "3d-lighting 3d-dynamics maya 3ds-max zbrush cinema-4d blender modo houdini uv-mapping "
        "mudbox",
        stems="maya 3ds-max zbrush cinema-4d modo blender houdini",
        facets="modeling rendering texturing animation rigging lighting dynamics scripting",
        assessments="maya-core-skills maya-character-modeling "
        "zbrush-core-skills 3ds-max-environment-modeling",
    ),
    _Theme(
        audience=2.0,
        catalogue=4.0,
        tags="game-design game-art game-modeling game-development unity unreal-engine level-design "
        "game-programming cryengine game-audio",
        stems="unity unreal-engine cryengine",
        facets="scripting animation lighting ui physics networking shaders ai terrain",
        assessments="unity-core-skills game-environment-art",
    ),
    _Theme(
        audience=1.0,
        catalogue=7.0,
        tags="compositing creative-pipeline motion-graphics visual-effects nuke after-effects "
        "matchmoving rotoscoping color-grading green-screen",
        stems="after-effects nuke fusion mocha",
        facets="keying tracking expressions particles titles 3d-camera scripting",
        assessments="after-effects-cc nuke-core-skills",
    ),
    _Theme(
        audience=1.0,
        catalogue=4.0,
        tags="illustration digital-painting concept-art drawing character-design matte-painting "
        "comics sketching",
        stems="krita painter sketchbook",
        facets="brushes portraits environments characters perspective",
        assessments="",
    ),
    _Theme(
        audience=2.0,
        catalogue=4.0,
        tags="graphic-design image-editing photoshop illustrator indesign typography logo-design "
        "print-design desktop-publishing branding",
        stems="photoshop illustrator indesign",
        facets="layers masks selections effects workflow retouching vectors color",
        assessments="graphic-design photoshop illustrator-cc indesign-cc-essentials",
    ),
    _Theme(
        audience=0.7,
        catalogue=2.0,
        tags="photography lightroom photo-retouching portrait-photography landscape-photography "
        "camera-raw studio-lighting",
        stems="lightroom camera",
        facets="presets develop catalog exposure composition",
        assessments="",
    ),
    _Theme(
        audience=1.0,
        catalogue=2.5,
        tags="video-editing video-production premiere-pro final-cut-pro audio sound-design "
        "davinci-resolve animation 2d-animation",
        stems="premiere-pro final-cut-pro audition",
        facets="editing audio color titles effects workflow",
        assessments="premiere-pro-cc video-production",
    ),
    _Theme(
        audience=0.8,
        catalogue=5.0,
        tags="part-modeling assembly-modeling parametric-modeling solidworks fusion-360 inventor "
        "surface-modeling fea-simulation 3d-printing sheet-metal product-design",
        stems="solidworks inventor fusion-360 catia",
        facets="drawings assemblies simulation surfacing weldments sketching",
        assessments="solidworks-core-skills fusion-360-core-skills",
    ),
    _Theme(
        audience=0.8,
        catalogue=4.0,
        tags="architecture-modeling bim revit autocad drafting-drawings construction-documentation "
        "structural-design civil-3d sketchup",
        stems="revit autocad civil-3d",
        facets="families annotation detailing collaboration sheets topography",
        assessments="revit-architecture autocad-essentials",
    ),
    _Theme(
        audience=0.5,
        catalogue=2.5,
        tags="visualization-rendering vray keyshot product-visualization "
        "architectural-visualization arnold",
        stems="vray arnold keyshot",
        facets="materials lighting rendering cameras",
        assessments="",
    ),
    _Theme(
        audience=2.5,
        catalogue=3.0,
        tags="network-infrastructure networking routing switching routing-switching tcpip "
        "wireless-networking network-security ccna ccnp network-fundamentals",
        stems="cisco juniper",
        facets="routing switching security wireless troubleshooting voice ipv6 monitoring",
        assessments="networking-essentials cisco-routing-and-switching",
    ),
    _Theme(
        audience=3.0,
        catalogue=3.0,
        tags="server-infrastructure virtualization windows-server hyper-v vmware active-directory "
        "group-policy exchange-server storage messaging-collaboration",
        stems="windows-server vmware exchange hyper-v",
        facets="administration deployment storage networking clustering backup",
        assessments="active-directory-administration group-policy-administration "
        "windows-server-management",
    ),
    _Theme(
        audience=2.0,
        catalogue=2.5,
        tags="endpoint-management operating-systems sccm windows-10 mobile-device-management "
        "it-fundamentals hardware comptia-a+ help-desk",
        stems="sccm windows-10 intune",
        facets="deployment configuration troubleshooting imaging",
        assessments="",
    ),
    _Theme(
        audience=2.5,
        catalogue=2.0,
        tags="linux bash shell-scripting red-hat ubuntu system-administration comptia-linux+",
        stems="linux red-hat ubuntu",
        facets="administration networking security storage kernel",
        assessments="linux-system-administration",
    ),
    _Theme(
        audience=4.0,
        catalogue=2.5,
        tags="cloud-computing aws cloud-architecture cloud-services cloud-infrastructure",
        stems="aws",
        facets="lambda s3 ec2 dynamodb cloudformation iam vpc rds networking security "
        "developer-tools big-data",
        assessments="aws-solutions-architect",
    ),
    _Theme(
        audience=3.5,
        catalogue=2.5,
        tags="microsoft-azure azure azure-functions azure-storage paas",
        stems="azure",
        facets="app-service active-directory networking devops sql virtual-machines "
        "service-fabric monitoring",
        assessments="azure-administrator azure-for-developers azure-infrastructure-as-a-service",
    ),
    _Theme(
        audience=3.5,
        catalogue=2.5,
        tags="devops docker kubernetes continuous-integration continuous-delivery "
        "configuration-management automation ansible puppet chef jenkins",
        stems="docker kubernetes ansible",
        facets="networking security deployment monitoring orchestration",
        assessments="docker",
    ),
    _Theme(
        audience=2.5,
        catalogue=1.0,
        tags="powershell scripting desired-state-configuration",
        stems="powershell",
        facets="remoting modules scripting automation workflows",
        assessments="powershell",
    ),
    _Theme(
        audience=4.0,
        catalogue=3.5,
        tags="information-security penetration-testing ethical-hacking security secure-coding "
        "digital-forensics incident-response risk-management cissp malware-analysis",
        stems="cissp comptia-security+",
        facets="cryptography access-control risk network-security",
        assessments="security-for-hackers-and-developers",
    ),
    _Theme(
        audience=7.0,
        catalogue=2.5,
        tags="javascript javascript-libraries javascript-frameworks es6 jquery typescript async "
        "spa coffeescript",
        stems="javascript typescript",
        facets="testing patterns performance debugging modules",
        assessments="javascript jquery typescript-development",
    ),
    _Theme(
        audience=4.0,
        catalogue=1.5,
        tags="angular angularjs rxjs ngrx",
        stems="angular",
        facets="forms routing testing components",
        assessments="angular angular-js",
    ),
    _Theme(
        audience=3.5,
        catalogue=1.5,
        tags="react react.js redux react-native jsx flux",
        stems="react",
        facets="hooks testing routing",
        assessments="react",
    ),
    _Theme(
        audience=3.5,
        catalogue=1.5,
        tags="nodejs express.js npm mongodb rest api-design",
        stems="nodejs",
        facets="testing security streams",
        assessments="node-js",
    ),
    _Theme(
        audience=4.0,
        catalogue=2.5,
        tags="html5 css css3 html sass less responsive-design bootstrap web-design "
        "front-end-web-development",
        stems="css html5",
        facets="layout animation grid flexbox",
        assessments="html5 css",
    ),
    _Theme(
        audience=6.0,
        catalogue=3.0,
        tags="c# .net linq clr .net-core wpf windows-forms entity-framework",
        stems="c# .net",
        facets="async generics collections testing debugging",
        assessments="c-sharp",
    ),
    _Theme(
        audience=4.0,
        catalogue=2.5,
        tags="asp.net asp.net-mvc asp.net-core mvc mvc3 mvc4 mvc5 web-api signalr razor",
        stems="asp.net",
        facets="security testing deployment",
        assessments="aspnet-mvc-5",
    ),
    _Theme(
        audience=4.0,
        catalogue=2.5,
        tags="java java-ee spring hibernate jvm maven gradle concurrency servlets",
        stems="java spring",
        facets="testing collections streams security",
        assessments="java",
    ),
    _Theme(
        audience=4.5,
        catalogue=2.0,
        tags="python django flask numpy pandas python-3 scripting-languages",
        stems="python django",
        facets="testing web data automation",
        assessments="python",
    ),
    _Theme(
        audience=2.5,
        catalogue=1.5,
        tags="c++ cpp stl boost memory-management embedded-systems",
        stems="c++",
        facets="templates concurrency",
        assessments="c-plus-plus",
    ),
    _Theme(
        audience=3.5,
        catalogue=3.0,
        tags="sql sql-server t-sql database-administration database-design mysql postgresql "
        "oracle-database nosql",
        stems="sql-server oracle",
        facets="performance querying security backup",
        assessments="mysql t-sql-querying",
    ),
    _Theme(
        audience=3.0,
        catalogue=2.0,
        tags="data-science machine-learning data-analysis big-data hadoop spark r statistics "
        "data-visualization",
        stems="spark hadoop",
        facets="streaming sql analytics",
        assessments="",
    ),
    _Theme(
        audience=2.0,
        catalogue=2.0,
        tags="business-intelligence power-bi ssrs ssis data-warehousing reporting tableau",
        stems="power-bi tableau",
        facets="dashboards modeling",
        assessments="",
    ),
    _Theme(
        audience=3.0,
        catalogue=2.5,
        tags="android ios swift objective-c xamarin mobile-application-development kotlin xcode",
        stems="android ios xamarin",
        facets="ui testing networking",
        assessments="android ios-development-with-swift",
    ),
    _Theme(
        audience=2.0,
        catalogue=2.5,
        tags="productivity-apps microsoft-office excel word powerpoint outlook office-365 "
        "sharepoint",
        stems="excel sharepoint office-365",
        facets="formulas administration collaboration",
        assessments="using-microsoft-office-2016 sharepoint",
    ),
    _Theme(
        audience=2.5,
        catalogue=2.0,
        tags="project-management agile scrum kanban soft-skills leadership communication careers",
        stems="agile scrum",
        facets="planning estimation coaching",
        assessments="the-scrum-framework",
    ),
    _Theme(
        audience=2.0,
        catalogue=1.5,
        tags="unit-testing test-driven-development tdd automated-testing selenium testing "
        "developer-tools",
        stems="selenium",
        facets="webdriver grid",
        assessments="",
    ),
    _Theme(
        audience=2.5,
        catalogue=1.5,
        tags="design-patterns object-oriented-design domain-driven-design refactoring clean-code "
        "software-architecture microservices",
        stems="microservices",
        facets="patterns messaging",
        assessments="",
    ),
    _Theme(
        audience=1.5,
        catalogue=1.5,
        tags="ruby ruby-on-rails php wordpress laravel cms drupal",
        stems="wordpress php",
        facets="themes plugins security",
        assessments="ruby-programming php-development",
    ),
    _Theme(
        audience=1.0,
        catalogue=1.0,
        tags="functional-programming f# haskell scala clojure elixir erlang",
        stems="scala",
        facets="akka",
        assessments="",
    ),
    _Theme(
        audience=1.0,
        catalogue=1.0,
        tags="golang rust system-programming concurrency-patterns",
        stems="golang rust",
        facets="concurrency testing",
        assessments="",
    ),
)

_COURSE_NOUNS = (
    "fundamentals",
    "getting-started",
    "introduction",
    "in-depth",
    "best-practices",
    "deep-dive",
    "essentials",
    "for-beginners",
    "tips-tricks",
    "workflow",
    "projects",
    "patterns",
    "troubleshooting",
    "administration",
    "playbook",
    "quick-start",
    "mastering",
    "big-picture",
)
_COURSE_QUALIFIERS = (
    "building",
    "advanced",
    "practical",
    "enterprise",
    "modern",
    "secure",
    "real-world",
    "scalable",
    "system-admin",
    "web",
    "team",
    "production",
)
_INTEREST_SUFFIXES = ("fundamentals", "basics", "advanced", "tips", "2", "core", "tools", "design")


@dataclass(frozen=True)
class _Sampler:
    """Draws items either within a topic or from everything, by weight."""

    items: Ints  # item indices ordered by topic
    bounds: Ints  # (topics + 1,) segment starts into items; empty segments fall back to global
    shifted: Floats  # topic index + within-topic cumulative share, increasing
    overall: Floats  # cumulative global weight, in the order of items
    shares: Floats  # (topics + 1, n_items) item probabilities within each topic, then globally


@dataclass(frozen=True)
class _Catalogue:
    """Everything that does not depend on the users: courses, vocabularies, topics."""

    course_tag_rows: pd.DataFrame  # the rows of course_tags.csv, in file order
    course_ids: Strings
    course_order: Ints  # rank of each course id in sorted order
    course_author: Ints
    course_level: Ints
    topic_weight: Floats
    courses: _Sampler
    interest_tags: Strings
    interests: _Sampler
    assessment_tags: Strings
    assessment_topic: Ints
    assessment_order: Ints  # rank of each assessment tag in sorted order
    assessments: _Sampler
    scores: Floats  # sorted sample of the score distribution


@dataclass(frozen=True)
class _Users:
    """The latent side of one chunk of users: their topic mixtures and when they joined."""

    handles: Ints
    topics: Ints  # (users, 3)
    mixture: Floats  # (users, 3) cumulative topic weights, last column 1
    main: Ints
    joined: Ints  # seconds since the Unix epoch of the first follow


def synthesize(
    users: int,
    out_dir: Path,
    seed: int = 0,
    catalogue_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write the four export files for users 1..users into out_dir and return rows per file."""
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}")
    out_dir.mkdir(parents=True, exist_ok=True)
    catalogue = _catalogue(np.random.default_rng([seed, 0]), catalogue_dir)
    rows = dict.fromkeys(_COLUMNS, 0)
    with ExitStack() as stack:
        files = {
            name: stack.enter_context((out_dir / name).open("w", encoding="utf-8", newline=""))
            for name in _COLUMNS
        }
        for name, file in files.items():
            file.write(",".join(f'"{column}"' for column in _COLUMNS[name]) + "\n")
        rows[_COURSE_TAGS_FILE] = _write(files[_COURSE_TAGS_FILE], catalogue.course_tag_rows)
        for chunk, first in enumerate(range(1, users + 1, _CHUNK_USERS)):
            size = min(_CHUNK_USERS, users + 1 - first)
            rng = np.random.default_rng([seed, 1, chunk])
            people = _users(rng, catalogue, first, size)
            frames = {
                _INTERESTS_FILE: _interests(rng, catalogue, people),
                _VIEWS_FILE: _views(rng, catalogue, people),
                _ASSESSMENTS_FILE: _assessments(rng, catalogue, people),
            }
            for name, frame in frames.items():
                rows[name] += _write(files[name], frame)
            # Release this chunk before the next one is drawn, so memory stays one chunk's worth.
            del frames
            if progress is not None:
                progress(first + size - 1)
    log.info("wrote %s users to %s: %s", users, out_dir, rows)
    return rows


def _write(file: IO[str], frame: pd.DataFrame) -> int:
    """Append frame to an open CSV file in the export's quoting and return its row count."""
    frame.to_csv(file, header=False, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    return len(frame)


# --- catalogue --------------------------------------------------------------------------------


def _catalogue(rng: np.random.Generator, catalogue_dir: Path | None) -> _Catalogue:
    """Build the catalogue, reusing real course and assessment files found in catalogue_dir."""
    real_courses = _read_real(catalogue_dir, _COURSE_TAGS_FILE)
    real_scores = _read_real(catalogue_dir, _ASSESSMENTS_FILE)
    if real_courses is None:
        tag_rows, tag_topic, topic_weight = _built_courses(rng)
    else:
        tag_rows = real_courses
        distinct_tags = tag_rows.loc[tag_rows["course_tags"] != "", "course_tags"].nunique()
        if distinct_tags < _TOPICS_FROM_REAL_CATALOGUE:
            raise ValueError(
                f"{catalogue_dir}/{_COURSE_TAGS_FILE}: {distinct_tags} distinct tags, "
                f"need at least {_TOPICS_FROM_REAL_CATALOGUE} to group them into topics"
            )
        tag_topic, topic_weight = _clustered_topics(tag_rows)
    n_topics = len(topic_weight)
    words = _topic_words(tag_rows, tag_topic, n_topics)

    if real_scores is None:
        assessment_tags, assessment_count = _built_assessment_tags(rng)
        scores = np.sort(np.clip(np.round(rng.normal(142.5, 55.6, 20_000)), 0, 298))
    else:
        counts = real_scores["assessment_tag"].value_counts(sort=False).sort_index()
        assessment_tags = counts.index.to_numpy(dtype=str)
        assessment_count = np.asarray(counts.to_numpy(), dtype=np.float64)
        scores = np.sort(real_scores["user_assessment_score"].to_numpy(dtype=np.float64))
    assessment_topic = np.array(
        [_guess_topic(rng, tag, _tag_words(tag), words, topic_weight) for tag in assessment_tags],
        dtype=np.int64,
    )
    if real_courses is not None:
        # Learners' interest in a topic shows in how often its assessments are taken.
        taken = np.bincount(assessment_topic, weights=assessment_count, minlength=n_topics)
        topic_weight = topic_weight**0.2 * (0.1 + taken / taken.sum())
        topic_weight = topic_weight * rng.lognormal(0, 0.3, n_topics)
    topic_weight = topic_weight / topic_weight.sum()

    course_ids, course_topic = _course_topics(rng, tag_rows, tag_topic, words, topic_weight)
    n_courses = len(course_ids)
    course_share = np.bincount(course_topic, minlength=n_topics) / n_courses
    course_weight = _zipf_within(rng, course_topic, n_topics, exponent=0.85, offset=5.0)
    course_order = np.empty(n_courses, dtype=np.int64)
    course_order[np.argsort(course_ids, kind="stable")] = np.arange(n_courses)
    course_level = rng.choice(len(_LEVELS), size=n_courses, p=_LEVEL_SHARES).astype(np.int64)
    course_author = _authors(rng, course_topic, n_topics)

    interest_tags, interest_topic, interest_weight = _interest_vocabulary(
        rng, tag_rows, tag_topic, assessment_tags, assessment_topic, assessment_count
    )
    assessment_order = np.empty(len(assessment_tags), dtype=np.int64)
    assessment_order[np.argsort(assessment_tags, kind="stable")] = np.arange(len(assessment_tags))
    return _Catalogue(
        course_tag_rows=tag_rows,
        course_ids=course_ids,
        course_order=course_order,
        course_author=course_author,
        course_level=course_level,
        topic_weight=topic_weight,
        # Browsing (the noise in course choice) reaches big-catalogue topics more than interest.
        courses=_sampler(course_topic, course_weight, topic_weight + course_share),
        interest_tags=interest_tags,
        interests=_sampler(interest_topic, interest_weight, topic_weight),
        assessment_tags=assessment_tags,
        assessment_topic=assessment_topic,
        assessment_order=assessment_order,
        assessments=_sampler(assessment_topic, assessment_count, topic_weight),
        scores=scores,
    )


def _read_real(catalogue_dir: Path | None, name: str) -> pd.DataFrame | None:
    """Read one real export file from catalogue_dir as strings, or return None when absent."""
    if catalogue_dir is None or not (catalogue_dir / name).is_file():
        return None
    frame = pd.read_csv(catalogue_dir / name, dtype=str, keep_default_na=False)
    missing = set(_COLUMNS[name]) - set(frame.columns)
    if missing:
        raise ValueError(f"{catalogue_dir / name}: missing columns {sorted(missing)}")
    frame = frame[list(_COLUMNS[name])]
    if name == _ASSESSMENTS_FILE:
        scores = pd.to_numeric(frame["user_assessment_score"], errors="coerce")
        if scores.isna().any():
            row = int(np.flatnonzero(scores.isna().to_numpy())[0])
            value = frame["user_assessment_score"].iloc[row]
            raise ValueError(
                f"{catalogue_dir / name}, line {row + 2}, column user_assessment_score: "
                f"{value!r} is not a number"
            )
        frame = frame.assign(user_assessment_score=scores)
    log.info("reusing %s rows of %s", len(frame), catalogue_dir / name)
    return frame


def _built_courses(rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, int], Floats]:
    """Invent a course catalogue shaped like the real one from the built-in themes."""
    pools = [_theme_tags(theme) for theme in _THEMES]
    seen: set[str] = set()
    for index, pool in enumerate(pools):
        pools[index] = [tag for tag in pool if tag not in seen]
        seen.update(pools[index])
    sizes = _tag_counts(np.array([len(pool) for pool in pools]), _DISTINCT_COURSE_TAGS)
    theme_tags = [pool[:size] for pool, size in zip(pools, sizes, strict=True)]
    tag_topic = {tag: topic for topic, tags in enumerate(theme_tags) for tag in tags}

    catalogue_weight = np.array([theme.catalogue for theme in _THEMES])
    course_topic = np.sort(
        rng.choice(len(_THEMES), size=_COURSES, p=catalogue_weight / catalogue_weight.sum())
    )
    tag_pmf = np.array(_TAGS_PER_COURSE_WEIGHTS, dtype=np.float64)
    tags_per_course = 1 + rng.choice(len(tag_pmf), size=_COURSES, p=tag_pmf / tag_pmf.sum())
    empty = rng.random(_COURSES) < _EMPTY_TAG_SHARE
    tags_per_course[empty] = 1

    used: set[str] = set()
    ids: list[str] = []
    tags: list[str] = []
    for topic in range(len(_THEMES)):
        members = np.flatnonzero(course_topic == topic)
        vocabulary = theme_tags[topic]
        weight = 1.0 / (np.arange(len(vocabulary)) + 1.5) ** 1.3
        slots = int(tags_per_course[members].sum())
        # Every tag is used at least once, the rest follow a skewed popularity.
        drawn = rng.choice(
            len(vocabulary), size=max(slots - len(vocabulary), 0), p=weight / weight.sum()
        )
        shuffled = rng.permutation(np.concatenate([np.arange(len(vocabulary)), drawn]))
        cursor = 0
        for course in members:
            picks = shuffled[cursor : cursor + tags_per_course[course]]
            cursor += int(tags_per_course[course])
            own = list(dict.fromkeys(vocabulary[i] for i in picks)) or [vocabulary[0]]
            if rng.random() < 0.2:
                other = theme_tags[int(rng.integers(len(theme_tags)))]
                own.append(other[int(rng.integers(len(other)))])
                own = list(dict.fromkeys(own))
            course_id = _course_id(rng, own[0], used)
            if empty[course]:
                own = [""]
            ids.extend([course_id] * len(own))
            tags.extend(own)
    frame = pd.DataFrame({"course_id": ids, "course_tags": tags})
    frame = frame.sort_values("course_id", kind="stable", ignore_index=True)
    audience = np.array([theme.audience for theme in _THEMES], dtype=np.float64)
    return frame, tag_topic, audience * rng.lognormal(0, 0.2, len(_THEMES))


def _theme_tags(theme: _Theme) -> list[str]:
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
        parts = [subject, _COURSE_NOUNS[int(noun * len(_COURSE_NOUNS))]]
        if qualify < 0.5:
            parts.insert(
                int(before * 2), _COURSE_QUALIFIERS[int(qualifier * len(_COURSE_QUALIFIERS))]
            )
        if numbered < 0.45:
            parts.append(str(100 + int(numbered / 0.45 * 3500)))
        course_id = "-".join(parts)
        if course_id not in used:
            used.add(course_id)
            return course_id


def _built_assessment_tags(rng: np.random.Generator) -> tuple[Strings, Floats]:
    """List the built-in assessment tags with how often each is taken."""
    tags: list[str] = []
    counts: list[float] = []
    for theme in _THEMES:
        names = [name for name in theme.assessments.split() if name not in tags]
        tags.extend(names)
        counts.extend(theme.audience**2 * 10 / (1 + np.arange(len(names))) ** 1.5)
    order = np.argsort(tags)
    noisy = np.array(counts) * rng.lognormal(0, 0.3, len(counts))
    return np.array(tags, dtype=str)[order], noisy[order]


def _clustered_topics(tag_rows: pd.DataFrame) -> tuple[dict[str, int], Floats]:
    """Group a real catalogue's tags into topics by the words of their courses and co-tags."""
    # Imported here: scikit-learn is slow to import and only needed with a real catalogue.
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    tagged = tag_rows[tag_rows["course_tags"] != ""]
    documents: dict[str, list[str]] = {}
    for course_id, tag in zip(tagged["course_id"], tagged["course_tags"], strict=True):
        documents.setdefault(tag, []).extend(_course_words(course_id))
    for co_tags in tagged.groupby("course_id", sort=True)["course_tags"].agg(list):
        for tag in co_tags:
            documents[tag].extend(f"tag:{other}" for other in co_tags)
    tags = sorted(documents)
    vectorizer = TfidfVectorizer(analyzer=_identity, sublinear_tf=True, min_df=2)
    matrix = vectorizer.fit_transform([documents[tag] + [f"tag:{tag}"] * 3 for tag in tags])
    components = min(60, matrix.shape[1] - 1, len(tags) - 1)
    embedded = normalize(TruncatedSVD(components, random_state=0).fit_transform(matrix))
    n_topics = min(_TOPICS_FROM_REAL_CATALOGUE, len(tags))
    labels = KMeans(n_topics, n_init=4, random_state=0).fit_predict(embedded)
    tag_topic = {tag: int(label) for tag, label in zip(tags, labels, strict=True)}
    rows = tagged["course_tags"].map(tag_topic).to_numpy(dtype=np.int64)
    return tag_topic, np.bincount(rows, minlength=n_topics).astype(np.float64) + 1.0


def _identity(document: list[str]) -> list[str]:
    """Return a pre-tokenised document unchanged."""
    return document


def _course_words(course_id: str) -> list[str]:
    """Split a course id into its meaningful words, dropping numbers and filler."""
    return [w for w in course_id.lower().split("-") if len(w) > 1 and not w.isdigit()]


def _tag_words(tag: str) -> list[str]:
    """Split a tag into words, adding the other spellings of known technologies."""
    words = [tag, *(w for w in tag.lower().split("-") if w not in _STOP_WORDS and not w.isdigit())]
    return words + list(_ALIASES.get(tag, ()))


def _topic_words(
    tag_rows: pd.DataFrame, tag_topic: dict[str, int], n_topics: int
) -> dict[str, Floats]:
    """Count, for every word of tags and course ids, how often it occurs in each topic."""
    words: list[str] = []
    topics: list[int] = []
    tagged = tag_rows[tag_rows["course_tags"] != ""]
    for course_id, tag in zip(tagged["course_id"], tagged["course_tags"], strict=True):
        found = [
            w for w in [tag, *tag.split("-"), *_course_words(course_id)] if w not in _STOP_WORDS
        ]
        words.extend(found)
        topics.extend([tag_topic[tag]] * len(found))
    codes, vocabulary = pd.factorize(pd.Series(words, dtype=object))
    counts = np.zeros((len(vocabulary), n_topics))
    np.add.at(counts, (codes, np.array(topics, dtype=np.int64)), 1.0)
    return {str(word): counts[index] for index, word in enumerate(vocabulary)}


def _guess_topic(
    rng: np.random.Generator,
    name: str,
    words: Sequence[str],
    topic_words: dict[str, Floats],
    topic_weight: Floats,
) -> int:
    """Pick the topic whose tags and courses use the given words most, or a random one."""
    score = np.zeros(len(topic_weight))
    for word in dict.fromkeys(words):
        if word in topic_words:
            seen = topic_words[word]
            score += (3.0 if word == name else 1.0) * seen / seen.sum()
    if score.max() > 0:
        return int(np.argmax(score))
    return int(rng.choice(len(topic_weight), p=topic_weight / topic_weight.sum()))


def _course_topics(
    rng: np.random.Generator,
    tag_rows: pd.DataFrame,
    tag_topic: dict[str, int],
    words: dict[str, Floats],
    topic_weight: Floats,
) -> tuple[Strings, Ints]:
    """Give every course the most common topic of its tags, or guess one from its id if untagged."""
    course_ids = np.array(pd.unique(tag_rows["course_id"]), dtype=str)
    topic_of_row = tag_rows["course_tags"].map(tag_topic)
    known = tag_rows.assign(topic=topic_of_row)[topic_of_row.notna()]
    counts = known.groupby(["course_id", "topic"], sort=False).size().reset_index(name="rows")
    # Most common topic per course; ties go to the topic of the course's earliest tag.
    counts = counts.sort_values("rows", ascending=False, kind="stable")
    majority = counts.drop_duplicates("course_id").set_index("course_id")["topic"]
    topics = majority.reindex(course_ids).to_numpy(dtype=np.float64, na_value=-1.0).astype(np.int64)
    for index in np.flatnonzero(topics < 0):
        course_id = str(course_ids[index])
        topics[index] = _guess_topic(rng, course_id, _course_words(course_id), words, topic_weight)
    return course_ids, topics


def _zipf_within(
    rng: np.random.Generator, topic: Ints, n_topics: int, exponent: float, offset: float
) -> Floats:
    """Weight items by a Zipf law over a random ranking within each topic."""
    order = np.lexsort((rng.random(len(topic)), topic))
    starts = np.searchsorted(topic[order], np.arange(n_topics))
    rank = np.empty(len(topic), dtype=np.int64)
    rank[order] = np.arange(len(topic)) - starts[topic[order]]
    return np.asarray(1.0 / (rank + offset) ** exponent, dtype=np.float64)


def _authors(rng: np.random.Generator, course_topic: Ints, n_topics: int) -> Ints:
    """Give every course one author; authors keep to one topic and some write many courses."""
    per_topic = np.bincount(course_topic, minlength=n_topics)
    authors = np.maximum(np.round(per_topic * _AUTHORS_PER_COURSE), per_topic > 0).astype(np.int64)
    author_topic = np.repeat(np.arange(n_topics), authors)
    weight = _zipf_within(rng, author_topic, n_topics, exponent=0.8, offset=1.0)
    pick = _draw(rng, _sampler(author_topic, weight, per_topic.astype(np.float64)), course_topic)
    # Every author has at least one course; the rest go mostly to prolific authors.
    rank = np.empty(len(course_topic), dtype=np.int64)
    rank[np.lexsort((rng.random(len(course_topic)), course_topic))] = _ranks(np.sort(course_topic))
    first_author = np.r_[0, np.cumsum(authors)[:-1]]
    own = rank < authors[course_topic]
    pick[own] = first_author[course_topic[own]] + rank[own]
    handles = 1 + rng.permutation(int(len(author_topic) * 1.3))[: len(author_topic)]
    return np.asarray(handles[pick], dtype=np.int64)


def _interest_vocabulary(
    rng: np.random.Generator,
    tag_rows: pd.DataFrame,
    tag_topic: dict[str, int],
    assessment_tags: Strings,
    assessment_topic: Ints,
    assessment_count: Floats,
) -> tuple[Strings, Ints, Floats]:
    """Build the interest tags: mostly course tags, a few assessment tags and some of their own."""
    counts = tag_rows.loc[tag_rows["course_tags"] != "", "course_tags"].value_counts()
    counts = counts.sort_index()
    course_tags = counts.index.to_numpy(dtype=str)
    followers = np.asarray(counts.to_numpy(), dtype=np.float64)
    chosen = _weighted_subset(rng, followers**0.6, _INTEREST_COURSE_TAGS)
    tags = [str(tag) for tag in course_tags[chosen]]
    topics = [tag_topic[tag] for tag in tags]
    weights = list(followers[chosen] ** 0.7)

    known = set(tags)
    shared = len(known.intersection(assessment_tags))
    outside = ~np.isin(assessment_tags, course_tags)
    picked = np.flatnonzero(outside)[
        _weighted_subset(rng, assessment_count[outside], max(_INTEREST_ASSESSMENT_TAGS - shared, 0))
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
        suffix = _INTEREST_SUFFIXES[int(rng.integers(len(_INTEREST_SUFFIXES)))]
        tag = f"{tags[base]}{suffix}" if suffix.isdigit() else f"{tags[base]}-{suffix}"
        if tag not in known:
            tags.append(tag)
            topics.append(topics[base])
            weights.append(weights[base] * 0.3)
            known.add(tag)
    noisy = np.array(weights) * rng.lognormal(0, 0.5, len(weights))
    return np.array(tags, dtype=str), np.array(topics, dtype=np.int64), noisy


def _weighted_subset(rng: np.random.Generator, weight: Floats, size: int) -> Ints:
    """Pick up to size distinct indices, each more likely the heavier it is."""
    keys = np.log(np.maximum(weight, 1e-12)) + rng.gumbel(size=len(weight))
    return np.sort(np.argsort(-keys, kind="stable")[:size]).astype(np.int64)


def _sampler(topic: Ints, weight: Floats, topic_weight: Floats) -> _Sampler:
    """Prepare drawing items by weight within a topic, or globally with topics weighted as given."""
    n_topics = len(topic_weight)
    order = np.argsort(topic, kind="stable")
    sorted_topic = topic[order]
    sorted_weight = np.asarray(weight, dtype=np.float64)[order]
    bounds = np.searchsorted(sorted_topic, np.arange(n_topics + 1)).astype(np.int64)
    total = np.bincount(sorted_topic, weights=sorted_weight, minlength=n_topics)
    within = np.zeros(len(order))
    for t in np.flatnonzero(total > 0):
        segment = slice(bounds[t], bounds[t + 1])
        share = np.cumsum(sorted_weight[segment]) / total[t]
        share[-1] = 1.0
        within[segment] = share
    shifted = sorted_topic + within
    safe_total = np.where(total > 0, total, 1.0)
    overall_weight = sorted_weight * (topic_weight / safe_total)[sorted_topic]
    shares = np.zeros((n_topics + 1, len(order)))
    shares[-1, order] = overall_weight / overall_weight.sum()
    shares[sorted_topic, order] = sorted_weight / safe_total[sorted_topic]
    shares[:-1][total <= 0] = shares[-1]
    return _Sampler(order.astype(np.int64), bounds, shifted, np.cumsum(overall_weight), shares)


def _draw(rng: np.random.Generator, sampler: _Sampler, topics: Ints) -> Ints:
    """Draw one item per entry of topics (-1, or a topic without items, draws globally)."""
    n_topics = len(sampler.bounds) - 1
    safe = np.clip(topics, 0, n_topics - 1)
    start = sampler.bounds[safe]
    end = sampler.bounds[safe + 1]
    local = (topics >= 0) & (end > start) & (sampler.shifted[np.maximum(end - 1, 0)] > safe)
    u = rng.random(len(topics))
    position = np.empty(len(topics), dtype=np.int64)
    position[local] = np.searchsorted(sampler.shifted, safe[local] + u[local], side="right")
    position[local] = np.minimum(position[local], end[local] - 1)
    glob = ~local
    position[glob] = np.searchsorted(sampler.overall, u[glob] * sampler.overall[-1], side="right")
    position[glob] = np.minimum(position[glob], len(sampler.items) - 1)
    return sampler.items[position]


# --- users ------------------------------------------------------------------------------------


def _users(rng: np.random.Generator, catalogue: _Catalogue, first: int, size: int) -> _Users:
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


def _mixed_topics(rng: np.random.Generator, people: _Users, owner: Ints, noise: float) -> Ints:
    """Pick a topic for each draw from its owner's mixture, or -1 (anything) with prob noise."""
    u = rng.random(len(owner))
    slot = (u[:, None] >= people.mixture[owner]).sum(axis=1)
    topics = people.topics[owner, np.minimum(slot, 2)]
    return np.where(rng.random(len(owner)) < noise, -1, topics)


def _distinct(
    rng: np.random.Generator,
    sampler: _Sampler,
    people: _Users,
    wanted: Ints,
    noise: float,
    exact_above: int = 30,
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
    items = _draw(rng, sampler, _mixed_topics(rng, people, owner, noise))
    keep = _first_distinct(owner, items, n_items, light)
    owners, picks = [owner[keep]], [items[keep]]
    heavy_users = np.flatnonzero(heavy)
    for batch in np.array_split(heavy_users, max(1, -(-len(heavy_users) // 256))):
        share = np.diff(people.mixture[batch], axis=1, prepend=0.0)
        weight = noise * sampler.shares[-1] + (1 - noise) * sum(
            share[:, slot, None] * sampler.shares[people.topics[batch, slot]] for slot in range(3)
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
    rank = _ranks(owner[keep])
    return np.asarray(keep[rank < limit[owner[keep]]], dtype=np.int64)


def _ranks(groups: Ints) -> Ints:
    """Number the entries of each run of equal, sorted group values 0, 1, 2, ..."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, lengths)


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


def _interests(rng: np.random.Generator, catalogue: _Catalogue, people: _Users) -> pd.DataFrame:
    """Draw each user's followed tags, saved in one or more growing batches, with some repeats."""
    size = len(people.handles)
    wanted = np.where(
        rng.random(size) < 0.12,
        1,
        np.clip(np.round(rng.lognormal(2.6, 1.0, size)), 2, 500),
    ).astype(np.int64)
    owner, tags = _distinct(rng, catalogue.interests, people, wanted, noise=_STRAY_INTEREST_SHARE)
    distinct = np.bincount(owner, minlength=size)
    list_start = np.r_[0, np.cumsum(distinct)[:-1]]

    # Some users save their tag list several times, each save a superset of the previous one.
    # Users with many tags re-save their list more often (seen in the real per-save counts).
    saves = 1 + rng.poisson(0.005 + 0.012 * distinct)
    save_owner = np.repeat(np.arange(size), saves)
    save_rank = _ranks(save_owner)
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
    row_tag = tags[list_start[save_owner[row_save]] + _ranks(row_save)]
    repeat = 1 + (rng.random(len(row_save)) < _DUPLICATE_INTEREST_SHARE)
    row_save, row_tag = np.repeat(row_save, repeat), np.repeat(row_tag, repeat)
    return pd.DataFrame(
        {
            "user_handle": people.handles[save_owner[row_save]],
            "interest_tag": _labels(row_tag, catalogue.interest_tags),
            "date_followed": _timestamp_labels(at, row_save),
        }
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


def _views(rng: np.random.Generator, catalogue: _Catalogue, people: _Users) -> pd.DataFrame:
    """Draw each viewer's courses from their topics and spread the views over their active days."""
    size = len(people.handles)
    n_courses = len(catalogue.course_ids)
    viewer = rng.random(size) < _VIEWER_SHARE
    length = np.clip(np.round(rng.lognormal(1.6, 1.3, size)), 1, min(540, n_courses))
    wanted = np.where(viewer, length, 0).astype(np.int64)
    owner, courses = _distinct(rng, catalogue.courses, people, wanted, noise=_BROWSING_SHARE)

    # A user is active from a little before they first followed tags until some later day.
    last_day = (_epoch(_VIEW_WINDOW[1]) - _epoch(_VIEW_WINDOW[0])) // 86_400
    joined_day = (people.joined - _epoch(_VIEW_WINDOW[0])) // 86_400
    start = np.maximum(joined_day - rng.exponential(20, size).astype(np.int64), 0)
    span = np.ceil((last_day - start) * rng.random(size) ** 0.5).astype(np.int64)
    first_day = start[owner] + (rng.random(len(owner)) * (span[owner] + 1)).astype(np.int64)

    days = np.minimum(rng.geometric(0.4, len(owner)), 40)
    pair = np.repeat(np.arange(len(owner)), days)
    gap = rng.geometric(0.3, len(pair))
    gap[_ranks(pair) == 0] = 0
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
    return pd.DataFrame(
        {
            "user_handle": people.handles[row_owner],
            "view_date": _labels(row_day, day_names),
            "course_id": _labels(row_course, catalogue.course_ids),
            "author_handle": catalogue.course_author[row_course],
            "level": _labels(catalogue.course_level[row_course], np.array(_LEVELS)),
            "view_time_seconds": np.minimum(seconds, _MAX_VIEW_SECONDS).astype(np.int64),
        }
    )


def _assessments(rng: np.random.Generator, catalogue: _Catalogue, people: _Users) -> pd.DataFrame:
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
    return pd.DataFrame(
        {
            "user_handle": people.handles[owner[order]],
            "assessment_tag": _labels(tags[order], catalogue.assessment_tags),
            "user_assessment_date": _timestamp_labels(taken, order),
            "user_assessment_score": scores[order].astype(np.int64),
        }
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
    rank = _ranks(owner)
    gap[rank == 0] = 0
    at = start + _cumsum_within(owner, gap)
    # Clipping at the end would pile events onto the last second; keep them close instead.
    late = at > end
    at[late] = start[late] + 97 * rank[late]
    return np.asarray(np.minimum(at, end), dtype=np.int64)
