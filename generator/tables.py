"""Read the platform's CSV exports into compact, validated tables, reporting every row left out.

This is the project's only CSV reader. A file is read in chunks of plain strings; each chunk is
checked with vectorised tests and converted to compact types (int64 handles, category tags and ids,
datetime64[ns] dates, float64 amounts) before the chunks are joined, so memory follows the compact
size of a table rather than the size of its text. A row is left out only for a reason that names a
column, and the report says which lines of the file those rows were on (the header is line 1).
"""

from __future__ import annotations

import gzip
import logging
import re
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.types import union_categoricals

from similarity.models import SIGNALS

__all__ = [
    "MAX_AMOUNT",
    "MAX_LINES_KEPT",
    "SCHEMAS",
    "TABLE_NAMES",
    "Column",
    "LoadReport",
    "RejectedRows",
    "TableError",
    "TableRead",
    "Tables",
    "column_names",
    "file_name",
    "load_tables",
    "read_table",
]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
Kind = Literal["handle", "tag", "text", "date", "amount"]


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


# The real export's column names; aliases are the spellings of the platform's written description.
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
}
TABLE_NAMES: tuple[str, ...] = tuple(SCHEMAS)


def file_name(table: str) -> str:
    """Return the name of table `table`'s export file, such as `user_interests.csv`."""
    return f"{table}.csv"


def column_names(table: str) -> tuple[str, ...]:
    """Return the real names of table `table`'s columns, in the export's order."""
    return tuple(column.name for column in SCHEMAS[table])


def models_fed(name: str) -> str:
    """Say which models read table `name`, as the model registry's `needs` tell."""
    handles = [handle for handle, model in SIGNALS.items() if name in model.needs]
    if len(handles) == 1:
        return f"the {handles[0]} model"
    return f"the {', '.join(handles[:-1])} and {handles[-1]} models"


# The largest view time or score kept. Far above any real one (1e12 s is 31,000 years), and low
# enough that sums of millions of them stay finite in the models' float32 matrices; a larger
# amount would overflow there to infinity and stop the run or corrupt every similarity it touches.
MAX_AMOUNT = 1e12
# A table where every row is bad must not turn into a list of millions of Python ints.
MAX_LINES_KEPT = 10_000
_LINES_SHOWN = 10
_INT64_MAX = str(np.iinfo(np.int64).max)
# Bytes that are not UTF-8 are decoded with "surrogateescape" into these code points, so that they
# can be found and reported with their line instead of being silently replaced.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_PLAIN_NUMBER = re.compile(r"[0-9.eE+-]*")
# pandas names each line it skips only in the text of a ParserWarning; its number counts records
# (header = 1, blank lines included), not the line breaks inside quoted fields.
_SKIPPED_LINE = re.compile(r"Skipping line (\d+): expected \d+ fields, saw \d+")
_TOO_MANY_FIELDS = "the row has more fields than the header"
_SHIFTED_HEADER = "Length of header or names does not match length of data"
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
}


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

    @property
    def rows_rejected(self) -> int:
        """Return how many rows were left out as invalid."""
        return sum(r.count for r in self.rejected)


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
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, read: TableRead) -> None:
        """Record what reading table `name` did."""
        self.files[name] = read.file
        self.rows_read[name] = read.rows_read
        self.rows_kept[name] = len(read.frame)
        self.duplicates[name] = read.duplicates
        self.rejected.extend(read.rejected)
        self.courses_without_tags += read.courses_without_tags
        self.seconds[name] = read.seconds

    def summary(self) -> list[str]:
        """Return human-readable lines saying what was read, left out and missing."""
        lines: list[str] = []
        for name in TABLE_NAMES:
            if name in self.missing:
                lines.append(f"{name}.csv: not found, so {models_fed(name)} cannot be built")
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
        return lines


@dataclass(frozen=True, eq=False)
class Tables:
    """The four exports as DataFrames named as their files (None where missing), and the report."""

    user_interests: pd.DataFrame | None
    user_course_views: pd.DataFrame | None
    user_assessment_scores: pd.DataFrame | None
    course_tags: pd.DataFrame | None
    report: LoadReport


def load_tables(data_dir: Path, chunk_rows: int = 1_000_000) -> Tables:
    """Read every export in `data_dir`; raise TableError if there is none or one is unusable."""
    if not data_dir.is_dir():
        raise TableError(f"{data_dir}: no such directory")
    paths = {name: _find_file(data_dir, name) for name in TABLE_NAMES}
    if all(path is None for path in paths.values()):
        expected = ", ".join(f"{name}.csv" for name in TABLE_NAMES)
        raise TableError(
            f"{data_dir}: none of the exports is there (expected {expected}, or .csv.gz)"
        )
    report = LoadReport()
    frames: dict[str, pd.DataFrame | None] = {}
    for name, path in paths.items():
        if path is None:
            log.warning(
                "%s.csv not found in %s: %s cannot be built", name, data_dir, models_fed(name)
            )
            report.missing.append(name)
            frames[name] = None
            continue
        read = read_table(path, name, chunk_rows)
        report.add(name, read)
        frames[name] = read.frame
    return Tables(**frames, report=report)


def read_table(path: Path, name: str, chunk_rows: int = 1_000_000) -> TableRead:
    """Read the export `path` as table `name` (a key of SCHEMAS), `chunk_rows` rows at a time."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLE_NAMES)}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    started = time.perf_counter()
    schema = SCHEMAS[name]
    file = path.name
    positions = _locate_columns(_read_header(path, file), schema, file)
    lines = _LineCounter()
    pieces: list[dict[str, Any]] = []
    rejected: dict[str, list[IntArray]] = {}
    rows_read = untagged = 0
    for chunk, skipped in _chunks(path, file, chunk_rows, len(positions.header)):
        lines.start(chunk)
        if skipped:
            rejected.setdefault(_TOO_MANY_FIELDS, []).append(lines.skip(skipped))
            rows_read += len(skipped)
        if chunk is None:
            continue
        _check_encoding(chunk, positions.header, file, lines)
        converted = _convert_chunk(chunk, positions, schema)
        blank = _blank_rows(chunk, converted.problem_rows)
        for reason, rows in converted.problems.items():
            rows = np.setdiff1d(rows, blank, assume_unique=True)
            if len(rows):
                rejected.setdefault(reason, []).append(lines.lines(rows))
        keep = np.ones(len(chunk), dtype=np.bool_)
        keep[converted.problem_rows] = False
        keep[converted.untagged_rows] = False
        pieces.append({c: values[keep] for c, values in converted.values.items()})
        rows_read += len(chunk) - len(blank)
        untagged += len(converted.untagged_rows)
        lines.advance()
    frame = _join(pieces, schema)
    duplicated = frame.duplicated().to_numpy()
    duplicates = int(duplicated.sum())
    if duplicates:
        frame = frame.loc[~duplicated].reset_index(drop=True)
    frame = _drop_unused_categories(frame)
    read = TableRead(
        frame=frame,
        file=file,
        rows_read=rows_read,
        duplicates=duplicates,
        rejected=_rejected_rows(file, rejected),
        courses_without_tags=untagged,
        seconds=time.perf_counter() - started,
    )
    log.info(
        "%s: %d rows read, %d kept, %d duplicates, %d rejected in %.2f s",
        file,
        read.rows_read,
        len(read.frame),
        read.duplicates,
        read.rows_rejected,
        read.seconds,
    )
    return read


def _find_file(data_dir: Path, name: str) -> Path | None:
    """Return the export of table `name` in `data_dir`, plain or gzipped, or None."""
    found = [p for p in (data_dir / f"{name}.csv", data_dir / f"{name}.csv.gz") if p.is_file()]
    if len(found) > 1:
        # Picking one silently could load a stale copy; the operator has to choose.
        raise TableError(f"{data_dir}: both {name}.csv and {name}.csv.gz are there; keep one")
    return found[0] if found else None


def _read_header(path: Path, file: str) -> list[str]:
    """Return the column names of the header line exactly as written."""
    try:
        first = pd.read_csv(path, header=None, nrows=1, on_bad_lines="skip", **_READ_OPTIONS)
    except pd.errors.EmptyDataError as error:
        raise TableError(f"{file}: the file is empty (no header line)") from error
    except pd.errors.ParserError as error:
        raise TableError(f"{file}: line 1 cannot be read as CSV ({error})") from error
    except _UNREADABLE as error:
        raise TableError(f"{file}: cannot be read ({error})") from error
    names = [str(value) for value in first.iloc[0]] if len(first) else []
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


def _locate_columns(header: list[str], schema: Sequence[Column], file: str) -> _Positions:
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
    path: Path, file: str, chunk_rows: int, width: int
) -> Iterator[tuple[pd.DataFrame | None, list[int]]]:
    """Yield chunks of string columns 0..width-1, each with the parser lines skipped before it."""
    try:
        with pd.read_csv(
            path, chunksize=chunk_rows, on_bad_lines="warn", **_READ_OPTIONS
        ) as reader:
            while True:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", pd.errors.ParserWarning)
                    chunk: pd.DataFrame | None = next(reader, None)
                skipped = _skipped_lines(caught, file)
                if chunk is None:
                    if skipped:
                        yield None, skipped
                    return
                chunk.columns = pd.RangeIndex(width)
                yield chunk, skipped
    except pd.errors.ParserError as error:
        raise TableError(f"{file}: cannot be read as CSV{_parser_problem(path, error)}") from error
    except _UNREADABLE as error:
        raise TableError(f"{file}: cannot be read ({error})") from error


def _parser_problem(path: Path, error: pd.errors.ParserError) -> str:
    """Return where and why the CSV parser gave up, as the end of a message."""
    if "EOF inside string" in str(error):
        opened = _unclosed_quote(path)
        if opened is not None:
            line, position, header = opened
            column = _shown(header[position]) if position < len(header) else f"#{position + 1}"
            return f": line {line}, column {column}: a quoted value is never closed"
    return f" ({error})"


def _unclosed_quote(path: Path) -> tuple[int, int, list[str]] | None:
    """Return the line and field where a quote that is never closed opens, and the header fields.

    Only called once parsing has failed, so a plain scan is fine: a line without quotes costs one
    C-speed count, and only lines that leave a quote open are looked at character by character.
    """
    opened: tuple[int, int] | None = None
    header: list[str] = []
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="surrogateescape") as handle:
        for number, text in enumerate(handle, start=1):
            if number == 1:
                header = text.rstrip("\r\n").split(",")
            if text.count('"') % 2 == 0:
                continue  # the line leaves the quoting state as it found it
            if opened is not None:
                opened = None  # it closes the quote left open by an earlier line
                continue
            field, quoted = 0, False
            for char in text:
                if char == '"':
                    quoted = not quoted
                elif char == "," and not quoted:
                    field += 1
            opened = (number, field)
    return None if opened is None else (*opened, header)


def _skipped_lines(caught: list[warnings.WarningMessage], file: str) -> list[int]:
    """Return the parser's numbers of lines it skipped; pass on every other warning."""
    skipped: list[int] = []
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, pd.errors.ParserWarning):
            if _SHIFTED_HEADER in text:
                # pandas then cuts every row to the header's width, so no row can be trusted.
                raise TableError(
                    f"{file}: line 2 has more fields than the header (line 1); "
                    "check the delimiter and quoting"
                )
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

    def start(self, chunk: pd.DataFrame | None) -> None:
        """Get ready to number the rows of `chunk`, the next one the parser delivered."""
        counts = _breaks(chunk) if chunk is not None else np.empty(0, dtype=np.int64)
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


def _check_encoding(chunk: pd.DataFrame, header: list[str], file: str, lines: _LineCounter) -> None:
    """Raise TableError at the earliest value holding bytes that are not UTF-8."""
    # A file in another encoding is wrong as a whole, so it stops the run instead of losing rows.
    first: tuple[int, int] | None = None  # (row, column position)
    for position in range(chunk.shape[1]):
        values = chunk[position]
        if _joined(values).isascii():
            continue
        bad = values.str.contains(_UNDECODABLE, regex=True).to_numpy(dtype=np.bool_)
        if bad.any() and (first is None or int(np.argmax(bad)) < first[0]):
            first = (int(np.argmax(bad)), position)
    if first is not None:
        row, position = first
        line = int(lines.lines(np.asarray([row], dtype=np.int64))[0])
        raise TableError(
            f"{file}: line {line}, column {_shown(header[position])}: bytes that are not UTF-8 "
            f"({_raw_bytes(str(chunk[position].iloc[row]))!r}); export the file as UTF-8"
        )


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
    chunk: pd.DataFrame, positions: _Positions, schema: Sequence[Column]
) -> _Converted:
    """Convert and check every known column; a row is reported once, for its first problem."""
    converted = _Converted()
    taken = np.zeros(len(chunk), dtype=np.bool_)
    for column in schema:
        if column.name not in positions.of:
            converted.values[column.name] = _absent(column, len(chunk))
            continue
        raw = chunk[positions.of[column.name]]
        result = _CONVERTERS[column.kind](raw, column)
        converted.values[column.name] = result.values
        if column.empty_means_untagged:
            fresh = result.empty & ~taken
            converted.untagged_rows = np.flatnonzero(fresh)
            taken |= fresh
        for reason, mask in result.problems.items():
            fresh = mask & ~taken
            if fresh.any():
                converted.problems[reason] = np.flatnonzero(fresh)
                taken |= fresh
    problems = list(converted.problems.values())
    converted.problem_rows = (
        np.sort(np.concatenate(problems)) if problems else converted.problem_rows
    )
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


def _rejected_rows(file: str, rejected: dict[str, list[IntArray]]) -> tuple[RejectedRows, ...]:
    """Return one RejectedRows per reason, in order of the first line each reason was found on."""
    found = []
    for reason, parts in rejected.items():
        lines = np.sort(np.concatenate(parts))
        found.append(
            RejectedRows(
                file=file,
                reason=reason,
                lines=tuple(int(line) for line in lines[:MAX_LINES_KEPT]),
                count=len(lines),
            )
        )
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
