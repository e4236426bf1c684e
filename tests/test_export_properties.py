"""Properties of the CSV reader over randomly corrupted exports (hypothesis).

Every valid row of a corrupted export is kept, in order, with its values; every corrupted row is
reported once, at its exact line, for the field that was broken; and no bytes at all make the
reader fail with anything but a TableError.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.tables import MAX_AMOUNT, Limits, TableError, load_tables, read_table

HEADER = ["user_handle", "view_date", "course_id", "author_handle", "level", "view_time_seconds"]
PROPERTY = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Row:
    """One valid row: the text written, and what the reader must keep."""

    fields: tuple[str, ...]
    kept: tuple[int, pd.Timestamp, str, float]  # handle, date, course id, seconds


def quoted(text: str) -> str:
    """Write a value as CSV does when it holds a comma, a quote or a line break."""
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


course_ids = st.text(
    alphabet=st.sampled_from('abcXYZ-_.#+ 0123456789,"\né'), min_size=1, max_size=12
).filter(lambda text: text.strip() != "")
dates = st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2200, 12, 31))


@st.composite
def valid_rows(draw: st.DrawFn) -> Row:
    handle = draw(st.integers(0, 2**63 - 1) | st.integers(0, 20))
    when = draw(dates).replace(microsecond=0)
    date_text = draw(st.sampled_from([f"{when:%Y-%m-%d}", f"{when:%Y-%m-%d %H:%M:%S}"]))
    if len(date_text) == 10:
        when = when.replace(hour=0, minute=0, second=0)
    course = draw(st.sampled_from(["aws", "docker", "c#"]) | course_ids)
    seconds = draw(st.integers(0, 100_000).map(float) | st.floats(0, MAX_AMOUNT))
    seconds_text = draw(st.sampled_from([repr(seconds), f"{seconds:.6e}", f"{seconds:f}"]))
    fields = (str(handle), date_text, quoted(course), "875", "Beginner", seconds_text)
    kept = (handle, pd.Timestamp(when), course.strip(), float(seconds_text))
    return Row(fields, kept)


# (field position, bad text, reason the reader must give)
CORRUPTIONS = [
    (0, "", "user_handle is empty"),
    (0, "abc", "user_handle is not an integer"),
    (0, "1.5", "user_handle is not an integer"),
    (0, "-3", "user_handle is negative"),
    (0, "99999999999999999999", "user_handle is too large"),
    (1, "", "view_date is empty"),
    (1, "2017-13-01", "view_date is not a date"),
    (1, "27/06/2017", "view_date is not a date"),
    (2, "  ", "course_id is empty"),
    (5, "", "view_time_seconds is empty"),
    (5, "ten", "view_time_seconds is not a number"),
    (5, "-1", "view_time_seconds is negative"),
    (5, "inf", "view_time_seconds is not finite"),
    (5, "1e13", "view_time_seconds is too large"),
    (6, "surplus", "the row has more fields than the header"),
]


@st.composite
def corrupted_exports(draw: st.DrawFn) -> tuple[list[str | Row], dict[int, int]]:
    """Return lines to write (valid rows, corruptions by index, blank lines) in file order."""
    rows = draw(st.lists(valid_rows(), min_size=1, max_size=25))
    rows += draw(st.lists(st.sampled_from(rows), max_size=5))  # exact duplicates
    rows = draw(st.permutations(rows))
    items: list[str | Row] = list(rows)
    broken = draw(
        st.lists(
            st.tuples(st.integers(1, len(items)), st.integers(0, len(CORRUPTIONS) - 1)),
            max_size=10,
        )
    )
    marks: dict[int, int] = {}  # position in items of a corrupted row → CORRUPTIONS index
    for at, kind in sorted(broken, reverse=True):
        items.insert(at, f"corrupt:{kind}")
    for position, item in enumerate(items):
        if isinstance(item, str):
            marks[position] = int(item.split(":")[1])
    blanks = draw(st.lists(st.integers(1, len(items)), max_size=3))
    for at in sorted(blanks, reverse=True):
        items.insert(at, "")
        marks = {p + (p >= at): k for p, k in marks.items()}
    return items, marks


@PROPERTY
@given(
    export=corrupted_exports(),
    template=valid_rows(),
    crlf=st.booleans(),
    bom=st.booleans(),
    chunk_rows=st.integers(1, 7),
)
def test_every_valid_row_of_a_corrupted_export_is_kept_and_every_other_row_reported(
    export: tuple[list[str | Row], dict[int, int]],
    template: Row,
    crlf: bool,
    bom: bool,
    chunk_rows: int,
) -> None:
    items, marks = export
    newline = "\r\n" if crlf else "\n"
    lines = [("\ufeff" if bom else "") + ",".join(HEADER)]
    expected_kept: list[tuple[int, pd.Timestamp, str, float]] = []
    expected_rejected: dict[str, list[int]] = {}
    line = 2
    for position, item in enumerate(items):
        if isinstance(item, Row):
            text = ",".join(item.fields)
            if item.kept not in expected_kept:  # an exact duplicate is removed, and counted
                expected_kept.append(item.kept)
        elif position in marks:
            field, bad, reason = CORRUPTIONS[marks[position]]
            # The template has no line break, so the line of a skipped row is exact.
            fields = [f.replace("\n", " ") for f in template.fields]
            fields[2] = quoted(template.kept[2].replace("\n", " ").strip() or "x")
            fields = [*fields, bad] if field == len(HEADER) else fields
            fields[field] = bad
            text = ",".join(fields)
            expected_rejected.setdefault(reason, []).append(line)
        else:
            text = ""  # a blank line: neither a row nor a rejection
        lines.append(text)
        line += 1 + text.count("\n")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "user_course_views.csv"
        path.write_bytes((newline.join(lines) + newline).encode())

        read = read_table(path, "user_course_views", chunk_rows=chunk_rows)

    frame = read.frame
    kept = list(
        zip(
            frame["user_handle"].tolist(),
            frame["view_date"].tolist(),
            frame["course_id"].astype(str).tolist(),
            frame["view_time_seconds"].tolist(),
            strict=True,
        )
    )
    assert kept == expected_kept
    assert {r.reason: list(r.lines) for r in read.rejected} == expected_rejected


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    body=st.binary(max_size=300)
    | st.text(alphabet=st.sampled_from('0123456789,"\n\r\t ;-.e:abé\x00\ufeff'), max_size=300).map(
        str.encode
    ),
    with_header=st.booleans(),
)
def test_no_bytes_make_the_reader_fail_with_anything_but_a_table_error(
    body: bytes, with_header: bool
) -> None:
    header = (",".join(HEADER) + "\n").encode() if with_header else b""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "user_course_views.csv"
        path.write_bytes(header + body)
        try:
            read = read_table(path, "user_course_views", chunk_rows=3)
        except TableError as error:
            assert "user_course_views.csv" in str(error)
            return
    # Whatever was loaded is valid, and every row read is accounted for.
    frame = read.frame
    assert (frame["user_handle"] >= 0).all()
    assert frame["view_time_seconds"].between(0, MAX_AMOUNT).all()
    assert read.rows_read == len(frame) + read.duplicates + read.rows_rejected


# --- the survey: answers checked against questions, the latest answer kept --------------------

SCALES = {"Q1": (1.0, 5.0), "Q2": (-3.0, 3.0)}  # questions.csv; "Q3" is not in it


@st.composite
def survey_answers(draw: st.DrawFn) -> list[tuple[int, str, float, str]]:
    """Return answer rows (user, question, answer, answered_at or "") in file order."""
    day = st.sampled_from(["", "2017-06-01", "2017-06-02", "2017-06-02 10:00:00"])
    answer = st.sampled_from([-4.0, -3.0, 0.0, 1.0, 2.5, 5.0, 5.5])
    row = st.tuples(st.integers(0, 3), st.sampled_from(["Q1", "Q2", "Q3"]), answer, day)
    return draw(st.lists(row, max_size=30))


@PROPERTY
@given(rows=survey_answers(), with_questions=st.booleans(), chunk_rows=st.integers(1, 7))
def test_the_latest_valid_answer_of_each_user_and_question_is_kept_and_the_rest_accounted_for(
    rows: list[tuple[int, str, float, str]], with_questions: bool, chunk_rows: int
) -> None:
    # The rule, one row at a time: off-scale and unknown answers are rejected (with questions),
    # exact duplicates removed, and of the rest the latest by time, then by line, is kept.
    rejected: dict[str, list[int]] = {}
    seen: set[tuple[int, str, float, str]] = set()
    latest: dict[tuple[int, str], tuple[pd.Timestamp, int, float]] = {}
    for line, (user, question, answer, day) in enumerate(rows, start=2):
        if with_questions and question not in SCALES:
            rejected.setdefault("question_id is not in questions.csv", []).append(line)
            continue
        low, high = SCALES[question] if with_questions else (-np.inf, np.inf)
        if not low <= answer <= high:
            rejected.setdefault("answer is off its question's scale in questions.csv", [])
            rejected["answer is off its question's scale in questions.csv"].append(line)
            continue
        if (user, question, answer, day) in seen:
            continue
        seen.add((user, question, answer, day))
        at = pd.Timestamp(day) if day else pd.Timestamp.min
        if (user, question) not in latest or (at, line) >= latest[(user, question)][:2]:
            latest[(user, question)] = (at, line, answer)
    expected = sorted((line, user, q, answer) for (user, q), (_, line, answer) in latest.items())

    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        text = "".join(f"{u},{q},{a!r},{d}\n" for u, q, a, d in rows)
        (directory / "user_answers.csv").write_text(
            "user_handle,question_id,answer,answered_at\n" + text
        )
        if with_questions:
            scales = "".join(f"{q},text,{lo},{hi},false\n" for q, (lo, hi) in SCALES.items())
            (directory / "questions.csv").write_text(
                "question_id,text,scale_min,scale_max,reverse_keyed\n" + scales
            )
        tables = load_tables(directory, chunk_rows=chunk_rows, limits=Limits(max_rejected_share=1))

    frame = tables.user_answers
    assert frame is not None
    kept = list(
        zip(
            frame["user_handle"],
            frame["question_id"].astype(str),
            frame["answer"],
            strict=True,
        )
    )
    assert kept == [(user, q, answer) for _, user, q, answer in expected]
    assert {r.reason: list(r.lines) for r in tables.report.rejected} == rejected
    report = tables.report
    assert report.rows_read["user_answers"] == (
        len(frame)
        + report.duplicates["user_answers"]
        + sum(map(len, rejected.values()))
        + report.answers_superseded
    )


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    body=st.text(alphabet=st.sampled_from('0123456789,"\n\r qQ-.e:aTtrufFyNo'), max_size=300).map(
        str.encode
    ),
    table=st.sampled_from(["user_answers", "questions"]),
)
def test_no_bytes_make_the_survey_readers_fail_with_anything_but_a_table_error(
    body: bytes, table: str
) -> None:
    header = {
        "user_answers": b"user_handle,question_id,answer,answered_at\n",
        "questions": b"question_id,text,scale_min,scale_max,reverse_keyed\n",
    }[table]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{table}.csv"
        path.write_bytes(header + body)
        try:
            read = read_table(path, table, chunk_rows=3)
        except TableError as error:
            assert f"{table}.csv" in str(error)
            return
    frame = read.frame
    if table == "user_answers":
        assert frame["answer"].abs().le(MAX_AMOUNT).all()
        assert not frame.duplicated(["user_handle", "question_id"]).any()
    else:
        assert (frame["scale_max"] > frame["scale_min"]).all()
        assert frame["question_id"].is_unique
    assert read.rows_read == len(frame) + read.duplicates + read.rows_rejected + read.superseded
