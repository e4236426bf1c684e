"""Read an export with Spark's CSV reader, checked by the local loader's rules.

The rules are `generator.tables`': its schemas (names, aliases, kinds), its row conversion and
checks (`convert_rows`, run on every partition), its checks across rows (`finish_table`) and its
limits. Each line keeps its number (the header is line 1), so a rejected row is reported at its
line as the local loader reports it. What differs:

- A record is a line: a quoted field with a line break inside is not joined to the next line
  (the real exports have none; the local loader reads them).
- Spark decodes bytes that are not UTF-8 as U+FFFD, so a value holding U+FFFD is reported as
  holding bytes that are not UTF-8.

The three large tables (interests, course views, assessment scores) stay distributed; the
catalogue (course_tags) and the survey (questions, user_answers) are finished on the driver with
`finish_table` itself: the catalogue is small, and the survey model is fitted there.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from generator.tables import (
    MAX_LINES_KEPT,
    NOT_UTF8,
    SCHEMAS,
    SURVEY_TABLES,
    TABLE_NAMES,
    TOO_LONG,
    TOO_MANY_FIELDS,
    Limits,
    LoadReport,
    Rejections,
    TableError,
    TableRead,
    check_rejected_share,
    convert_rows,
    file_name,
    finish_table,
    locate_columns,
)

log = logging.getLogger(__name__)

# The tables that stay distributed; the others are finished on the driver.
DISTRIBUTED = ("user_interests", "user_course_views", "user_assessment_scores")
LINE = "_line"  # the line of a row in its file (the header is line 1)
_STATUS, _REASON = "_status", "_reason"
_KEPT, _REJECTED, _BLANK, _UNTAGGED = 0, 1, 2, 3
# Every line gets this field after its own: where Spark finds it tells how many fields the line
# has (Spark pads a short line with nulls, drops a long line's extra fields, reads "" as null).
_END = "\u0002"
_END_COLUMN = "_end"
_UNCLOSED = "a quote opened in the row is not closed"
_SPARK_TYPES = {
    "handle": "bigint",
    "tag": "string",
    "text": "string",
    "date": "bigint",  # nanoseconds since 1970 (UTC), as datetime64[ns] holds them
    "amount": "double",
    "number": "double",
    "flag": "boolean",
}


@dataclass(frozen=True, eq=False)
class SparkTables:
    """An export as Spark read it: the large tables as Spark DataFrames (their schema's columns
    and `LINE`, duplicates removed), the small ones as the local loader's DataFrames."""

    user_interests: Any
    user_course_views: Any
    user_assessment_scores: Any
    course_tags: pd.DataFrame | None
    report: LoadReport
    user_answers: pd.DataFrame | None = None
    questions: pd.DataFrame | None = None


def read_export(spark: Any, location: str, limits: Limits | None = None) -> SparkTables:
    """Read every export file at `location` (a folder, or a URI Spark reads such as s3://)."""
    limits = limits or Limits()
    uris = {name: _find(spark, location, name) for name in TABLE_NAMES}
    if all(uri is None for uri in uris.values()):
        expected = ", ".join(f"{name}.csv" for name in TABLE_NAMES)
        raise TableError(
            f"{location}: none of the exports is there (expected {expected}, or .csv.gz)"
        )
    report = LoadReport()
    frames: dict[str, Any] = {}
    reads: dict[str, TableRead] = {}
    for name in sorted(TABLE_NAMES, key=lambda table: table == "user_answers"):
        uri = uris[name]
        if uri is None:
            report.missing.append(name)
            frames[name] = None
            continue
        frame, read = _read_table(spark, uri, name, limits, reads.get("questions"))
        frames[name], reads[name] = frame, read
    report.missing.sort(key=TABLE_NAMES.index)
    for name, read in sorted(reads.items(), key=lambda item: TABLE_NAMES.index(item[0])):
        report.add(name, read)
    missing_survey = [n for n in SURVEY_TABLES if n in report.missing]
    if len(missing_survey) == 1:
        log.warning("%s not found in %s", file_name(missing_survey[0]), location)
    return SparkTables(**frames, report=report)


def _find(spark: Any, location: str, name: str) -> str | None:
    """Return the URI of table `name`'s file at `location` (plain or gzipped), or None."""
    base = location.rstrip("/")
    found = [uri for uri in (f"{base}/{name}.csv", f"{base}/{name}.csv.gz") if _exists(spark, uri)]
    if len(found) > 1:
        raise TableError(f"{location}: both {name}.csv and {name}.csv.gz are there; keep one")
    return found[0] if found else None


def _exists(spark: Any, uri: str) -> bool:
    """Tell whether a file exists, through Hadoop's file systems (local, s3 on a cluster)."""
    if "://" not in uri:
        return Path(uri).is_file()
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    system = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return bool(system.exists(path) and system.getFileStatus(path).isFile())


def _read_table(
    spark: Any, uri: str, name: str, limits: Limits, questions: TableRead | None
) -> tuple[Any, TableRead]:
    """Read one file: its rows converted and checked on the executors, the report on the driver."""
    started = time.perf_counter()
    sc = spark.sparkContext
    file = uri.rsplit("/", 1)[-1]
    lines = sc.textFile(uri)
    header = _header(lines, file, limits)
    positions = locate_columns(header, SCHEMAS[name], file).of
    width = len(header)
    # Kept while the file is read: its lines are counted, converted and reported from one read.
    numbered = lines.zipWithIndex().filter(lambda pair: pair[1] > 0).persist()
    limit = limits.max_row_bytes

    def too_long(pair: tuple[str, int]) -> bool:
        text = pair[0]
        return len(text) + 1 > limit // 4 and len(text.encode("utf-8", "replace")) + 1 > limit

    # A row longer than the limit is left out unread, as the local loader leaves it.
    long_lines = numbered.filter(too_long).map(lambda pair: pair[1] + 1)
    text = numbered.filter(lambda pair: not too_long(pair)).map(
        lambda pair: f"{pair[1] + 1},{pair[0]},{_END}"
    )
    fields = ", ".join(f"c{i} string" for i in range(width))
    raw = (
        spark.read.schema(f"{LINE} bigint, {fields}, {_END_COLUMN} string")
        .option("header", False)
        .option("escape", '"')
        .option("mode", "PERMISSIVE")
        .csv(text)
    )
    schema = SCHEMAS[name]
    out = ", ".join(
        [f"{LINE} bigint", f"{_STATUS} int", f"{_REASON} string"]
        + [f"`{c.name}` {_SPARK_TYPES[c.kind]}" for c in schema]
    )
    converted = raw.mapInPandas(_converter(name, positions, width), out).persist()
    rejected, rows_read, untagged = _report(converted, long_lines, limit)
    kept = converted.filter(f"{_STATUS} = {_KEPT}").select(LINE, *[c.name for c in schema])
    superseded = 0
    if name in DISTRIBUTED:
        columns = [c.name for c in schema]
        frame = kept.groupBy(*columns).agg({LINE: "min"}).withColumnRenamed(f"min({LINE})", LINE)
        frame = frame.persist()
        kept_rows = int(frame.count())
        duplicates = int(kept.count()) - kept_rows
    else:
        local = local_frame(kept.toPandas().sort_values(LINE, kind="stable"), name)
        lines_of = local.pop(LINE).to_numpy(dtype=np.int64)
        frame, duplicates, superseded = finish_table(
            name, local.reset_index(drop=True), lines_of, rejected, limits, questions
        )
        kept_rows = len(frame)
    converted.unpersist()
    numbered.unpersist()
    check_rejected_share(file, rows_read, rejected, limits, _first_undecodable(rejected))
    read = TableRead(
        # A distributed table stays on the executors: the report only counts its rows.
        frame=frame if name not in DISTRIBUTED else pd.DataFrame(index=range(kept_rows)),
        file=file,
        rows_read=rows_read,
        duplicates=duplicates,
        rejected=rejected.rows(file),
        courses_without_tags=untagged,
        seconds=time.perf_counter() - started,
        superseded=superseded,
    )
    read.log("Spark")
    return frame, read


def _header(lines: Any, file: str, limits: Limits) -> list[str]:
    """Return the header's column names as written."""
    first = lines.take(1)
    if not first:
        raise TableError(f"{file}: the file is empty (no header line)")
    if len(first[0].encode("utf-8", "replace")) + 1 > limits.max_row_bytes:
        raise TableError(
            f"{file}: line 1 (the header) is longer than {limits.max_row_bytes:,} bytes "
            "(MAX_ROW_BYTES); not a CSV export"
        )
    return next(csv.reader([first[0]]))


def _converter(name: str, positions: dict[str, int], width: int) -> Any:
    """Return the function each partition's rows go through: the local loader's conversion."""
    schema = SCHEMAS[name]

    def convert(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield _convert_batch(batch, name, schema, positions, width)

    return convert


def _convert_batch(
    batch: pd.DataFrame, name: str, schema: Any, positions: dict[str, int], width: int
) -> pd.DataFrame:
    """Convert one batch of lines; every line comes out, kept or with why it was not."""
    fields = batch[[*(f"c{i}" for i in range(width)), _END_COLUMN]].to_numpy(dtype=object)
    ends = fields == _END
    found = ends.any(axis=1)
    end = np.where(found, ends.argmax(axis=1), width + 1)
    # A line of fewer fields than the header reads as if the missing ones were empty.
    fields[np.arange(width + 1)[None, :] >= end[:, None]] = None
    chunk = pd.DataFrame(fields[:, :width]).fillna("").astype(object)
    for column in chunk.columns:
        values = chunk[column]
        # Spark decoded bytes that are not UTF-8 as U+FFFD: made the surrogate the local loader
        # finds them by, so the row is reported with the same reason.
        if values.str.contains("\ufffd", regex=False).any():
            chunk[column] = values.str.replace("\ufffd", "\udcff", regex=False)
    # Not found: pushed past the columns read by a field too many (there is then a value where
    # the end belongs), or swallowed by a quote never closed (nothing there).
    past = batch[_END_COLUMN].notna().to_numpy()
    many = np.flatnonzero(~found & past)
    unclosed = np.flatnonzero(~found & ~past)
    early = {reason: rows for reason, rows in ((TOO_MANY_FIELDS, many), (_UNCLOSED, unclosed))}
    early = {reason: rows for reason, rows in early.items() if len(rows)}
    rows = convert_rows(chunk, name, positions, early)
    status = np.full(len(batch), _KEPT, dtype=np.int32)
    reason = np.full(len(batch), None, dtype=object)
    for why, at in rows.problems.items():
        status[at], reason[at] = _REJECTED, why
    status[rows.blank], status[rows.untagged] = _BLANK, _UNTAGGED
    kept = status == _KEPT
    out = {LINE: batch[LINE].to_numpy(), _STATUS: status, _REASON: reason}
    for column in schema:
        out[column.name] = _spark_values(rows.values[column.name], column.kind, kept)
    return pd.DataFrame(out)


def _spark_values(values: Any, kind: str, kept: np.ndarray) -> Any:
    """Return converted values as Spark takes them; None where a row is not kept."""
    if kind in ("tag", "text"):
        names = np.asarray(pd.Categorical(values).astype(object), dtype=object)
        names[~kept | pd.isna(names)] = None
        return names
    if kind == "handle":
        series = pd.array(values, dtype="Int64")
        series[~kept] = pd.NA
        return series
    if kind == "date":
        ns = pd.array(np.asarray(values, dtype="datetime64[ns]").view(np.int64), dtype="Int64")
        ns[~kept | pd.isna(np.asarray(values, dtype="datetime64[ns]"))] = pd.NA
        return ns
    if kind == "flag":
        return pd.array(np.where(kept, values, False), dtype="boolean")
    return np.where(kept, np.asarray(values, dtype=np.float64), np.nan)


def _report(converted: Any, long_lines: Any, limit: int) -> tuple[Rejections, int, int]:
    """Return a file's rejected rows (counts, first lines), rows read and courses untagged."""
    tally = converted.groupBy(_STATUS, _REASON).count().collect()
    rejected = Rejections()
    rows_read = untagged = 0
    for row in tally:
        status, reason, count = row[_STATUS], row[_REASON], int(row["count"])
        if status != _BLANK:
            rows_read += count
        if status == _UNTAGGED:
            untagged += count
        if status == _REJECTED:
            lines = (
                converted.filter(converted[_REASON] == reason)
                .select(LINE)
                .orderBy(LINE)
                .limit(MAX_LINES_KEPT)
                .toPandas()[LINE]
                .to_numpy(dtype=np.int64)
            )
            rejected.add_counted(reason, count, lines)
    long_count = long_lines.count()
    if long_count:
        first = np.sort(np.asarray(long_lines.takeOrdered(MAX_LINES_KEPT), dtype=np.int64))
        rejected.add_counted(TOO_LONG.format(limit=limit), long_count, first)
        rows_read += long_count
    return rejected, rows_read, untagged


def _first_undecodable(rejected: Rejections) -> str | None:
    """Say where the first value with bytes that are not UTF-8 is (for a refused file)."""
    found = [(int(lines[0]), reason) for reason, lines in rejected.lines.items() if len(lines)]
    undecodable = sorted((line, reason) for line, reason in found if reason.endswith(NOT_UTF8))
    return f"line {undecodable[0][0]}, {undecodable[0][1]}" if undecodable else None


def local_frame(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """Return rows Spark read (as `toPandas` gives them) in the local loader's dtypes."""
    out: dict[str, Any] = {}
    for column in SCHEMAS[name]:
        values = frame[column.name]
        if column.kind in ("tag", "text"):
            out[column.name] = pd.Categorical(values.astype(object))
        elif column.kind == "handle":
            out[column.name] = (
                values.to_numpy(dtype=np.int64)
                if column.required
                else pd.array(values.to_numpy(dtype=object), dtype="Int64")
            )
        elif column.kind == "date":
            ns = pd.array(values.to_numpy(dtype=object), dtype="Int64").to_numpy(
                dtype=np.int64,
                na_value=np.iinfo(np.int64).min,  # NaT
            )
            out[column.name] = ns.view("datetime64[ns]")
        elif column.kind == "flag":
            out[column.name] = values.to_numpy(dtype=np.bool_)
        else:
            out[column.name] = values.to_numpy(dtype=np.float64)
    result = pd.DataFrame(out, index=frame.index)
    if LINE in frame.columns:
        result[LINE] = frame[LINE].to_numpy(dtype=np.int64)
    return result


__all__ = ["DISTRIBUTED", "LINE", "SparkTables", "local_frame", "read_export"]
