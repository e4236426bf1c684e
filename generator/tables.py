"""Read the platform's CSV exports into compact, validated tables, reporting every row left out.

This is the project's only CSV reader. A file is read in chunks of plain strings; each chunk is
checked with vectorised tests and converted to compact types (int64 handles, category tags and ids,
datetime64[ns] dates, float64 amounts and numbers, bool flags) before the chunks are joined, so
memory follows the compact size of a table rather than the size of its text. A row is left out only
for a reason that names a column (or the row), and the report says which lines of the file those
rows were on (the header is line 1). Damage confined to a row leaves out that row; a file is
refused only as a whole: no header, a missing column, a quote never closed, mostly bytes that are
not UTF-8, or more rows left out than `Limits` allows. No row is ever held longer than
`Limits.max_row_bytes`.

Besides the platform's four tables, an export may hold a survey: `user_answers.csv` (a number per
user and question) and `questions.csv` (each question's scale and whether it is reverse-keyed).
Both are optional: a missing one is None, worth a word only when the other is there. A questions row
whose scale_max is not above its scale_min is left out, and so is a question_id seen on an earlier
row (the first is kept). With questions.csv, an answer to a question it does not hold, or off its
question's scale (from scale_min to scale_max, ends included), is left out; without it nothing is
checked against a scale. A user who answered a question more than once keeps only the latest
answer, by answered_at (an answer without one counts as older than any dated answer), and on equal
times the one further down the file: the table holds one row per (user_handle, question_id), and
the report counts the answers superseded (not as rejected rows).
"""

from __future__ import annotations

import gzip
import logging
import re
import secrets
import time
import warnings
import zlib
from collections import deque
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.types import union_categoricals

from similarity.models import SIGNALS

__all__ = [
    "MAX_AMOUNT",
    "MAX_LINES_KEPT",
    "MAX_REJECTED_SHARE",
    "MAX_ROW_BYTES",
    "MAX_TAGS_PER_COURSE",
    "NOT_UTF8",
    "PLATFORM_TABLES",
    "REJECTED_ROWS_TOLERATED",
    "SCHEMAS",
    "SURVEY_TABLES",
    "TABLE_NAMES",
    "Column",
    "ConvertedRows",
    "Limits",
    "LoadReport",
    "RejectedRows",
    "Rejections",
    "TableError",
    "TableRead",
    "Tables",
    "check_rejected_share",
    "checked_across_rows",
    "column_names",
    "convert_rows",
    "file_name",
    "find_file",
    "finish_table",
    "load_tables",
    "locate_columns",
    "read_table",
]

log = logging.getLogger(__name__)

# pandas keeps str values in Python objects, as it does without pyarrow: with pyarrow installed
# (the Spark engine's data transfer) it would keep them in Arrow, which cannot hold the surrogates
# that stand for bytes that are not UTF-8 until those rows are reported.
pd.set_option("mode.string_storage", "python")

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
Kind = Literal["handle", "tag", "text", "date", "amount", "number", "flag"]


class TableError(Exception):
    """An export file cannot be used; the message names file, line and column."""


@dataclass(frozen=True)
class Column:
    """One column of an export: its real name, what kind of value it holds, other spellings."""

    name: str
    kind: Kind
    required: bool = True
    aliases: tuple[str, ...] = ()
    # course_tags.csv gives a course without tags one row whose tag is empty: a fact, not an error.
    empty_means_untagged: bool = False


# The real export's column names; aliases are the spellings of the platform's written description
# and, for the survey, the names survey tools commonly give those columns.
SCHEMAS: Mapping[str, tuple[Column, ...]] = {
    "user_interests": (
        Column("user_handle", "handle"),
        Column("interest_tag", "tag"),
        Column("date_followed", "date"),
    ),
    "user_course_views": (
        Column("user_handle", "handle"),
        Column("view_date", "date"),
        Column("course_id", "text", aliases=("course_name",)),
        Column("author_handle", "handle", required=False),
        Column("level", "text", required=False),
        Column("view_time_seconds", "amount", aliases=("course_view_time_seconds",)),
    ),
    "user_assessment_scores": (
        Column("user_handle", "handle"),
        Column("assessment_tag", "tag"),
        Column("user_assessment_date", "date"),
        Column("user_assessment_score", "amount"),
    ),
    "course_tags": (
        Column("course_id", "text", aliases=("course_name",)),
        Column("course_tags", "tag", aliases=("course_tag",), empty_means_untagged=True),
    ),
    "user_answers": (
        Column("user_handle", "handle", aliases=("user_id",)),
        Column("question_id", "text", aliases=("question",)),
        Column("answer", "number", aliases=("value", "score")),
        Column("answered_at", "date", required=False, aliases=("date", "answered_date")),
    ),
    "questions": (
        Column("question_id", "text", aliases=("question",)),
        # Only shown to people, so a question without its text still scales its answers.
        Column("text", "text", required=False, aliases=("question_text",)),
        Column("scale_min", "number", aliases=("min",)),
        Column("scale_max", "number", aliases=("max",)),
        Column("reverse_keyed", "flag", aliases=("reverse", "reversed")),
    ),
}
TABLE_NAMES: tuple[str, ...] = tuple(SCHEMAS)
# The platform's own four tables, and the optional survey's two.
PLATFORM_TABLES: tuple[str, ...] = TABLE_NAMES[:4]
SURVEY_TABLES: tuple[str, ...] = ("user_answers", "questions")
# How reverse_keyed may be written, in any case.
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


def file_name(table: str) -> str:
    """Return the name of table `table`'s export file, such as `user_interests.csv`."""
    return f"{table}.csv"


def column_names(table: str) -> tuple[str, ...]:
    """Return the real names of table `table`'s columns, in the export's order."""
    return tuple(column.name for column in SCHEMAS[table])


def models_fed(name: str) -> str:
    """Say which models read table `name`, as the model registry's `needs` tell."""
    handles = [handle for handle, model in SIGNALS.items() if name in model.needs]
    if not handles:
        return "the models that read it"
    if len(handles) == 1:
        return f"the {handles[0]} model"
    return f"the {', '.join(handles[:-1])} and {handles[-1]} models"


# The largest view time, score or answer kept (an answer either side of 0). Far above any real one
# (1e12 s is 31,000 years), and low enough that sums of millions of them stay finite in the models'
# float32 matrices; a larger amount would overflow there to infinity and stop the run or corrupt
# every similarity it touches.
MAX_AMOUNT = 1e12
# A table where every row is bad must not turn into a list of millions of Python ints.
MAX_LINES_KEPT = 10_000
# The longest row read, in bytes with its line break. A real row is under 200 bytes; a longer one
# (a lost line break, a binary blob, a quote opened by mistake) is left out unread, so a 1 GB line
# costs 1 MiB of memory rather than several GB.
MAX_ROW_BYTES = 1 << 20
# The most tags one course keeps: the real export's maximum is 15. Each tag of a course becomes a
# feature of every user who viewed it, so thousands of tags on one course would multiply the
# course_tags model's matrix; tags beyond the first 100 (in file order) are rejected rows.
MAX_TAGS_PER_COURSE = 100
# A file whose rejected rows pass both limits is refused rather than half used: more than 10% of
# its rows, and more than 100 rows. Below 100 the damage is small whatever its share.
MAX_REJECTED_SHARE = 0.10
REJECTED_ROWS_TOLERATED = 100
# A file where more than half of the rows hold bytes that are not UTF-8 is in another encoding.
_MAX_UNDECODABLE_SHARE = 0.5
NOT_UTF8 = "holds bytes that are not UTF-8"
TOO_LONG = "the row is longer than {limit:,} bytes"
_LINES_SHOWN = 10
_INT64_MAX = str(np.iinfo(np.int64).max)
# Bytes that are not UTF-8 are decoded with "surrogateescape" into these code points, so that they
# can be found and reported with their line instead of being silently replaced.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_PLAIN_NUMBER = re.compile(r"[0-9.eE+-]*")
# pandas names each line it skips only in the text of a ParserWarning; its number counts records
# (header = 1, blank lines included), not the line breaks inside quoted fields.
_SKIPPED_LINE = re.compile(r"Skipping line (\d+): expected \d+ fields, saw \d+")
TOO_MANY_FIELDS = "the row has more fields than the header"
# What a damaged or truncated (possibly gzipped) file raises while it is being read.
_UNREADABLE = (OSError, EOFError, zlib.error)
_READ_OPTIONS: dict[str, Any] = {
    "dtype": str,
    "keep_default_na": False,
    "na_filter": False,
    # Blank lines are kept as rows so that row positions keep matching line numbers.
    "skip_blank_lines": False,
    "encoding": "utf-8",
    "encoding_errors": "surrogateescape",
    # Never let pandas turn the first column into an index when a row has one field too many.
    "index_col": False,
    "engine": "c",
    # Bytes come from _Rows, never from a path: compression is undone before pandas sees them.
    "compression": None,
}


@dataclass(frozen=True)
class Limits:
    """Bounds on one export file; passing one leaves out rows or refuses the file, saying which.

    `max_row_bytes`: a longer row is a rejected row (a longer header refuses the file).
    `max_tags_per_course`: a course's tags beyond these (in file order) are rejected rows.
    `max_rejected_share`, `rejected_rows_tolerated`: a file is refused when its rejected rows are
    more than this share of its rows and more than this many.
    """

    max_row_bytes: int = MAX_ROW_BYTES
    max_tags_per_course: int = MAX_TAGS_PER_COURSE
    max_rejected_share: float = MAX_REJECTED_SHARE
    rejected_rows_tolerated: int = REJECTED_ROWS_TOLERATED

    def __post_init__(self) -> None:
        if self.max_row_bytes < 1 or self.max_tags_per_course < 1:
            raise ValueError("max_row_bytes and max_tags_per_course must be at least 1")
        if not 0 <= self.max_rejected_share <= 1 or self.rejected_rows_tolerated < 0:
            raise ValueError(
                "max_rejected_share must be from 0 to 1 and rejected_rows_tolerated at least 0"
            )


@dataclass(frozen=True)
class RejectedRows:
    """Rows of one file left out for one reason; `lines` holds up to MAX_LINES_KEPT of them."""

    file: str
    reason: str
    lines: tuple[int, ...]  # 1-based line numbers in the file, the header is line 1
    count: int  # all rows left out for this reason, also those beyond `lines`


@dataclass(frozen=True, eq=False)
class TableRead:
    """One table as read from one file, with what was left out of it."""

    frame: pd.DataFrame
    file: str
    rows_read: int
    duplicates: int
    rejected: tuple[RejectedRows, ...]
    courses_without_tags: int
    seconds: float
    superseded: int = 0  # user_answers: earlier answers to a question the user answered again

    @property
    def rows_rejected(self) -> int:
        """Return how many rows were left out as invalid."""
        return sum(r.count for r in self.rejected)

    def log(self, by: str = "") -> None:
        """Log what reading the file did (`by`: which reader, when not this module's)."""
        log.info(
            "%s: %d rows read, %d kept, %d duplicates, %d rejected in %.2f s%s",
            self.file,
            self.rows_read,
            len(self.frame),
            self.duplicates,
            self.rows_rejected,
            self.seconds,
            f" ({by})" if by else "",
        )


@dataclass
class LoadReport:
    """What loading the exports did, keyed by table name (`user_interests`, ...)."""

    rows_read: dict[str, int] = field(default_factory=dict)
    rows_kept: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    rejected: list[RejectedRows] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # tables whose file was not there
    files: dict[str, str] = field(default_factory=dict)  # table name → file name read
    # course_tags rows with an empty tag: courses without tags, dropped but not errors
    courses_without_tags: int = 0
    # user_answers rows replaced by a later answer of the same user to the same question
    answers_superseded: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, read: TableRead) -> None:
        """Record what reading table `name` did."""
        self.files[name] = read.file
        self.rows_read[name] = read.rows_read
        self.rows_kept[name] = len(read.frame)
        self.duplicates[name] = read.duplicates
        self.rejected.extend(read.rejected)
        self.courses_without_tags += read.courses_without_tags
        self.answers_superseded += read.superseded
        self.seconds[name] = read.seconds

    def summary(self) -> list[str]:
        """Return human-readable lines saying what was read, left out and missing."""
        lines: list[str] = []
        for name in TABLE_NAMES:
            if name in self.missing:
                if _worth_saying_missing(name, self.rows_read):
                    lines.append(f"{file_name(name)}: not found, so {_missing_means(name)}")
            elif name in self.rows_read:
                rejected = sum(r.count for r in self.rejected if r.file == self.files[name])
                lines.append(
                    f"{self.files[name]}: {self.rows_read[name]:,} rows read, "
                    f"{self.rows_kept[name]:,} kept, {self.duplicates[name]:,} duplicates removed, "
                    f"{rejected:,} rejected"
                )
        for rows in self.rejected:
            lines.append(
                f"{rows.file}: {_plural(rows.count, 'row')} rejected ({rows.reason}) "
                f"at {_line_list(rows)}"
            )
        if self.courses_without_tags:
            lines.append(
                f"{self.files.get('course_tags', 'course_tags.csv')}: "
                f"{_plural(self.courses_without_tags, 'course')} without tags (not an error)"
            )
        if self.answers_superseded:
            lines.append(
                f"{self.files.get('user_answers', 'user_answers.csv')}: "
                f"{_plural(self.answers_superseded, 'answer')} superseded by a later answer of "
                "the same user to the same question (the latest is kept; not an error)"
            )
        return lines


def _worth_saying_missing(name: str, found: Container[str]) -> bool:
    """Tell whether a missing table deserves a word: a platform table always, a survey table only
    when the other survey file is there (most exports have no survey at all)."""
    return name not in SURVEY_TABLES or any(other in found for other in SURVEY_TABLES)


def _missing_means(name: str) -> str:
    """Say what the absence of table `name` costs."""
    if name == "questions":
        return "answers are not checked against scales (the scales come from the answers seen)"
    return f"{models_fed(name)} cannot be built"


@dataclass(frozen=True, eq=False)
class Tables:
    """The exports as DataFrames named as their files (None where missing), and the report.

    The survey's two tables come last, with defaults, as most exports have no survey.
    """

    user_interests: pd.DataFrame | None
    user_course_views: pd.DataFrame | None
    user_assessment_scores: pd.DataFrame | None
    course_tags: pd.DataFrame | None
    report: LoadReport
    user_answers: pd.DataFrame | None = None  # one row per (user_handle, question_id)
    questions: pd.DataFrame | None = None  # one row per question_id


def load_tables(
    data_dir: Path, chunk_rows: int = 1_000_000, limits: Limits | None = None
) -> Tables:
    """Read every export in `data_dir`; raise TableError if there is none or one is unusable."""
    if not data_dir.is_dir():
        raise TableError(f"{data_dir}: no such directory")
    paths = {name: find_file(data_dir, name) for name in TABLE_NAMES}
    if all(path is None for path in paths.values()):
        expected = ", ".join(f"{name}.csv" for name in TABLE_NAMES)
        raise TableError(
            f"{data_dir}: none of the exports is there (expected {expected}, or .csv.gz)"
        )
    report = LoadReport()
    found = {name for name, path in paths.items() if path is not None}
    frames: dict[str, pd.DataFrame | None] = {}
    reads: dict[str, TableRead] = {}
    # questions.csv is read before user_answers.csv, whose answers are checked against it.
    for name in sorted(TABLE_NAMES, key=lambda table: table == "user_answers"):
        path = paths[name]
        if path is None:
            if _worth_saying_missing(name, found):
                log.warning(
                    "%s not found in %s: %s", file_name(name), data_dir, _missing_means(name)
                )
            report.missing.append(name)
            frames[name] = None
            continue
        reads[name] = read_table(path, name, chunk_rows, limits, questions=reads.get("questions"))
        frames[name] = reads[name].frame
    report.missing.sort(key=TABLE_NAMES.index)
    for name, read in sorted(reads.items(), key=lambda item: TABLE_NAMES.index(item[0])):
        report.add(name, read)
    return Tables(**frames, report=report)


def read_table(
    path: Path,
    name: str,
    chunk_rows: int = 1_000_000,
    limits: Limits | None = None,
    questions: TableRead | None = None,
) -> TableRead:
    """Read the export `path` as table `name` (a key of SCHEMAS), `chunk_rows` rows at a time.

    `questions` is what reading questions.csv gave; user_answers rows are checked against it.
    """
    if name not in SCHEMAS:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLE_NAMES)}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    limits = limits or Limits()
    started = time.perf_counter()
    schema = SCHEMAS[name]
    file = path.name
    positions = locate_columns(_read_header(path, file, limits.max_row_bytes), schema, file)
    lines = _LineCounter()
    pieces: list[dict[str, Any]] = []
    # Tables checked across values, rows or files keep the lines of their rows for those checks.
    lined = name in _CHECKED_ACROSS_ROWS
    kept_lines: list[IntArray] = []
    rejected = Rejections()
    too_long = TOO_LONG.format(limit=limits.max_row_bytes)
    first_undecodable: str | None = None
    rows_read = untagged = 0
    with _open_rows(path, file, limits.max_row_bytes) as stream:
        for chunk, skipped in _chunks(stream, file, chunk_rows, len(positions.header)):
            standins, breaks = stream.standins(chunk)
            lines.start(chunk, standins, breaks)
            if skipped:
                rejected.add(TOO_MANY_FIELDS, lines.skip(skipped))
                rows_read += len(skipped)
            if chunk is None:
                continue
            early = {too_long: standins} if len(standins) else {}
            converted = _convert_chunk(chunk, positions, schema, early)
            if first_undecodable is None:
                first_undecodable = _first_undecodable(chunk, converted, positions, lines)
            blank = _blank_rows(chunk, converted.problem_rows)
            for reason, rows in converted.problems.items():
                rejected.add(reason, lines.lines(np.setdiff1d(rows, blank, assume_unique=True)))
            keep = np.ones(len(chunk), dtype=np.bool_)
            keep[converted.problem_rows] = False
            keep[converted.untagged_rows] = False
            pieces.append({c: values[keep] for c, values in converted.values.items()})
            if lined:
                kept_lines.append(lines.lines(np.flatnonzero(keep)))
            rows_read += len(chunk) - len(blank)
            untagged += len(converted.untagged_rows)
            lines.advance()
        if stream.unclosed is not None:
            raise TableError(_unclosed_message(file, stream.unclosed, positions.header))
    frame = _join(pieces, schema)
    line_of = np.concatenate(kept_lines) if kept_lines else np.empty(0, dtype=np.int64)
    frame, duplicates, superseded = finish_table(name, frame, line_of, rejected, limits, questions)
    check_rejected_share(file, rows_read, rejected, limits, first_undecodable)
    read = TableRead(
        frame=frame,
        file=file,
        rows_read=rows_read,
        duplicates=duplicates,
        rejected=rejected.rows(file),
        courses_without_tags=untagged,
        seconds=time.perf_counter() - started,
        superseded=superseded,
    )
    read.log()
    return read


# The tables with checks that look at more than one value, row or file, made once every row is
# read; they keep the lines of their rows for them.
_CHECKED_ACROSS_ROWS = ("course_tags", "questions", "user_answers")


def checked_across_rows(name: str) -> bool:
    """Tell whether table `name` has checks across rows or files (`finish_table` needs lines)."""
    return name in _CHECKED_ACROSS_ROWS


def finish_table(
    name: str,
    frame: pd.DataFrame,
    lines: IntArray,
    rejected: Rejections,
    limits: Limits,
    questions: TableRead | None = None,
) -> tuple[pd.DataFrame, int, int]:
    """Apply table `name`'s checks that need every row: against other columns and files, exact
    duplicates (the first is kept), across rows. Return the table, its duplicates and superseded
    answers. `frame` holds the rows that passed the row checks, in file order; `lines` their
    lines (needed when `checked_across_rows(name)`). Any reader of the exports calls this.
    """
    lined = checked_across_rows(name)
    if lined:
        # Checks of a row against another column or file come first, so that every copy of a
        # bad row is rejected at its line, as a bad value is.
        frame, lines = _checked_against(name, frame, lines, rejected, questions)
    duplicated = frame.duplicated().to_numpy()
    duplicates = int(duplicated.sum())
    if duplicates:
        frame = frame.loc[~duplicated].reset_index(drop=True)
    superseded = 0
    if lined:
        frame, superseded = _checked_across_rows(name, frame, lines[~duplicated], rejected, limits)
    return _drop_unused_categories(frame), duplicates, superseded


@dataclass(frozen=True)
class ConvertedRows:
    """Rows of one file converted by its schema: what another reader (Spark) needs of a chunk.

    values: column → compact values (categoricals, int64, datetime64[ns], float64, bool), of
    every row (undefined where a row is left out); problems: reason → positions of the rows
    left out for it; blank: positions of blank lines (not rows); untagged: course_tags rows of
    a course without tags (dropped, not errors).
    """

    values: dict[str, Any]
    problems: dict[str, IntArray]
    blank: IntArray
    untagged: IntArray

    def kept(self, rows: int) -> BoolArray:
        """Return which of the chunk's `rows` rows are kept."""
        keep = np.ones(rows, dtype=np.bool_)
        for positions in (*self.problems.values(), self.blank, self.untagged):
            keep[positions] = False
        return keep


def convert_rows(
    chunk: pd.DataFrame, name: str, columns: Mapping[str, int], early: Mapping[str, IntArray]
) -> ConvertedRows:
    """Convert and check a chunk of table `name`'s rows by the loader's rules, row by row.

    `chunk` holds the file's fields as str, columns labelled by their position in the header;
    `columns` maps each schema column found to its position (as `locate_columns` found it);
    `early` holds rows already known bad (reason → positions), reported first.
    """
    header = [str(label) for label in chunk.columns]
    converted = _convert_chunk(chunk, _Positions(header, dict(columns)), SCHEMAS[name], early)
    blank = _blank_rows(chunk, converted.problem_rows)
    problems = {
        reason: np.setdiff1d(rows, blank, assume_unique=True)
        for reason, rows in converted.problems.items()
    }
    problems = {reason: rows for reason, rows in problems.items() if len(rows)}
    return ConvertedRows(converted.values, problems, blank, converted.untagged_rows)


def _checked_against(
    name: str,
    frame: pd.DataFrame,
    lines: IntArray,
    rejected: Rejections,
    questions: TableRead | None,
) -> tuple[pd.DataFrame, IntArray]:
    """Leave out rows (at `lines`) that another column or another file shows wrong: questions
    whose scale is empty or upside down, answers off their question's scale."""
    if name == "questions":
        scale = (frame["scale_max"] > frame["scale_min"]).to_numpy(dtype=np.bool_)
        rejected.add("scale_max is not above scale_min", lines[~scale])
        return frame.loc[scale].reset_index(drop=True), lines[scale]
    if name == "user_answers" and questions is not None:
        return _answers_on_scale(frame, lines, questions, rejected)
    return frame, lines


def _checked_across_rows(
    name: str, frame: pd.DataFrame, lines: IntArray, rejected: Rejections, limits: Limits
) -> tuple[pd.DataFrame, int]:
    """Apply table `name`'s checks across its rows (at `lines`), once exact duplicates are gone;
    return what is kept and how many answers were superseded."""
    if name == "course_tags":
        return _cap_tags(frame, lines, limits.max_tags_per_course, rejected), 0
    if name == "questions":
        repeated = frame["question_id"].duplicated().to_numpy(dtype=np.bool_)
        rejected.add("question_id is already on an earlier line", lines[repeated])
        return frame.loc[~repeated].reset_index(drop=True), 0
    return _latest_answers(frame)


def _answers_on_scale(
    frame: pd.DataFrame, lines: IntArray, questions: TableRead, rejected: Rejections
) -> tuple[pd.DataFrame, IntArray]:
    """Leave out answers to questions not in `questions`, and answers off their question's scale."""
    asked = questions.frame
    ids = frame["question_id"].cat
    # One lookup per distinct question_id, then per row by its code (never -1: ids are required).
    position = pd.Index(asked["question_id"].astype(str)).get_indexer(ids.categories.astype(str))
    row = position[ids.codes.to_numpy()] if len(frame) else np.empty(0, dtype=np.int64)
    unknown = row < 0
    rejected.add(f"question_id is not in {questions.file}", lines[unknown])
    safe = np.where(unknown, 0, row)
    low = asked["scale_min"].to_numpy(dtype=np.float64)
    high = asked["scale_max"].to_numpy(dtype=np.float64)
    answer = frame["answer"].to_numpy(dtype=np.float64)
    off = np.zeros(len(frame), dtype=np.bool_)
    if len(asked):
        off = ~unknown & ((answer < low[safe]) | (answer > high[safe]))
    rejected.add(f"answer is off its question's scale in {questions.file}", lines[off])
    keep = ~unknown & ~off
    return frame.loc[keep].reset_index(drop=True), lines[keep]


def _latest_answers(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep each user's latest answer to each question (by answered_at, then by file order);
    return the table in file order and how many earlier answers it left out."""
    # NaT is the smallest int64, so an answer without a time is older than any dated one; the
    # stable sort keeps file order among equal times, so the later line comes last.
    at = frame["answered_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    order = np.argsort(at, kind="stable")
    keys = pd.DataFrame(
        {
            "user": frame["user_handle"].to_numpy(dtype=np.int64)[order],
            "question": frame["question_id"].cat.codes.to_numpy()[order],
        }
    )
    earlier = np.zeros(len(frame), dtype=np.bool_)
    earlier[order[keys.duplicated(keep="last").to_numpy(dtype=np.bool_)]] = True
    superseded = int(earlier.sum())
    if not superseded:
        return frame, 0
    return frame.loc[~earlier].reset_index(drop=True), superseded


def _cap_tags(
    frame: pd.DataFrame, lines: IntArray, most: int, rejected: Rejections
) -> pd.DataFrame:
    """Keep each course's first `most` tags (in file order); reject the rows of the others."""
    rank = frame.groupby("course_id", observed=True, sort=False).cumcount().to_numpy()
    over = rank >= most
    if not over.any():
        return frame
    rejected.add(f"course_id has more than {most:,} tags", lines[over])
    return frame.loc[~over].reset_index(drop=True)


def check_rejected_share(
    file: str, rows: int, rejected: Rejections, limits: Limits, first_undecodable: str | None
) -> None:
    """Refuse a file mostly in another encoding, or with more rejected rows than `limits` allow."""
    undecodable = sum(n for reason, n in rejected.counts.items() if reason.endswith(NOT_UTF8))
    if undecodable > _MAX_UNDECODABLE_SHARE * rows:
        raise TableError(
            f"{file}: {undecodable:,} of {rows:,} rows hold bytes that are not UTF-8 "
            f"(first {first_undecodable}); the file is in another encoding: export it as UTF-8"
        )
    count = rejected.total()
    if count > limits.rejected_rows_tolerated and count > limits.max_rejected_share * rows:
        reason, lines = rejected.first()
        raise TableError(
            f"{file}: {count:,} of {rows:,} rows rejected ({count / rows:.1%}), more than "
            f"MAX_REJECTED_SHARE ({limits.max_rejected_share:.0%}) allows once more than "
            f"{limits.rejected_rows_tolerated:,} rows are; the first at line {lines[0]} "
            f"({reason}); the export looks damaged, so the file is not used"
        )


def find_file(data_dir: Path, name: str) -> Path | None:
    """Return the export of table `name` in `data_dir`, plain or gzipped, or None."""
    found = [p for p in (data_dir / f"{name}.csv", data_dir / f"{name}.csv.gz") if p.is_file()]
    if len(found) > 1:
        # Picking one silently could load a stale copy; the operator has to choose.
        raise TableError(f"{data_dir}: both {name}.csv and {name}.csv.gz are there; keep one")
    return found[0] if found else None


def _read_header(path: Path, file: str, max_row_bytes: int) -> list[str]:
    """Return the column names of the header line exactly as written."""
    try:
        with _open_rows(path, file, max_row_bytes) as stream:
            try:
                first = pd.read_csv(
                    cast(IO[bytes], stream),
                    header=None,
                    nrows=1,
                    on_bad_lines="skip",
                    **_READ_OPTIONS,
                )
            except pd.errors.EmptyDataError as error:
                if stream.unclosed is not None:
                    raise TableError(_unclosed_message(file, stream.unclosed, [])) from error
                raise TableError(f"{file}: the file is empty (no header line)") from error
    except pd.errors.ParserError as error:
        raise TableError(f"{file}: line 1 cannot be read as CSV ({error})") from error
    except _UNREADABLE as error:
        raise TableError(f"{file}: cannot be read ({error})") from error
    names = [str(value) for value in first.iloc[0]] if len(first) else []
    if names and names[0] == stream.marker:
        raise TableError(
            f"{file}: line 1 (the header) is longer than {max_row_bytes:,} bytes "
            "(MAX_ROW_BYTES); not a CSV export"
        )
    for name in names:
        if _UNDECODABLE.search(name):
            raise TableError(
                f"{file}: line 1, column {_shown(name)}: bytes that are not UTF-8 "
                f"({_raw_bytes(name)!r}); export the file as UTF-8"
            )
    return names


@dataclass(frozen=True)
class _Positions:
    """Where each known column sits in the header (0-based), and the header itself."""

    header: list[str]
    of: dict[str, int]


def locate_columns(header: list[str], schema: Sequence[Column], file: str) -> _Positions:
    """Match header names to the schema, accepting aliases, case and stray spaces or BOM."""
    spellings = {s: column for column in schema for s in (column.name, *column.aliases)}
    of: dict[str, int] = {}
    for position, written in enumerate(header):
        column = spellings.get(written.strip().lstrip("\ufeff").strip().lower())
        if column is None:
            continue
        if column.name in of:
            raise TableError(
                f"{file}: line 1: columns {_shown(header[of[column.name]])} and {_shown(written)} "
                f"both hold {column.name}; keep one"
            )
        of[column.name] = position
    missing = [column.name for column in schema if column.required and column.name not in of]
    if missing:
        found = ", ".join(_shown(name) for name in header)
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = "; the file must be separated by commas"
        raise TableError(
            f"{file}: missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(_shown(name) for name in missing)} (found: {found}){hint}"
        )
    return _Positions(header=header, of=of)


def _chunks(
    stream: _Rows, file: str, chunk_rows: int, width: int
) -> Iterator[tuple[pd.DataFrame | None, list[int]]]:
    """Yield chunks of string columns 0..width-1, each with the parser lines skipped before it."""
    try:
        # The header is read as a row of `width` named columns, so that a first row with more
        # fields than the header is skipped like any other instead of shifting every row.
        with pd.read_csv(
            cast(IO[bytes], stream),
            header=None,
            names=range(width),
            chunksize=chunk_rows,
            on_bad_lines="warn",
            **_READ_OPTIONS,
        ) as reader:
            header = True
            while True:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", pd.errors.ParserWarning)
                    chunk: pd.DataFrame | None = next(reader, None)
                skipped = _skipped_lines(caught)
                if chunk is not None and header:
                    chunk = chunk.iloc[1:].reset_index(drop=True)
                    header = False
                if chunk is None:
                    if skipped:
                        yield None, skipped
                    return
                chunk.columns = pd.RangeIndex(width)
                yield chunk, skipped
    except pd.errors.ParserError as error:
        raise TableError(f"{file}: cannot be read as CSV ({error})") from error
    except _UNREADABLE as error:
        raise TableError(f"{file}: cannot be read ({error})") from error


# The CSV grammar of pandas' C parser as set up here (comma, '"' quotes doubled inside a quoted
# value, any of \r\n, \n, \r ends a row), for bytes: a quote opens a quoted value only at the
# start of a field; after the closing quote, everything up to the next comma or line break
# belongs to the value (quotes included). Possessive repeats: a match never backtracks.
_QUOTED = rb'"[^"]*+(?:""[^"]*+)*+"[^,\n\r]*+'
_PLAIN = rb'[^,\n\r"][^,\n\r]*+'
_FIELD = rb"(?:" + _QUOTED + rb"|" + _PLAIN + rb")?+"
_RECORD = _FIELD + rb"(?:," + _FIELD + rb")*+"
_BREAK = rb"(?:\r\n|\n|\r)"
_ROW = re.compile(_RECORD + _BREAK)
_ROWS = re.compile(rb"(?:" + _RECORD + _BREAK + rb")*+")
_LAST_ROW = re.compile(_RECORD)  # a last row without a line break
_FIELD_AND_COMMA = re.compile(_FIELD + rb",")
_FIELDS = re.compile(rb"(?:" + _FIELD + rb",)*+")
_QUOTED_REST = re.compile(rb'[^"]*+(?:""[^"]*+)*+')
_PLAIN_REST = re.compile(rb"[^,\n\r]*+")
_BOM = b"\xef\xbb\xbf"
_QUOTE, _COMMA, _LF = ord('"'), ord(","), ord("\n")
# Where a row being skipped stands: at the start of a field, in an unquoted value (or after a
# quoted one's closing quote), in a quoted value, just after a quote inside a quoted value
# (closing, unless another quote follows), or just after a \r that ended the row.
_START, _PLAIN_VALUE, _IN_QUOTES, _QUOTE_SEEN, _CR = range(5)


def _row_end(data: bytes, pos: int, state: int) -> tuple[int | None, int]:
    """Return where the row being read ends in `data` (past its line break), or None, and the
    state at that point. Each step is a C-speed regex or one byte, whatever the row holds."""
    size = len(data)
    while pos < size:
        if state == _IN_QUOTES:
            pos = _match(_QUOTED_REST, data, pos)
            if pos == size:
                break
            pos, state = pos + 1, _QUOTE_SEEN
        elif state == _QUOTE_SEEN:
            if data[pos] == _QUOTE:  # a doubled quote: still inside the value
                pos, state = pos + 1, _IN_QUOTES
            else:
                state = _PLAIN_VALUE
        elif state == _START:
            pos = _match(_FIELDS, data, pos)
            if pos == size:
                break
            if data[pos] == _QUOTE:
                pos, state = pos + 1, _IN_QUOTES
            else:
                state = _PLAIN_VALUE
        elif state == _PLAIN_VALUE:
            pos = _match(_PLAIN_REST, data, pos)
            if pos == size:
                break
            if data[pos] == _COMMA:
                pos, state = pos + 1, _START
            elif data[pos] == _LF:
                return pos + 1, _START
            else:  # \r: the row ends, and so does a \n right after it
                pos, state = pos + 1, _CR
        else:  # _CR
            return (pos + 1 if data[pos] == _LF else pos), _START
    return None, state


def _match(pattern: re.Pattern[bytes], data: bytes, pos: int, stop: int | None = None) -> int:
    """Return where `pattern`, which matches the empty string too, stops matching at `pos`."""
    found = pattern.match(data, pos, len(data) if stop is None else stop)
    assert found is not None  # every pattern used here matches the empty string
    return found.end()


@dataclass
class _Skip:
    """A row too long to hold, being read past: its first line, line breaks so far, state."""

    line: int
    breaks: int
    state: int


class _Rows:
    """The bytes of an export as pandas reads them, with every row longer than `limit` bytes
    replaced by a one-field stand-in row, so no row longer than that is ever held in memory.

    Rows are cut by the grammar pandas follows, so a stand-in takes the place of exactly one row;
    `standins` finds them in a parsed chunk with the line breaks each row held. A quoted value
    never closed ends the bytes early (pandas would read the rest of the file into it), and
    `unclosed` then says on which line and in which field it opens.
    """

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw = raw
        self.limit = limit
        # A row that starts in one block and ends in it is at most a block long; only the row
        # carried over from the block before can be longer, and that one is checked (_feed).
        self.block = limit
        self.marker = "\ue000" + secrets.token_hex(16)  # no export holds this by chance
        self.breaks: deque[int] = deque()  # line breaks inside each replaced row, in order
        self.unclosed: tuple[int, int | None] | None = None  # (line, field) of the opening
        self.lines = 0  # line breaks before the bytes not yet delivered or skipped
        self.pending = b""  # the start of a row not yet complete
        self.skipping: _Skip | None = None
        self.out = b""
        self.at = 0
        self.started = False
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        """Return up to `size` bytes (all if negative), b"" only at the end."""
        while self.at >= len(self.out) and not self.ended:
            self.out, self.at = self._next(), 0
        if size < 0:
            size = len(self.out) - self.at
        piece = self.out[self.at : self.at + size]
        self.at += len(piece)
        return piece

    def standins(self, chunk: pd.DataFrame | None) -> tuple[IntArray, IntArray]:
        """Return the positions of the chunk's stand-in rows and the line breaks each held."""
        none = np.empty(0, dtype=np.int64)
        if chunk is None or not self.breaks:
            return none, none
        rows = np.flatnonzero(chunk[0].to_numpy(dtype=object) == self.marker)
        breaks = np.asarray([self.breaks.popleft() for _ in rows], dtype=np.int64)
        return rows, breaks

    def _next(self) -> bytes:
        """Return the next bytes to deliver (maybe none yet), reading one more block."""
        block = self.raw.read(self.block)
        final = not block
        if not self.started:
            self.started = True
            if block.startswith(_BOM):  # pandas drops it; the first field starts after it
                return _BOM + self._feed(block[len(_BOM) :], final)
        if self.skipping is None:
            return self._feed(self.pending + block, final)
        skip = self.skipping
        end, skip.state = _row_end(block, 0, skip.state)
        part = block if end is None else block[:end]
        skip.breaks += part.count(b"\n")
        if end is None and not final:
            return b""
        self.skipping = None
        if end is None and skip.state in (_IN_QUOTES,):
            self.unclosed, self.ended = (skip.line, None), True
            return b""
        standin = self._stand_in(skip.breaks, part.endswith(b"\n"))
        if end is None:
            self.ended = True
            return standin
        return standin + self._feed(block[end:], final)

    def _feed(self, data: bytes, final: bool) -> bytes:
        """Deliver the complete rows at the start of `data`; hold or skip the rest."""
        # A \r at the end may be the first half of \r\n: it waits for the next block.
        stop = len(data) - (not final and data.endswith(b"\r"))
        out = []
        first = _ROW.match(data, 0, stop)
        start = 0
        if first is not None and first.end() > self.limit:
            row = data[: first.end()]
            out.append(self._stand_in(row.count(b"\n"), row.endswith(b"\n")))
            start = first.end()
        if data.find(b'"', start, stop) < 0:  # without quotes, every line break ends a row
            last = max(data.rfind(b"\n", start, stop), data.rfind(b"\r", start, stop))
            end = last + 1 if last >= 0 else start
        else:
            end = _match(_ROWS, data, start, stop)
        out.append(data[start:end])
        self.lines += data.count(b"\n", start, end)
        tail = data[end:]
        self.pending = b""
        if final:
            self.ended = True
            if tail and _LAST_ROW.fullmatch(tail) is None:
                self.unclosed = self._opening(tail)
            elif len(tail) > self.limit:
                out.append(self._stand_in(tail.count(b"\n"), False))
            else:
                out.append(tail)
        elif len(tail) > self.limit:
            _, state = _row_end(tail, 0, _START)
            self.skipping = _Skip(line=self.lines + 1, breaks=tail.count(b"\n"), state=state)
        else:
            self.pending = tail
        return b"".join(out)

    def _stand_in(self, breaks: int, ends_with_break: bool) -> bytes:
        """Return the stand-in for a row that held `breaks` line breaks, its own one included."""
        self.breaks.append(breaks - ends_with_break)
        self.lines += breaks
        return self.marker.encode() + b"\n"

    def _opening(self, row: bytes) -> tuple[int, int]:
        """Return the line and field where the quote left open in `row` (a last row) opens."""
        at = _match(_FIELDS, row, 0)
        fields = len(_FIELD_AND_COMMA.findall(row, 0, at))
        return self.lines + 1 + row.count(b"\n", 0, at), fields


@contextmanager
def _open_rows(path: Path, file: str, limit: int) -> Iterator[_Rows]:
    """Open the export `path` (gzipped if it ends in .gz) as rows of at most `limit` bytes."""
    opener: Any = gzip.open if file.endswith(".gz") else open
    with opener(path, "rb") as raw:
        yield _Rows(raw, limit)


def _unclosed_message(file: str, where: tuple[int, int | None], header: list[str]) -> str:
    """Say where a quoted value that is never closed opens."""
    line, position = where
    if position is None:
        column = ""  # the row was too long to be held, so where in it is not known
    elif position < len(header):
        column = f", column {_shown(header[position])}"
    else:
        column = f", column #{position + 1}"
    return f"{file}: line {line}{column}: a quoted value is never closed"


def _skipped_lines(caught: list[warnings.WarningMessage]) -> list[int]:
    """Return the parser's numbers of lines it skipped; pass on every other warning."""
    skipped: list[int] = []
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, pd.errors.ParserWarning):
            found = [int(m.group(1)) for m in _SKIPPED_LINE.finditer(text)]
            if found:
                skipped.extend(found)
                continue
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return skipped


class _LineCounter:
    """Turn row positions within a chunk into line numbers of the file.

    The parser numbers records (one per line, plus one per line it skipped) but not the lines inside
    quoted fields, so those line breaks are counted in the parsed values and added. A skipped line
    is assumed to hold no quoted line break: its own fields are never seen.
    """

    def __init__(self) -> None:
        self.rows = 0  # rows delivered by the parser before the current chunk
        self.breaks = 0  # line breaks inside quoted fields of those rows
        self.shifts: list[int] = []  # for the n-th skipped line, its parser number minus n-1
        # breaks inside the current chunk's rows before each position (one more entry than rows)
        self.before: IntArray = np.zeros(1, dtype=np.int64)

    def start(self, chunk: pd.DataFrame | None, rows: IntArray, breaks: IntArray) -> None:
        """Get ready to number the rows of `chunk`, the next one the parser delivered.

        The rows at positions `rows` stand for rows of the file that held `breaks` line breaks
        the parser never saw (rows too long to read).
        """
        counts = _breaks(chunk) if chunk is not None else np.empty(0, dtype=np.int64)
        counts[rows] += breaks
        self.before = np.concatenate(([0], np.cumsum(counts)))

    def skip(self, numbers: list[int]) -> IntArray:
        """Record lines the parser skipped (by its numbers) and return their line numbers."""
        found = np.empty(len(numbers), dtype=np.int64)
        for i, number in enumerate(numbers):
            shift = number - len(self.shifts)
            self.shifts.append(shift)
            # Rows delivered before this line: every parser number below it but the header.
            rows_before = min(max(shift - 2 - self.rows, 0), len(self.before) - 1)
            found[i] = number + self.breaks + self.before[rows_before]
        return found

    def lines(self, rows: IntArray) -> IntArray:
        """Return the line numbers of the current chunk's rows at positions `rows`."""
        parsed = self.rows + rows + 2
        parsed = parsed + np.searchsorted(np.asarray(self.shifts, dtype=np.int64), parsed, "right")
        return parsed + self.breaks + self.before[rows]

    def advance(self) -> None:
        """Move past the current chunk."""
        self.rows += len(self.before) - 1
        self.breaks += int(self.before[-1])


def _breaks(chunk: pd.DataFrame) -> IntArray:
    """Return how many line breaks each row holds inside its quoted fields."""
    counts = np.zeros(len(chunk), dtype=np.int64)
    for _, values in chunk.items():
        if "\n" in _joined(values):
            counts += values.str.count("\n").to_numpy(dtype=np.int64)
    return counts


def _joined(values: pd.Series) -> str:
    """Return a column's values as one string, so that one C-speed search covers them all."""
    return "".join(values.to_numpy(dtype=object))


def _undecodable(values: pd.Series) -> BoolArray | None:
    """Return which values hold bytes that are not UTF-8, or None if none does."""
    if _joined(values).isascii():
        return None
    bad = values.str.contains(_UNDECODABLE, regex=True).to_numpy(dtype=np.bool_)
    return bad if bad.any() else None


def _first_undecodable(
    chunk: pd.DataFrame, converted: _Converted, positions: _Positions, lines: _LineCounter
) -> str | None:
    """Say where the chunk's first row left out for bytes that are not UTF-8 is, and what."""
    first: tuple[int, str] | None = None
    for reason, rows in converted.problems.items():
        if reason.endswith(NOT_UTF8) and (first is None or rows[0] < first[0]):
            first = (int(rows[0]), reason.removesuffix(f" {NOT_UTF8}"))
    if first is None:
        return None
    row, name = first
    line = int(lines.lines(np.asarray([row], dtype=np.int64))[0])
    value = str(chunk[positions.of[name]].iloc[row])
    return f"at line {line}, column {_shown(name)}: {_raw_bytes(value)!r}"


@dataclass
class _Converted:
    """A chunk's columns in compact types, with the rows to leave out and why."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, IntArray] = field(default_factory=dict)  # reason → row positions
    problem_rows: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    untagged_rows: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@dataclass
class _Column:
    """One converted column: values (undefined where there is a problem) and its problems."""

    values: Any
    problems: dict[str, BoolArray]  # reason → mask
    empty: BoolArray  # value is empty after stripping


def _convert_chunk(
    chunk: pd.DataFrame,
    positions: _Positions,
    schema: Sequence[Column],
    early: Mapping[str, IntArray],
) -> _Converted:
    """Convert and check every known column; a row is reported once, for its first problem.

    `early` holds rows already known bad (reason → row positions), reported before any other.
    """
    converted = _Converted()
    taken = np.zeros(len(chunk), dtype=np.bool_)
    for reason, rows in early.items():
        converted.problems[reason] = rows
        taken[rows] = True
    for column in schema:
        if column.name not in positions.of:
            converted.values[column.name] = _absent(column, len(chunk))
            continue
        raw = chunk[positions.of[column.name]]
        result = _CONVERTERS[column.kind](raw, column)
        converted.values[column.name] = result.values
        problems = result.problems
        undecodable = _undecodable(raw)
        if undecodable is not None:
            # Bytes that are not UTF-8 come first: the value is not what the export held.
            problems = {f"{column.name} {NOT_UTF8}": undecodable, **problems}
        if column.empty_means_untagged:
            fresh = result.empty & ~taken
            if undecodable is not None:
                fresh &= ~undecodable
            converted.untagged_rows = np.flatnonzero(fresh)
            taken |= fresh
        for reason, mask in problems.items():
            fresh = mask & ~taken
            if fresh.any():
                converted.problems[reason] = np.flatnonzero(fresh)
                taken |= fresh
    found = list(converted.problems.values())
    converted.problem_rows = np.sort(np.concatenate(found)) if found else converted.problem_rows
    return converted


def _blank_rows(chunk: pd.DataFrame, candidates: IntArray) -> IntArray:
    """Return which of the rows `candidates` are blank lines (every field empty)."""
    if not len(candidates):
        return candidates
    empty = (chunk.iloc[candidates] == "").all(axis=1).to_numpy(dtype=np.bool_)
    return candidates[empty]


def _handles(raw: pd.Series, column: Column) -> _Column:
    """Parse non-negative integers written in ASCII digits, such as user handles."""
    clean = _plain_integers(raw)
    if clean is not None:
        nothing = np.zeros(len(raw), dtype=np.bool_)
        values: Any = clean if column.required else pd.arrays.IntegerArray(clean, nothing)
        return _Column(values, {}, nothing)
    text = raw.str.strip()
    empty = (text == "").to_numpy(dtype=np.bool_)
    digits = (text.str.isascii() & text.str.isdigit()).to_numpy(dtype=np.bool_)
    fits = digits & _fits_int64(text)
    numbers = np.zeros(len(raw), dtype=np.int64)
    numbers[fits] = text[fits].astype(np.int64).to_numpy()
    negative = ~digits & ~empty & text.str.fullmatch(r"-[0-9]+").to_numpy(dtype=np.bool_)
    problems = {
        f"{column.name} is negative": negative,
        f"{column.name} is too large": digits & ~fits,
        f"{column.name} is not an integer": ~digits & ~empty & ~negative,
    }
    if column.required:
        return _Column(numbers, {f"{column.name} is empty": empty, **problems}, empty)
    return _Column(pd.arrays.IntegerArray(numbers, empty), problems, empty)


def _plain_integers(raw: pd.Series) -> IntArray | None:
    """Return the values as int64 if every one is plain ASCII digits that fit, else None."""
    joined = _joined(raw)
    # One C-speed test on the joined text rules out signs, spaces, points and non-ASCII digits,
    # which Python's int() would otherwise accept; an empty value or an overflow raises below.
    if not (joined.isascii() and joined.isdigit()):
        return None
    try:
        return np.asarray(raw.astype(np.int64), dtype=np.int64)
    except (ValueError, OverflowError):
        return None


def _fits_int64(text: pd.Series) -> BoolArray:
    """Return which digit strings are at most the largest int64."""
    length = text.str.len().to_numpy(dtype=np.int64)
    fits = length < len(_INT64_MAX)
    same = length == len(_INT64_MAX)
    if same.any():
        # Strings of equal length compare like the numbers they spell.
        fits[same] = (text[same] <= _INT64_MAX).to_numpy(dtype=np.bool_)
    return fits


def _amounts(raw: pd.Series, column: Column) -> _Column:
    """Parse finite non-negative numbers, such as seconds and scores."""
    values = _numbers(raw)
    # Adding zero turns -0.0 into 0.0, so "-0" reads like "0".
    values = values + 0.0
    finite = np.isfinite(values)
    ok = finite & (values >= 0) & (values <= MAX_AMOUNT)
    empty = np.zeros(len(raw), dtype=np.bool_)
    problems: dict[str, BoolArray] = {}
    if not ok.all():
        empty = (raw.str.strip() == "").to_numpy(dtype=np.bool_)
        number = ~np.isnan(values)
        problems = {
            f"{column.name} is not a number": ~number & ~empty,
            f"{column.name} is not finite": number & ~finite,
            f"{column.name} is negative": finite & (values < 0),
            f"{column.name} is too large": finite & (values > MAX_AMOUNT),
        }
        if column.required:
            problems = {f"{column.name} is empty": empty, **problems}
    return _Column(values, problems, empty)


def _reals(raw: pd.Series, column: Column) -> _Column:
    """Parse finite numbers of either sign, such as survey answers and the ends of a scale."""
    values = _numbers(raw) + 0.0
    finite = np.isfinite(values)
    inside = finite & (np.abs(values) <= MAX_AMOUNT)
    empty = np.zeros(len(raw), dtype=np.bool_)
    problems: dict[str, BoolArray] = {}
    if not inside.all():
        empty = (raw.str.strip() == "").to_numpy(dtype=np.bool_)
        number = ~np.isnan(values)
        problems = {
            f"{column.name} is not a number": ~number & ~empty,
            f"{column.name} is not finite": number & ~finite,
            f"{column.name} is out of range": finite & ~inside,
        }
        if column.required:
            problems = {f"{column.name} is empty": empty, **problems}
    return _Column(values, problems, empty)


def _flags(raw: pd.Series, column: Column) -> _Column:
    """Parse true/false, yes/no or 1/0, in any case, as booleans."""
    codes, distinct = pd.factorize(raw)
    words = pd.Series(distinct, dtype=object).str.strip().str.lower()
    truth = words.isin(_TRUE).to_numpy(dtype=np.bool_)[codes]
    known = (words.isin(_TRUE) | words.isin(_FALSE)).to_numpy(dtype=np.bool_)[codes]
    empty = (words == "").to_numpy(dtype=np.bool_)[codes]
    problems = {f"{column.name} is not true or false": ~known & ~empty}
    if column.required:
        problems = {f"{column.name} is empty": empty, **problems}
    return _Column(truth, problems, empty)


def _numbers(raw: pd.Series) -> FloatArray:
    """Return the values as float64, NaN where a value is not a number."""
    # Plain decimal text converts about twice as fast with astype as with to_numeric; the
    # character test keeps out what only Python's float() would accept ("1_000", "nan", " 7").
    if _PLAIN_NUMBER.fullmatch(_joined(raw)):
        try:
            return np.asarray(raw.astype(np.float64), dtype=np.float64)
        except ValueError:
            pass
    return np.asarray(pd.to_numeric(raw, errors="coerce"), dtype=np.float64)


def _dates(raw: pd.Series, column: Column) -> _Column:
    """Parse ISO 8601 dates and times; those with an offset are converted to UTC."""
    parsed = _iso_dates(raw)
    if not parsed.isna().any():
        try:
            values = parsed.dt.tz_convert(None).astype("datetime64[ns]").to_numpy()
            return _Column(values, {}, np.zeros(len(raw), dtype=np.bool_))
        except pd.errors.OutOfBoundsDatetime:
            pass
    # Only a dirty chunk pays for stripping and range checks; a clean one returned above.
    naive = _iso_dates(raw.str.strip()).dt.tz_convert(None)
    known = naive.notna().to_numpy(dtype=np.bool_)
    # datetime64[ns] spans 1677-09-21 to 2262-04-11; pandas itself parses a wider range.
    inside = ((naive >= pd.Timestamp.min) & (naive <= pd.Timestamp.max)).to_numpy(dtype=np.bool_)
    in_range = known & inside
    values = naive.where(in_range).astype("datetime64[ns]").to_numpy()
    empty = (raw.str.strip() == "").to_numpy(dtype=np.bool_)
    problems = {
        f"{column.name} is not a date": ~known & ~empty,
        f"{column.name} is out of range": known & ~in_range,
    }
    if column.required:
        problems = {f"{column.name} is empty": empty, **problems}
    return _Column(values, problems, empty)


def _iso_dates(text: pd.Series) -> pd.Series:
    """Parse ISO 8601 text to UTC timestamps, NaT where it is not a date."""
    return pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)


def _tags(raw: pd.Series, column: Column) -> _Column:
    """Turn tags into categories, trimmed and lower-cased; a tag is one token, never split."""
    return _categories(raw, column, lower=True)


def _texts(raw: pd.Series, column: Column) -> _Column:
    """Turn identifiers and labels into categories, trimmed but with their case kept."""
    return _categories(raw, column, lower=False)


def _categories(raw: pd.Series, column: Column, *, lower: bool) -> _Column:
    """Return `raw` as a categorical of its normalised values; empty values become missing."""
    # Normalising the distinct values only, then mapping codes, is far cheaper than row by row.
    codes, distinct = pd.factorize(raw)
    names = distinct.str.strip()
    if lower:
        names = names.str.lower()
    merged, categories = pd.factorize(names.where(names != "", None))
    row_codes = merged[codes] if len(codes) else codes
    empty = row_codes == -1
    values = pd.Categorical.from_codes(row_codes, categories=categories)
    problems: dict[str, BoolArray] = {}
    if column.required and not column.empty_means_untagged:
        problems = {f"{column.name} is empty": empty}
    return _Column(values, problems, empty)


_CONVERTERS = {
    "handle": _handles,
    "tag": _tags,
    "text": _texts,
    "date": _dates,
    "amount": _amounts,
    "number": _reals,
    "flag": _flags,
}


def _absent(column: Column, rows: int) -> Any:
    """Return an all-missing column for an optional column the file does not have."""
    if column.kind == "handle":
        return pd.arrays.IntegerArray(np.zeros(rows, np.int64), np.ones(rows, np.bool_))
    if column.kind in ("tag", "text"):
        return pd.Categorical.from_codes(
            np.full(rows, -1, np.int64), categories=pd.Index([], dtype=str)
        )
    if column.kind == "date":
        return np.full(rows, np.datetime64("NaT"), dtype="datetime64[ns]")
    if column.kind == "flag":
        return np.zeros(rows, dtype=np.bool_)  # only for a file of no rows: flags are required
    return np.full(rows, np.nan, dtype=np.float64)


def _join(pieces: list[dict[str, Any]], schema: Sequence[Column]) -> pd.DataFrame:
    """Concatenate converted chunks into one frame with the schema's columns and dtypes."""
    if not pieces:
        pieces = [{column.name: _absent(column, 0) for column in schema}]
    columns: dict[str, Any] = {}
    for column in schema:
        parts = [piece[column.name] for piece in pieces]
        if column.kind in ("tag", "text"):
            columns[column.name] = union_categoricals(parts)
        elif column.kind == "handle" and not column.required:
            columns[column.name] = pd.concat([pd.Series(p) for p in parts], ignore_index=True)
        else:
            columns[column.name] = np.concatenate(parts)
    return pd.DataFrame(columns)


def _drop_unused_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop categories held only by rows that were left out, so categories count real values."""
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].cat.remove_unused_categories()
    return frame


class Rejections:
    """Rejected rows by reason: how many, and the first MAX_LINES_KEPT lines, in bounded memory."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.lines: dict[str, IntArray] = {}

    def add(self, reason: str, lines: IntArray) -> None:
        """Record rows left out for `reason`, at `lines`."""
        if not len(lines):
            return
        self.counts[reason] = self.counts.get(reason, 0) + len(lines)
        held = self.lines.get(reason)
        joined = np.sort(lines if held is None else np.concatenate((held, lines)))
        self.lines[reason] = joined[:MAX_LINES_KEPT]

    def add_counted(self, reason: str, count: int, lines: IntArray) -> None:
        """Record `count` rows left out for `reason`, of which `lines` are some (a reader that
        counts more rows than it keeps lines of, as Spark's does)."""
        if not 0 < len(lines) <= count:
            raise ValueError(f"{count} rows rejected for {reason!r} with {len(lines)} lines kept")
        self.add(reason, lines)
        self.counts[reason] += count - len(lines)

    def total(self) -> int:
        """Return how many rows were left out."""
        return sum(self.counts.values())

    def first(self) -> tuple[str, IntArray]:
        """Return the reason found on the earliest line, and its lines."""
        return min(self.lines.items(), key=lambda item: int(item[1][0]))

    def rows(self, file: str) -> tuple[RejectedRows, ...]:
        """Return one RejectedRows per reason, in order of the first line each was found on."""
        found = [
            RejectedRows(
                file=file,
                reason=reason,
                lines=tuple(int(line) for line in lines),
                count=self.counts[reason],
            )
            for reason, lines in self.lines.items()
        ]
        return tuple(sorted(found, key=lambda rows: rows.lines[0]))


def _line_list(rows: RejectedRows) -> str:
    """Return 'line 7' or 'lines 7, 9, ... and N more' for a report."""
    shown = ", ".join(str(line) for line in rows.lines[:_LINES_SHOWN])
    more = rows.count - min(len(rows.lines), _LINES_SHOWN)
    word = "line" if rows.count == 1 else "lines"
    return f"{word} {shown}" + (f" and {more:,} more" if more else "")


def _plural(count: int, noun: str) -> str:
    """Return '1 row' or '3 rows'."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _shown(name: str) -> str:
    """Return a column name quoted for a message, with undecodable bytes made visible."""
    return "'" + name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") + "'"


def _raw_bytes(value: str) -> bytes:
    """Return the bytes a value was decoded from, cut short for a message."""
    return value.encode("utf-8", "surrogateescape")[:40]
