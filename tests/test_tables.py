"""The CSV reader: schema, spellings, compact types, row checks and the report of left-out rows."""

from __future__ import annotations

import csv
import gzip
import io
import logging
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.tables import (
    MAX_LINES_KEPT,
    MAX_ROW_BYTES,
    SCHEMAS,
    Limits,
    LoadReport,
    RejectedRows,
    Rejections,
    TableError,
    convert_rows,
    load_tables,
    locate_columns,
    read_table,
)

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "pluralsight-sample"

HEADERS = {
    "user_interests": "user_handle,interest_tag,date_followed",
    "user_course_views": "user_handle,view_date,course_id,author_handle,level,view_time_seconds",
    "user_assessment_scores": (
        "user_handle,assessment_tag,user_assessment_date,user_assessment_score"
    ),
    "course_tags": "course_id,course_tags",
    "user_answers": "user_handle,question_id,answer,answered_at",
    "questions": "question_id,text,scale_min,scale_max,reverse_keyed",
}
GOOD_ROWS = {
    "user_interests": "1,python,2017-06-27 16:26:52",
    "user_course_views": "1,2017-06-27,aws-fundamentals,875,Beginner,3786",
    "user_assessment_scores": "7487,angular-js,2017-08-11 19:03:38,134",
    "course_tags": "aws-fundamentals,cloud-computing",
    "user_answers": "1,Q1,4,2017-06-27 16:26:52",
    "questions": 'Q1,"I prefer learning by doing (exercises) over reading.",1,5,false',
}
OTHER_ROWS = {
    "user_interests": "2,c#,2017-06-28",
    "user_course_views": "2,2017-06-28,gcp-fundamentals,281,Advanced,0",
    "user_assessment_scores": "7,python,2017-08-12,0",
    "course_tags": "gcp-fundamentals,cloud-computing",
    "user_answers": "2,Q2,-2.5,2017-06-28",
    "questions": "Q2,I plan my study time.,-3,3,TRUE",
}

needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason="the real sample is not available")


def write(directory: Path, name: str, text: str) -> Path:
    """Write `text` as the file `name`, byte for byte (no newline translation)."""
    path = directory / name
    path.write_bytes(text.encode("utf-8"))
    return path


def export(directory: Path, table: str, *rows: str) -> Path:
    """Write an export of `table` with its real header and the given rows, LF-terminated."""
    return write(
        directory, f"{table}.csv", "".join(f"{line}\n" for line in (HEADERS[table], *rows))
    )


def rejected_as_tuples(
    rejected: tuple[RejectedRows, ...] | list[RejectedRows],
) -> list[tuple[str, tuple[int, ...]]]:
    return [(r.reason, r.lines) for r in rejected]


# --- the real sample -------------------------------------------------------------------------


@needs_sample
def test_the_real_sample_loads_with_no_rejected_row() -> None:
    tables = load_tables(SAMPLE)
    assert tables.report.rejected == []
    assert tables.report.missing == [
        "user_interests",
        "user_course_views",
        "user_answers",
        "questions",
    ]
    assert tables.user_interests is None
    assert tables.user_course_views is None


@needs_sample
def test_the_real_course_tags_have_the_published_counts() -> None:
    read = read_table(SAMPLE / "course_tags.csv", "course_tags")
    assert read.rows_read == 11_337
    assert read.courses_without_tags == 112
    assert len(read.frame) + read.duplicates == 11_337 - 112
    # "BIM" and "bim" on the same course become one row once tags are lower-cased (twice).
    assert read.duplicates == 2
    # Every course without tags has only its empty-tag row, so those 112 leave the table.
    assert read.frame["course_id"].nunique() == 5_942 - 112
    assert read.frame["course_tags"].isna().sum() == 0


@needs_sample
def test_the_real_assessments_have_the_published_counts() -> None:
    read = read_table(SAMPLE / "user_assessment_scores.csv", "user_assessment_scores")
    frame = read.frame
    assert (read.rows_read, len(frame), read.duplicates) == (6_571, 6_571, 0)
    assert frame["user_handle"].nunique() == 3_114
    assert frame["assessment_tag"].nunique() == 54
    assert (frame["user_assessment_score"].min(), frame["user_assessment_score"].max()) == (0, 298)
    assert frame["user_assessment_date"].min() >= pd.Timestamp("2016-07-13")
    assert frame["user_assessment_date"].max() < pd.Timestamp("2017-11-29")
    first = frame.iloc[0]
    assert (first["user_handle"], first["assessment_tag"]) == (7487, "angular-js")
    assert first["user_assessment_date"] == pd.Timestamp("2017-08-11 19:03:38")


@needs_sample
@pytest.mark.parametrize("table", ["course_tags", "user_assessment_scores"])
def test_reading_in_small_chunks_gives_the_same_table(table: str) -> None:
    whole = read_table(SAMPLE / f"{table}.csv", table)
    chunked = read_table(SAMPLE / f"{table}.csv", table, chunk_rows=1_000)
    pd.testing.assert_frame_equal(
        whole.frame.astype(str), chunked.frame.astype(str), check_categorical=False
    )
    assert (chunked.rows_read, chunked.duplicates) == (whole.rows_read, whole.duplicates)


# --- schema, spellings and types -------------------------------------------------------------


def test_every_table_gets_compact_types(tmp_path: Path) -> None:
    for table, row in GOOD_ROWS.items():
        export(tmp_path, table, row)
    tables = load_tables(tmp_path)
    assert tables.report.missing == []
    dtypes = {
        name: {column: str(dtype) for column, dtype in frame.dtypes.items()}
        for name, frame in [
            ("interests", tables.user_interests),
            ("course_views", tables.user_course_views),
            ("assessments", tables.user_assessment_scores),
            ("course_tags", tables.course_tags),
            ("answers", tables.user_answers),
            ("questions", tables.questions),
        ]
        if frame is not None
    }
    assert dtypes == {
        "interests": {
            "user_handle": "int64",
            "interest_tag": "category",
            "date_followed": "datetime64[ns]",
        },
        "course_views": {
            "user_handle": "int64",
            "view_date": "datetime64[ns]",
            "course_id": "category",
            "author_handle": "Int64",
            "level": "category",
            "view_time_seconds": "float64",
        },
        "assessments": {
            "user_handle": "int64",
            "assessment_tag": "category",
            "user_assessment_date": "datetime64[ns]",
            "user_assessment_score": "float64",
        },
        "course_tags": {"course_id": "category", "course_tags": "category"},
        "answers": {
            "user_handle": "int64",
            "question_id": "category",
            "answer": "float64",
            "answered_at": "datetime64[ns]",
        },
        "questions": {
            "question_id": "category",
            "text": "category",
            "scale_min": "float64",
            "scale_max": "float64",
            "reverse_keyed": "bool",
        },
    }


def test_a_row_keeps_its_values(tmp_path: Path) -> None:
    path = export(tmp_path, "user_course_views", GOOD_ROWS["user_course_views"])
    row = read_table(path, "user_course_views").frame.iloc[0].to_dict()
    assert row == {
        "user_handle": 1,
        "view_date": pd.Timestamp("2017-06-27"),
        "course_id": "aws-fundamentals",
        "author_handle": 875,
        "level": "Beginner",
        "view_time_seconds": 3786.0,
    }


@pytest.mark.parametrize(
    ("table", "header"),
    [
        (
            "user_course_views",
            "user_handle,view_date,course_name,author_handle,level,course_view_time_seconds",
        ),
        ("course_tags", "course_name,course_tag"),
        ("course_tags", "COURSE_ID , Course_Tags"),
        ("user_interests", "\ufeff User_Handle ,INTEREST_TAG,Date_Followed "),
        ("user_answers", "user_id,question,value,date"),
        ("user_answers", "User_ID , Question,SCORE,answered_date"),
        ("questions", "question,question_text,min,max,reverse"),
        ("questions", "\ufeffQuestion_ID,Text,MIN,Max,Reversed"),
    ],
)
def test_other_spellings_of_the_header_load_the_same(
    tmp_path: Path, table: str, header: str
) -> None:
    real = read_table(export(tmp_path, table, GOOD_ROWS[table]), table).frame
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = write(other_dir, f"{table}.csv", f"{header}\n{GOOD_ROWS[table]}\n")
    pd.testing.assert_frame_equal(read_table(other, table).frame, real)


def test_extra_columns_are_ignored(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "user_interests.csv",
        "source,user_handle,interest_tag,weight,date_followed\nweb,1,python,0.5,2017-06-27\n",
    )
    frame = read_table(path, "user_interests").frame
    assert list(frame.columns) == ["user_handle", "interest_tag", "date_followed"]
    assert frame["interest_tag"].tolist() == ["python"]


@pytest.mark.parametrize(
    ("table", "column"),
    [
        (table, column)
        for table, header in HEADERS.items()
        for column in header.split(",")
        if column not in ("author_handle", "level", "answered_at", "text")
    ],
)
def test_a_missing_required_column_is_refused_naming_file_and_column(
    tmp_path: Path, table: str, column: str
) -> None:
    kept = [c for c in HEADERS[table].split(",") if c != column]
    path = write(tmp_path, f"{table}.csv", ",".join(kept) + "\n")
    with pytest.raises(TableError, match=rf"^{table}\.csv: missing required column '{column}'"):
        read_table(path, table)


def test_the_message_for_a_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path, "user_course_views.csv", "user_handle,view_date,course_id\n")
    with pytest.raises(TableError) as error:
        read_table(path, "user_course_views")
    assert str(error.value) == (
        "user_course_views.csv: missing required column 'view_time_seconds' "
        "(found: 'user_handle', 'view_date', 'course_id')"
    )


def test_a_semicolon_separated_file_is_refused_naming_the_missing_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path, "user_interests.csv", "user_handle;interest_tag;date_followed\n1;python;2017\n"
    )
    with pytest.raises(TableError) as error:
        read_table(path, "user_interests")
    message = str(error.value)
    assert "missing required columns 'user_handle', 'interest_tag', 'date_followed'" in message
    assert "separated by commas" in message


def test_a_column_spelled_twice_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "course_tags.csv", "course_id,course_name,course_tags\na,b,c\n")
    with pytest.raises(TableError, match="'course_id' and 'course_name' both hold course_id"):
        read_table(path, "course_tags")


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "user_course_views.csv",
        "user_handle,view_date,course_id,view_time_seconds\n1,2017-06-27,aws,10\n",
    )
    frame = read_table(path, "user_course_views").frame
    assert frame["author_handle"].isna().all()
    assert frame["level"].isna().all()
    assert str(frame["author_handle"].dtype) == "Int64"
    assert str(frame["level"].dtype) == "category"


def test_optional_columns_may_be_empty(tmp_path: Path) -> None:
    path = export(tmp_path, "user_course_views", "1,2017-06-27,aws,,,10", "2,2017-06-27,aws,7,,10")
    read = read_table(path, "user_course_views")
    assert read.rejected == ()
    assert read.frame["author_handle"].tolist() == [pd.NA, 7]
    assert read.frame["level"].isna().all()


# --- rows left out, with their lines ---------------------------------------------------------

BAD_ROWS = [
    ("user_interests", ",python,2017-06-27", "user_handle is empty"),
    ("user_interests", "  ,python,2017-06-27", "user_handle is empty"),
    ("user_interests", "abc,python,2017-06-27", "user_handle is not an integer"),
    ("user_interests", "1.5,python,2017-06-27", "user_handle is not an integer"),
    # full-width digits, which Python's int() would take
    ("user_interests", "\uff11\uff12,python,2017-06-27", "user_handle is not an integer"),
    ("user_interests", "-4,python,2017-06-27", "user_handle is negative"),
    ("user_interests", "99999999999999999999,python,2017-06-27", "user_handle is too large"),
    ("user_interests", "1,,2017-06-27", "interest_tag is empty"),
    ("user_interests", '1,"   ",2017-06-27', "interest_tag is empty"),
    ("user_interests", "1,python,", "date_followed is empty"),
    ("user_interests", "1,python", "date_followed is empty"),
    ("user_interests", "1,python,yesterday", "date_followed is not a date"),
    ("user_interests", "1,python,2017-02-30", "date_followed is not a date"),
    ("user_interests", "1,python,9999-01-01", "date_followed is out of range"),
    ("user_interests", "1,python,2017-06-27,extra", "the row has more fields than the header"),
    ("user_course_views", "1,2017-06-27,aws,875,Beginner,-5", "view_time_seconds is negative"),
    ("user_course_views", "1,2017-06-27,aws,875,Beginner,abc", "view_time_seconds is not a number"),
    (
        "user_course_views",
        "1,2017-06-27,aws,875,Beginner,1_000",
        "view_time_seconds is not a number",
    ),
    ("user_course_views", "1,2017-06-27,aws,875,Beginner,inf", "view_time_seconds is not finite"),
    ("user_course_views", "1,2017-06-27,aws,875,Beginner,", "view_time_seconds is empty"),
    ("user_course_views", "1,2017-06-27,,875,Beginner,10", "course_id is empty"),
    ("user_course_views", "1,27/06/2017,aws,875,Beginner,10", "view_date is not a date"),
    ("user_course_views", "1,2017-06-27,aws,x,Beginner,10", "author_handle is not an integer"),
    ("user_assessment_scores", "1,java,2017-08-11,nan", "user_assessment_score is not a number"),
    ("user_assessment_scores", "1,,2017-08-11,100", "assessment_tag is empty"),
    ("course_tags", ",cloud-computing", "course_id is empty"),
    ("user_answers", "x,Q1,4,2017-06-27", "user_handle is not an integer"),
    ("user_answers", "1,,4,2017-06-27", "question_id is empty"),
    ("user_answers", "1,Q1,,2017-06-27", "answer is empty"),
    ("user_answers", "1,Q1,four,2017-06-27", "answer is not a number"),
    ("user_answers", "1,Q1,nan,2017-06-27", "answer is not a number"),
    ("user_answers", "1,Q1,-inf,2017-06-27", "answer is not finite"),
    ("user_answers", "1,Q1,-1e13,2017-06-27", "answer is out of range"),
    ("user_answers", "1,Q1,4,June", "answered_at is not a date"),
    ("questions", ",text,1,5,false", "question_id is empty"),
    ("questions", "Q3,text,,5,false", "scale_min is empty"),
    ("questions", "Q3,text,1,five,false", "scale_max is not a number"),
    ("questions", "Q3,text,1,5,", "reverse_keyed is empty"),
    ("questions", "Q3,text,1,5,maybe", "reverse_keyed is not true or false"),
    ("questions", "Q3,text,1,5,2", "reverse_keyed is not true or false"),
    ("questions", "Q3,text,5,5,false", "scale_max is not above scale_min"),
    ("questions", "Q3,text,7,1,false", "scale_max is not above scale_min"),
    ("questions", "Q1,another text,1,7,false", "question_id is already on an earlier line"),
]


@pytest.mark.parametrize("chunk_rows", [1, 2, 1_000_000])
@pytest.mark.parametrize(("table", "row", "reason"), BAD_ROWS)
def test_a_bad_row_is_left_out_with_its_line_and_every_valid_row_is_kept(
    tmp_path: Path, table: str, row: str, reason: str, chunk_rows: int
) -> None:
    path = export(tmp_path, table, GOOD_ROWS[table], row, OTHER_ROWS[table])
    read = read_table(path, table, chunk_rows=chunk_rows)
    assert read.rejected == (RejectedRows(f"{table}.csv", reason, (3,), 1),)
    assert len(read.frame) == 2
    assert read.rows_read == 3


LINES_FILE = (
    "user_handle,interest_tag,date_followed,note\n"  # 1
    '1,python,2017-06-27,"first\n'  # 2
    'note"\n'  # 3
    "x,python,2017-06-27,\n"  # 4: handle
    "\n"  # 5: blank
    '2,"c#",2017-06-27,"a\n'  # 6
    "b\n"  # 7
    'c"\n'  # 8
    "3,java,2017-06-27,extra,field\n"  # 9: too many fields
    "4,go,never,\n"  # 10: date
    "5,rust,2017-06-27,\n"  # 11
    '6,,2017-06-27,"x\r\n'  # 12: tag
    'y"\n'  # 13
    "7,ruby,2017-06-27,\n"  # 14
    "-1,ruby,2017-06-27,\n"  # 15: negative
    "8,perl,2017-06-27,,\n"  # 16: too many fields, last line
)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5, 1_000_000])
def test_line_numbers_count_quoted_line_breaks_blank_lines_and_skipped_lines(
    tmp_path: Path, chunk_rows: int
) -> None:
    path = write(tmp_path, "user_interests.csv", LINES_FILE)
    read = read_table(path, "user_interests", chunk_rows=chunk_rows)
    assert rejected_as_tuples(read.rejected) == [
        ("user_handle is not an integer", (4,)),
        ("the row has more fields than the header", (9, 16)),
        ("date_followed is not a date", (10,)),
        ("interest_tag is empty", (12,)),
        ("user_handle is negative", (15,)),
    ]
    assert read.frame["user_handle"].tolist() == [1, 2, 5, 7]
    assert read.rows_read == 10  # the blank line is not a row


def test_a_row_is_reported_once_for_its_first_problem(tmp_path: Path) -> None:
    path = export(tmp_path, "user_course_views", "x,never,,,,-1")
    read = read_table(path, "user_course_views")
    assert rejected_as_tuples(read.rejected) == [("user_handle is not an integer", (2,))]


def test_blank_lines_are_neither_rows_nor_rejections(tmp_path: Path) -> None:
    path = export(tmp_path, "user_interests", "", GOOD_ROWS["user_interests"], ",,", "")
    read = read_table(path, "user_interests")
    assert (read.rows_read, len(read.frame), read.rejected) == (1, 1, ())


def test_spaces_around_numbers_handles_and_dates_are_accepted(tmp_path: Path) -> None:
    path = export(tmp_path, "user_course_views", " 1 , 2017-06-27 ,aws, 875 ,Beginner, 12.5 ")
    read = read_table(path, "user_course_views")
    assert read.rejected == ()
    row = read.frame.iloc[0]
    assert (row["user_handle"], row["author_handle"], row["view_time_seconds"]) == (1, 875, 12.5)
    assert row["view_date"] == pd.Timestamp("2017-06-27")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2017-06-27", "2017-06-27 00:00:00"),
        ("2017-06-27 16:26:52", "2017-06-27 16:26:52"),
        ("2017-06-27T16:26:52", "2017-06-27 16:26:52"),
        ("2017-06-27T16:26:52.250", "2017-06-27 16:26:52.250"),
        ("2017-06-27T16:26:52Z", "2017-06-27 16:26:52"),
        ("2017-06-27T18:26:52+02:00", "2017-06-27 16:26:52"),
    ],
)
def test_iso_8601_dates_are_accepted_and_offsets_become_utc(
    tmp_path: Path, written: str, expected: str
) -> None:
    path = export(tmp_path, "user_interests", f"1,python,{written}", "2,go,2017-01-01")
    read = read_table(path, "user_interests")
    assert read.rejected == ()
    assert read.frame["date_followed"].iloc[0] == pd.Timestamp(expected)


def test_numbers_may_be_written_with_decimals_or_exponents(tmp_path: Path) -> None:
    rows = [f"{i},2017-06-27,aws,875,Beginner,{v}" for i, v in enumerate(["0", "-0", "1e3", "2.5"])]
    read = read_table(export(tmp_path, "user_course_views", *rows), "user_course_views")
    assert read.rejected == ()
    assert read.frame["view_time_seconds"].tolist() == [0.0, 0.0, 1000.0, 2.5]
    assert not np.signbit(read.frame["view_time_seconds"]).any()


@pytest.mark.parametrize("chunk_rows", [1_000, 1_000_000])
def test_the_lines_kept_for_one_reason_are_capped_but_counted(
    tmp_path: Path, chunk_rows: int
) -> None:
    rows = ["x,python,2017-06-27"] * (MAX_LINES_KEPT + 5)
    read = read_table(
        export(tmp_path, "user_interests", *rows),
        "user_interests",
        chunk_rows=chunk_rows,
        limits=Limits(max_rejected_share=1.0),
    )
    (rejected,) = read.rejected
    assert rejected.count == MAX_LINES_KEPT + 5
    assert rejected.lines == tuple(range(2, MAX_LINES_KEPT + 2))


# --- duplicates, tags, empty tags ------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 1_000_000])
def test_exact_duplicates_are_removed_and_counted(tmp_path: Path, chunk_rows: int) -> None:
    path = export(
        tmp_path,
        "user_interests",
        "1,python,2017-06-27",
        "2,python,2017-06-27",
        "1,python,2017-06-27",
        "1, Python ,2017-06-27 00:00:00",  # equal once the tag and date are normalised
        "1,python,2017-06-28",
    )
    read = read_table(path, "user_interests", chunk_rows=chunk_rows)
    assert read.duplicates == 2
    assert read.frame[["user_handle", "date_followed"]].astype(str).values.tolist() == [
        ["1", "2017-06-27"],
        ["2", "2017-06-27"],
        ["1", "2017-06-28"],
    ]
    assert read.frame.index.tolist() == [0, 1, 2]


def test_tags_are_lower_cased_trimmed_and_kept_whole(tmp_path: Path) -> None:
    tags = [" C# ", ".NET", "JavaScript-Frameworks", "asp.net", "c++", "machine learning"]
    path = export(tmp_path, "user_interests", *[f'1,"{tag}",2017-06-27' for tag in tags])
    frame = read_table(path, "user_interests").frame
    assert frame["interest_tag"].tolist() == [
        "c#",
        ".net",
        "javascript-frameworks",
        "asp.net",
        "c++",
        "machine learning",
    ]


def test_course_ids_are_trimmed_but_keep_their_case(tmp_path: Path) -> None:
    path = export(tmp_path, "course_tags", " AWS-Fundamentals ,Cloud-Computing")
    row = read_table(path, "course_tags").frame.iloc[0]
    assert (row["course_id"], row["course_tags"]) == ("AWS-Fundamentals", "cloud-computing")


def test_categories_hold_only_values_of_kept_rows(tmp_path: Path) -> None:
    path = export(tmp_path, "user_interests", "1,python,2017-06-27", "x,cobol,2017-06-27")
    frame = read_table(path, "user_interests").frame
    assert frame["interest_tag"].cat.categories.tolist() == ["python"]


def test_an_empty_course_tag_is_a_course_without_tags_not_a_rejection(tmp_path: Path) -> None:
    path = export(tmp_path, "course_tags", "a,python", 'b,""', "c, ")
    tables = load_tables(tmp_path)
    assert tables.course_tags is not None
    assert tables.course_tags["course_id"].tolist() == ["a"]
    assert tables.report.rejected == []
    assert tables.report.courses_without_tags == 2
    assert read_table(path, "course_tags").courses_without_tags == 2


def test_rows_read_are_kept_duplicated_rejected_or_without_tags(tmp_path: Path) -> None:
    path = export(tmp_path, "course_tags", "a,python", "a,PYTHON", ",x", "b,", "c,go")
    read = read_table(path, "course_tags")
    assert (read.rows_read, len(read.frame), read.duplicates) == (5, 2, 1)
    assert (read.rows_rejected, read.courses_without_tags) == (1, 1)


def test_a_course_keeps_its_first_tags_up_to_the_limit_and_the_others_are_rejected_rows(
    tmp_path: Path,
) -> None:
    rows = ["a,t1", "b,x", "a,t2", "a,T1", "a,t3", "a,t4", "b,y", "a,", "a,t5"]
    path = export(tmp_path, "course_tags", *rows)  # lines 2 to 10
    read = read_table(path, "course_tags", limits=Limits(max_tags_per_course=3))
    pairs = read.frame.astype(str).to_numpy().tolist()
    assert pairs == [["a", "t1"], ["b", "x"], ["a", "t2"], ["a", "t3"], ["b", "y"]]
    assert rejected_as_tuples(read.rejected) == [("course_id has more than 3 tags", (7, 10))]
    assert (read.duplicates, read.courses_without_tags) == (1, 1)


@pytest.mark.parametrize("chunk_rows", [7, 1_000_000])
def test_by_default_a_course_keeps_100_tags(tmp_path: Path, chunk_rows: int) -> None:
    rows = [f"big,tag-{i}" for i in range(130)] + [f"small-{i},tag-{i}" for i in range(900)]
    path = export(tmp_path, "course_tags", *rows)
    read = read_table(path, "course_tags", chunk_rows=chunk_rows)
    tags = read.frame.groupby("course_id", observed=True).size()
    assert (tags["big"], tags.drop("big").max()) == (100, 1)
    assert rejected_as_tuples(read.rejected) == [
        ("course_id has more than 100 tags", tuple(range(102, 132)))
    ]


def test_a_course_with_thousands_of_tags_in_a_small_file_is_refused_naming_the_file(
    tmp_path: Path,
) -> None:
    path = export(tmp_path, "course_tags", *[f"big,tag-{i}" for i in range(5_000)])
    with pytest.raises(TableError) as error:
        read_table(path, "course_tags")
    assert str(error.value).startswith(
        "course_tags.csv: 4,900 of 5,000 rows rejected (98.0%), more than MAX_REJECTED_SHARE"
    )
    assert "line 102 (course_id has more than 100 tags)" in str(error.value)


# --- when rejected rows refuse a file --------------------------------------------------------

SHARE = Limits(max_rejected_share=0.25, rejected_rows_tolerated=2)


@pytest.mark.parametrize(
    ("good", "bad", "refused"),
    [
        pytest.param(7, 3, True, id="30%-of-10"),
        pytest.param(9, 3, False, id="25%-is-not-more"),
        pytest.param(0, 2, False, id="2-are-tolerated"),
    ],
)
def test_a_file_is_refused_when_its_rejected_rows_pass_both_limits(
    tmp_path: Path, good: int, bad: int, refused: bool
) -> None:
    rows = [f"{i},python,2017-06-27" for i in range(good)] + ["x,python,2017-06-27"] * bad
    path = export(tmp_path, "user_interests", *rows)
    if not refused:
        assert read_table(path, "user_interests", limits=SHARE).rows_rejected == bad
        return
    with pytest.raises(TableError) as error:
        read_table(path, "user_interests", limits=SHARE)
    assert str(error.value) == (
        "user_interests.csv: 3 of 10 rows rejected (30.0%), more than MAX_REJECTED_SHARE (25%) "
        "allows once more than 2 rows are; the first at line 9 (user_handle is not an integer); "
        "the export looks damaged, so the file is not used"
    )


@pytest.mark.parametrize(
    ("good", "bad", "refused"),
    [(899, 101, True), (900, 100, False), (919, 101, False), (0, 100, False)],
)
def test_by_default_more_than_100_rejected_rows_and_10_percent_refuse_a_file(
    tmp_path: Path, good: int, bad: int, refused: bool
) -> None:
    rows = ["x,python,2017-06-27"] * bad + [f"{i},python,2017-06-27" for i in range(good)]
    export(tmp_path, "user_interests", *rows)
    if refused:
        with pytest.raises(TableError, match=r"^user_interests\.csv: 101 of 1,000 rows rejected"):
            load_tables(tmp_path)
    else:
        assert load_tables(tmp_path).report.rows_kept["user_interests"] == good


def test_limits_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="max_rejected_share"):
        Limits(max_rejected_share=1.5)
    with pytest.raises(ValueError, match="max_row_bytes"):
        Limits(max_row_bytes=0)


# --- files: missing, empty, encodings, line endings, gzip ------------------------------------


@pytest.mark.parametrize(
    ("table", "models"),
    [
        ("user_interests", "the interests model"),
        ("user_course_views", "the course_views, course_tags and course_factors models"),
        ("user_assessment_scores", "the assessments model"),
        ("course_tags", "the course_tags model"),
    ],
)
def test_a_missing_file_gives_none_and_says_which_models_it_feeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, table: str, models: str
) -> None:
    for other, row in GOOD_ROWS.items():
        if other != table:
            export(tmp_path, other, row)
    with caplog.at_level(logging.WARNING, logger="generator.tables"):
        tables = load_tables(tmp_path)
    assert getattr(tables, table) is None
    assert tables.report.missing == [table]
    assert f"{table}.csv not found" in caplog.text
    assert f"{models} cannot be built" in caplog.text
    assert f"{table}.csv: not found, so {models} cannot be built" in tables.report.summary()


def test_an_empty_directory_is_refused_naming_the_expected_files(tmp_path: Path) -> None:
    write(tmp_path, "interest_rows_per_user_and_time.csv", "user_handle,N Rows\n1,2\n")
    with pytest.raises(TableError) as error:
        load_tables(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    for table in HEADERS:
        assert f"{table}.csv" in message


def test_a_directory_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="no such directory"):
        load_tables(tmp_path / "nowhere")


@pytest.mark.parametrize("table", list(HEADERS))
def test_a_header_only_file_gives_an_empty_table(tmp_path: Path, table: str) -> None:
    header_only = read_table(export(tmp_path, table), table)
    one_row_dir = tmp_path / "one"
    one_row_dir.mkdir()
    one_row = read_table(export(one_row_dir, table, GOOD_ROWS[table]), table)
    assert len(header_only.frame) == 0
    assert header_only.rows_read == 0
    assert header_only.frame.dtypes.astype(str).to_dict() == (
        one_row.frame.dtypes.astype(str).to_dict()
    )


def test_a_header_without_a_final_newline_gives_an_empty_table(tmp_path: Path) -> None:
    path = write(tmp_path, "course_tags.csv", "course_id,course_tags")
    assert len(read_table(path, "course_tags").frame) == 0


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "course_tags.csv", "")
    with pytest.raises(TableError, match=r"^course_tags\.csv: the file is empty"):
        read_table(path, "course_tags")


ROWS = [GOOD_ROWS["user_interests"], "2,c#,2017-06-28", "x,java,2017-06-28", "3,go,2017-06-29"]


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda text: text.replace("\n", "\r\n").encode(), id="crlf"),
        pytest.param(lambda text: b"\xef\xbb\xbf" + text.encode(), id="bom"),
        pytest.param(lambda text: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(), id="both"),
    ],
)
def test_crlf_line_endings_and_a_bom_load_the_same(tmp_path: Path, variant: object) -> None:
    text = "".join(f"{line}\n" for line in (HEADERS["user_interests"], *ROWS))
    plain = write(tmp_path, "user_interests.csv", text)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = other_dir / "user_interests.csv"
    other.write_bytes(variant(text))  # type: ignore[operator]
    expected, got = read_table(plain, "user_interests"), read_table(other, "user_interests")
    pd.testing.assert_frame_equal(got.frame, expected.frame)
    assert got.rejected == expected.rejected
    assert rejected_as_tuples(got.rejected) == [("user_handle is not an integer", (4,))]


def test_gzipped_exports_are_read(tmp_path: Path) -> None:
    text = "".join(f"{line}\n" for line in (HEADERS["user_interests"], *ROWS))
    (tmp_path / "user_interests.csv.gz").write_bytes(gzip.compress(text.encode()))
    tables = load_tables(tmp_path)
    assert tables.user_interests is not None
    assert tables.user_interests["user_handle"].tolist() == [1, 2, 3]
    assert tables.report.rejected[0].file == "user_interests.csv.gz"
    assert tables.report.rejected[0].lines == (4,)


def test_a_plain_and_a_gzipped_copy_of_one_export_are_refused(tmp_path: Path) -> None:
    export(tmp_path, "course_tags", GOOD_ROWS["course_tags"])
    (tmp_path / "course_tags.csv.gz").write_bytes(gzip.compress(b"course_id,course_tags\n"))
    with pytest.raises(TableError, match=r"both course_tags\.csv and course_tags\.csv\.gz"):
        load_tables(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"course_id,course_tags\n", id="not-gzip"),
        pytest.param(gzip.compress(b"course_id,course_tags\n" + b"a,b\n" * 1000)[:60], id="cut"),
    ],
)
def test_a_damaged_gzip_file_is_refused_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "course_tags.csv.gz"
    path.write_bytes(content)
    with pytest.raises(TableError, match=r"^course_tags\.csv\.gz: "):
        read_table(path, "course_tags")


@pytest.mark.parametrize("chunk_rows", [1, 1_000_000])
def test_a_value_with_bytes_that_are_not_utf8_is_a_rejected_row_naming_line_and_column(
    tmp_path: Path, chunk_rows: int
) -> None:
    path = tmp_path / "course_tags.csv"
    path.write_bytes(b'course_id,course_tags\na,python\n"b\nc",go\nd,caf\xe9\n\xff,e\nf,ok\n')
    read = read_table(path, "course_tags", chunk_rows=chunk_rows)
    assert read.frame["course_id"].astype(str).tolist() == ["a", "b\nc", "f"]
    assert rejected_as_tuples(read.rejected) == [
        ("course_tags holds bytes that are not UTF-8", (5,)),
        ("course_id holds bytes that are not UTF-8", (6,)),
    ]


def test_bytes_that_are_not_utf8_in_a_column_not_read_keep_the_row(tmp_path: Path) -> None:
    path = tmp_path / "course_tags.csv"
    path.write_bytes(b"source,course_id,course_tags\nw\xe9b,a,python\n")
    read = read_table(path, "course_tags")
    assert read.frame["course_id"].tolist() == ["a"]
    assert read.rejected == ()


@pytest.mark.parametrize("chunk_rows", [1, 1_000_000])
def test_a_file_mostly_not_utf8_is_refused_naming_the_first_bad_value(
    tmp_path: Path, chunk_rows: int
) -> None:
    path = tmp_path / "course_tags.csv"
    path.write_bytes(b"course_id,course_tags\na,python\nb,caf\xe9\nc,na\xefve\n")
    with pytest.raises(TableError) as error:
        read_table(path, "course_tags", chunk_rows=chunk_rows)
    message = str(error.value)
    assert message.startswith(
        "course_tags.csv: 2 of 3 rows hold bytes that are not UTF-8 "
        "(first at line 3, column 'course_tags': b'caf\\xe9')"
    )
    assert "export it as UTF-8" in message


def test_a_header_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "course_tags.csv"
    path.write_bytes("course_id,course_tägs\na,b\n".encode("latin-1"))
    with pytest.raises(TableError, match=r"^course_tags\.csv: line 1, column 'course_t\\xe4gs'"):
        read_table(path, "course_tags")


def test_utf8_text_is_kept(tmp_path: Path) -> None:
    path = export(tmp_path, "course_tags", "café-für-alle,données")
    row = read_table(path, "course_tags").frame.iloc[0]
    assert (row["course_id"], row["course_tags"]) == ("café-für-alle", "données")


@pytest.mark.parametrize("chunk_rows", [1, 1_000_000])
def test_a_first_data_row_longer_than_the_header_is_a_rejected_row(
    tmp_path: Path, chunk_rows: int
) -> None:
    path = export(tmp_path, "course_tags", "a,python,extra", "b,go", "c,java,extra")
    read = read_table(path, "course_tags", chunk_rows=chunk_rows)
    assert read.frame["course_id"].tolist() == ["b"]
    assert rejected_as_tuples(read.rejected) == [
        ("the row has more fields than the header", (2, 4))
    ]


def test_an_unclosed_quote_is_refused_naming_its_line_and_column(tmp_path: Path) -> None:
    path = export(tmp_path, "course_tags", "a,python", 'b,"go')
    with pytest.raises(
        TableError,
        match=r"^course_tags\.csv: line 3, column 'course_tags': a quoted value is never",
    ):
        read_table(path, "course_tags")


def test_an_unclosed_quote_is_refused_without_reading_the_rest_of_the_file_into_it(
    tmp_path: Path,
) -> None:
    path = export(tmp_path, "course_tags", "a,python", 'b,"go', *["c,java"] * 50)
    with pytest.raises(TableError, match=r"^course_tags\.csv: line 3: a quoted value is never"):
        read_table(path, "course_tags", limits=Limits(max_row_bytes=64))


# --- rows too long to read -------------------------------------------------------------------

LIMIT = 64  # bytes in a row, its line break included
LONG = "x" * LIMIT


def long_rows_file() -> tuple[str, list[int], list[int]]:
    """Return an interests export with rows longer than LIMIT, the handles kept, the lines left."""
    rows = [
        ("1,python,2017-06-27", True),
        (f"2,{LONG},2017-06-27", False),  # one long line
        ('3,"c#",2017-06-27', True),
        (f'4,"{LONG[:20]}\n{LONG[:20]}\n{LONG[:20]}\n""{LONG[:20]}",2017-06-27', False),  # lines
        ('5,"a\nb",2017-06-27', True),  # a short row across lines
        (f"6,{LONG[: LIMIT - len('6,,2017-06-27') - 1]},2017-06-27", True),  # exactly LIMIT bytes
        (f"7,{LONG[: LIMIT - len('7,,2017-06-27')]},2017-06-27", False),  # one byte more
        (f'8,"{LONG}\r\n",2017-06-27', False),
        ("9,go,2017-06-27", True),
        (f"10,{LONG}", False),  # the last row, without a line break
    ]
    text, line, kept, rejected = "user_handle,interest_tag,date_followed\n", 2, [], []
    for number, (row, fits) in enumerate(rows, start=1):
        (kept if fits else rejected).append(number if fits else line)
        text += row + ("\n" if number < len(rows) else "")
        line += 1 + row.count("\n")
    return text, kept, rejected


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1_000_000])
def test_a_row_longer_than_the_limit_is_a_rejected_row_and_later_lines_stay_exact(
    tmp_path: Path, chunk_rows: int
) -> None:
    text, kept, rejected = long_rows_file()
    path = write(tmp_path, "user_interests.csv", text)
    read = read_table(
        path, "user_interests", chunk_rows=chunk_rows, limits=Limits(max_row_bytes=LIMIT)
    )
    assert read.frame["user_handle"].tolist() == kept
    assert rejected_as_tuples(read.rejected) == [
        (f"the row is longer than {LIMIT} bytes", tuple(rejected))
    ]
    assert read.rows_read == len(kept) + len(rejected)


def test_a_row_longer_than_the_limit_is_rejected_in_a_gzipped_export_too(tmp_path: Path) -> None:
    text, kept, rejected = long_rows_file()
    path = tmp_path / "user_interests.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    read = read_table(path, "user_interests", limits=Limits(max_row_bytes=LIMIT))
    assert read.frame["user_handle"].tolist() == kept
    assert [r.lines for r in read.rejected] == [tuple(rejected)]


def test_a_header_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "course_tags.csv", "course_id,course_tags," + LONG + "\na,b\n")
    with pytest.raises(
        TableError, match=rf"^course_tags\.csv: line 1 \(the header\) is longer than {LIMIT} bytes"
    ):
        read_table(path, "course_tags", limits=Limits(max_row_bytes=LIMIT))


def written(tag: str, plain: bool) -> str:
    """Write a tag as CSV does, or bare when it can be (a quote inside a bare value is literal)."""
    if plain and not any(c in tag for c in ",\n\r") and not tag.startswith('"'):
        return tag
    return '"' + tag.replace('"', '""') + '"'


tags = st.text(alphabet=st.sampled_from('ab-,"\n\r x'), min_size=1, max_size=90).filter(
    lambda tag: tag.strip() != ""
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    rows=st.lists(st.tuples(tags, st.booleans()), min_size=1, max_size=12),
    limit=st.integers(48, 120),
    crlf=st.booleans(),
    final_break=st.booleans(),
    chunk_rows=st.integers(1, 5),
)
def test_rows_longer_than_the_limit_are_rejected_at_their_line_whatever_their_quoting(
    rows: list[tuple[str, bool]], limit: int, crlf: bool, final_break: bool, chunk_rows: int
) -> None:
    newline = "\r\n" if crlf else "\n"
    text = "user_handle,interest_tag,date_followed" + newline
    line, kept, rejected = 2, [], []
    for handle, (tag, plain) in enumerate(rows):
        row = f"{handle},{written(tag, plain)},2017-06-27"
        ending = newline if final_break or handle < len(rows) - 1 else ""
        if len((row + ending).encode()) > limit:
            rejected.append(line)
        else:
            kept.append((handle, tag.strip().lower()))
        text += row + ending
        line += (row + ending).count("\n")
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), "user_interests.csv", text)
        read = read_table(
            path, "user_interests", chunk_rows=chunk_rows, limits=Limits(max_row_bytes=limit)
        )
    frame = read.frame
    assert list(zip(frame["user_handle"], frame["interest_tag"].astype(str), strict=True)) == kept
    assert {r.reason: r.lines for r in read.rejected} == (
        {f"the row is longer than {limit} bytes": tuple(rejected)} if rejected else {}
    )


@pytest.mark.parametrize("quotes", range(1, 2 * LIMIT, 7))
def test_a_long_row_is_read_past_whole_even_when_its_doubled_quotes_straddle_blocks(
    tmp_path: Path, quotes: int
) -> None:
    # Rows are read past a block of LIMIT bytes at a time: a "" cut in two must stay one quote.
    # Handles of 1, 2 and 3 digits put the pairs at odd and even offsets from the blocks.
    value = written('"' * quotes + "a,\nb", plain=False)
    text = "".join(
        f"{handle},{value},2017-06-27\n{handle + 1},go,2017-06-27\n" for handle in (1, 10, 100)
    )
    path = write(tmp_path, "user_interests.csv", "user_handle,interest_tag,date_followed\n" + text)
    read = read_table(path, "user_interests", limits=Limits(max_row_bytes=LIMIT))
    fits = {h: len(f"{h},{value},2017-06-27\n") <= LIMIT for h in (1, 10, 100)}
    assert read.frame["user_handle"].tolist() == [
        handle for h in (1, 10, 100) for handle in ((h, h + 1) if fits[h] else (h + 1,))
    ]
    long = tuple(line for h, line in zip((1, 10, 100), (2, 5, 8), strict=True) if not fits[h])
    assert [r.lines for r in read.rejected] == ([long] if long else [])


@pytest.mark.parametrize("length", [LIMIT + 1, 2 * LIMIT, 3 * LIMIT + 5])
@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r"])
def test_long_rows_ending_at_every_offset_of_a_block_keep_later_lines_exact(
    tmp_path: Path, length: int, line_break: str
) -> None:
    # A padding row of every length puts the long row's line break at every offset of a block,
    # a \r\n cut in two included.
    for padding in range(1, LIMIT - 20):
        row = f"2,{'x' * (length - len('2,,2017-06-27') - len(line_break))},2017-06-27"
        text = line_break.join(
            [
                "user_handle,interest_tag,date_followed",
                f"1,{'p' * padding},2017-06-27",
                row,
                "3,go,2017-06-27",
                "4,go,never",
                "",
            ]
        )
        path = write(tmp_path, "user_interests.csv", text)
        read = read_table(path, "user_interests", limits=Limits(max_row_bytes=LIMIT))
        assert read.frame["user_handle"].tolist() == [1, 3], padding
        assert rejected_as_tuples(read.rejected) == [
            (f"the row is longer than {LIMIT} bytes", (3,)),
            ("date_followed is not a date", (5,)),
        ], padding


@pytest.mark.slow
def test_rows_of_many_megabytes_are_rejected_rows_never_held_in_memory(tmp_path: Path) -> None:
    size = 16 * MAX_ROW_BYTES
    breaks = size // 4
    path = tmp_path / "user_interests.csv"
    with path.open("w") as out:
        out.write("user_handle,interest_tag,date_followed\n1,python,2017-06-27\n")
        out.write("9" * size + ",python,2017-06-27\n")  # line 3: one line of 16 MiB
        out.write('2,"' + "abc\n" * breaks + '",2017-06-27\n')  # lines 4 to 4 + breaks
        out.write("3,go,never\n4,go,2017-06-27\n")

    tracemalloc.start()
    try:
        read = read_table(path, "user_interests")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert read.frame["user_handle"].tolist() == [1, 4]
    assert rejected_as_tuples(read.rejected) == [
        (f"the row is longer than {MAX_ROW_BYTES:,} bytes", (3, 4)),
        ("date_followed is not a date", (5 + breaks,)),
    ]
    assert peak < size / 2  # a few blocks of MAX_ROW_BYTES, never a whole row


# --- the survey: user_answers.csv and questions.csv ------------------------------------------


def survey(directory: Path, answers: list[str], questions: list[str] | None = None) -> Path:
    """Write a survey export: answers, and questions when given (both with their real headers)."""
    export(directory, "user_answers", *answers)
    if questions is not None:
        export(directory, "questions", *questions)
    return directory


QUESTIONS = [
    'Q1,"I prefer learning by doing (exercises) over reading.",1,5,false',
    "Q2,I plan my study time.,-3,3,TRUE",
]


def test_the_survey_files_load_with_their_values_and_types(tmp_path: Path) -> None:
    survey(tmp_path, ["7,Q1,4,2017-06-27 16:26:52", " 8 , Q2 ,-2.5,"], QUESTIONS)
    tables = load_tables(tmp_path)
    assert tables.user_answers is not None and tables.questions is not None
    assert tables.user_answers.to_dict("records") == [
        {
            "user_handle": 7,
            "question_id": "Q1",
            "answer": 4.0,
            "answered_at": pd.Timestamp("2017-06-27 16:26:52"),
        },
        {"user_handle": 8, "question_id": "Q2", "answer": -2.5, "answered_at": pd.NaT},
    ]
    assert tables.questions.to_dict("records") == [
        {
            "question_id": "Q1",
            "text": "I prefer learning by doing (exercises) over reading.",
            "scale_min": 1.0,
            "scale_max": 5.0,
            "reverse_keyed": False,
        },
        {
            "question_id": "Q2",
            "text": "I plan my study time.",
            "scale_min": -3.0,
            "scale_max": 3.0,
            "reverse_keyed": True,
        },
    ]
    assert tables.report.rejected == []


def test_a_folder_with_only_the_survey_files_loads(tmp_path: Path) -> None:
    tables = load_tables(survey(tmp_path, ["7,Q1,4,2017-06-27"], QUESTIONS))
    assert tables.user_answers is not None and tables.questions is not None
    assert (tables.user_interests, tables.user_course_views) == (None, None)
    assert (tables.user_assessment_scores, tables.course_tags) == (None, None)
    assert tables.report.missing == [
        "user_interests",
        "user_course_views",
        "user_assessment_scores",
        "course_tags",
    ]
    assert tables.report.rows_kept == {"user_answers": 1, "questions": 2}


def test_answered_at_and_the_question_text_are_optional_columns(tmp_path: Path) -> None:
    answers = write(tmp_path, "user_answers.csv", "user_handle,question_id,answer\n1,Q1,3\n")
    questions = write(tmp_path, "questions.csv", "question_id,scale_min,scale_max,reverse_keyed\n")
    assert read_table(answers, "user_answers").frame["answered_at"].isna().all()
    assert str(read_table(answers, "user_answers").frame["answered_at"].dtype) == "datetime64[ns]"
    assert str(read_table(questions, "questions").frame["text"].dtype) == "category"


@pytest.mark.parametrize(
    ("written", "reverse"),
    [
        *[(word, True) for word in ("true", "TRUE", "True", " yes ", "YES", "1")],
        *[(word, False) for word in ("false", "False", "no", "No", "0", '"FALSE"')],
    ],
)
def test_reverse_keyed_is_true_false_yes_no_or_1_0_in_any_case(
    tmp_path: Path, written: str, reverse: bool
) -> None:
    path = export(tmp_path, "questions", f"Q1,text,1,5,{written}")
    read = read_table(path, "questions")
    assert read.rejected == ()
    assert read.frame["reverse_keyed"].tolist() == [reverse]


def test_a_repeated_question_id_keeps_the_first_row(tmp_path: Path) -> None:
    path = export(
        tmp_path,
        "questions",
        "Q1,first,1,5,false",
        "Q1,first,1,5,false",  # line 3: an exact duplicate, removed as one
        "Q1,second,1,7,true",  # line 4
        "Q2,bad scale,5,1,false",  # line 5
        "Q2,good,1,5,false",  # line 6: Q2's first valid row
    )
    read = read_table(path, "questions")
    assert read.frame[["question_id", "text"]].astype(str).values.tolist() == [
        ["Q1", "first"],
        ["Q2", "good"],
    ]
    assert rejected_as_tuples(read.rejected) == [
        ("question_id is already on an earlier line", (4,)),
        ("scale_max is not above scale_min", (5,)),
    ]
    assert read.duplicates == 1


@pytest.mark.parametrize("chunk_rows", [1, 2, 1_000_000])
def test_answers_off_their_questions_scale_or_to_unknown_questions_are_rejected_at_their_line(
    tmp_path: Path, chunk_rows: int
) -> None:
    rows = [
        "1,Q1,1,",  # 2: the ends of a scale are on it
        "1,Q2,3,",  # 3
        "2,Q1,0.5,",  # 4: below 1
        "2,Q2,3.5,",  # 5: above 3
        "3,Q3,2,",  # 6: no such question
        "3,q1,2,",  # 7: ids keep their case
        "4,Q1,4.5,",  # 8: any number on the scale
    ]
    tables = load_tables(survey(tmp_path, rows, QUESTIONS), chunk_rows=chunk_rows)
    assert tables.user_answers is not None
    assert tables.user_answers[["user_handle", "answer"]].values.tolist() == [
        [1, 1.0],
        [1, 3.0],
        [4, 4.5],
    ]
    assert rejected_as_tuples(tables.report.rejected) == [
        ("answer is off its question's scale in questions.csv", (4, 5)),
        ("question_id is not in questions.csv", (6, 7)),
    ]


def test_answers_to_a_rejected_question_are_rejected_too(tmp_path: Path) -> None:
    tables = load_tables(survey(tmp_path, ["1,Q1,3,"], ["Q1,text,1,5,perhaps"]))
    assert [(r.file, r.reason, r.lines) for r in tables.report.rejected] == [
        ("user_answers.csv", "question_id is not in questions.csv", (2,)),
        ("questions.csv", "reverse_keyed is not true or false", (2,)),
    ]


def test_without_questions_csv_no_answer_is_checked_against_a_scale(tmp_path: Path) -> None:
    tables = load_tables(survey(tmp_path, ["1,Q1,99,", "1,anything,-7,"]))
    assert tables.questions is None
    assert tables.user_answers is not None
    assert tables.user_answers["answer"].tolist() == [99.0, -7.0]
    assert tables.report.rejected == []
    assert tables.report.missing[-1] == "questions"


def test_the_scale_check_names_a_gzipped_questions_file(tmp_path: Path) -> None:
    export(tmp_path, "user_answers", "1,Q1,9,")
    text = "".join(f"{line}\n" for line in (HEADERS["questions"], *QUESTIONS))
    (tmp_path / "questions.csv.gz").write_bytes(gzip.compress(text.encode()))
    tables = load_tables(tmp_path)
    assert rejected_as_tuples(tables.report.rejected) == [
        ("answer is off its question's scale in questions.csv.gz", (2,))
    ]


@pytest.mark.parametrize("chunk_rows", [1, 2, 1_000_000])
def test_a_repeated_answer_keeps_the_latest_by_answered_at_then_the_later_line(
    tmp_path: Path, chunk_rows: int
) -> None:
    rows = [
        "1,Q1,5,2017-06-28",  # 2: the latest time, though not the last line
        "1,Q1,4,2017-06-27",  # 3
        "2,Q1,1,2017-06-27",  # 4
        "2,Q1,2,2017-06-27",  # 5: the same time, a later line
        "3,Q1,3,2017-06-27",  # 6: dated, so later than an undated answer
        "3,Q1,4,",  # 7
        "4,Q1,1,",  # 8
        "4,Q1,2,",  # 9: neither dated: the later line
        "1,Q2,0,2017-06-27",  # 10: another question, kept
        "1,Q2,0,2017-06-27",  # 11: an exact duplicate, removed as one
    ]
    tables = load_tables(survey(tmp_path, rows, QUESTIONS), chunk_rows=chunk_rows)
    answers = tables.user_answers
    assert answers is not None
    assert answers[["user_handle", "question_id", "answer"]].astype(str).values.tolist() == [
        ["1", "Q1", "5.0"],
        ["2", "Q1", "2.0"],
        ["3", "Q1", "3.0"],
        ["4", "Q1", "2.0"],
        ["1", "Q2", "0.0"],
    ]
    assert not answers.duplicated(["user_handle", "question_id"]).any()
    report = tables.report
    assert (report.answers_superseded, report.duplicates["user_answers"]) == (4, 1)
    assert report.rejected == []
    assert (report.rows_read["user_answers"], report.rows_kept["user_answers"]) == (10, 5)
    assert (
        "user_answers.csv: 4 answers superseded by a later answer of the same user to the same "
        "question (the latest is kept; not an error)"
    ) in report.summary()


def test_without_answered_at_the_later_line_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path, "user_answers.csv", "user_handle,question_id,answer\n1,Q1,1\n1,Q1,2\n1,Q1,3\n"
    )
    read = read_table(path, "user_answers")
    assert read.frame["answer"].tolist() == [3.0]
    assert (read.superseded, read.rows_rejected) == (2, 0)


@pytest.mark.parametrize(
    ("good", "bad", "refused"),
    [
        pytest.param(7, 3, True, id="30%-of-10"),
        pytest.param(9, 3, False, id="25%-is-not-more"),
    ],
)
def test_the_rejected_share_limit_counts_answers_off_their_scale(
    tmp_path: Path, good: int, bad: int, refused: bool
) -> None:
    rows = [f"{i},Q1,3," for i in range(good)] + [f"{i},Q1,6," for i in range(good, good + bad)]
    survey(tmp_path, rows, QUESTIONS)
    if not refused:
        assert load_tables(tmp_path, limits=SHARE).report.rows_kept["user_answers"] == good
        return
    with pytest.raises(TableError) as error:
        load_tables(tmp_path, limits=SHARE)
    assert str(error.value).startswith(
        "user_answers.csv: 3 of 10 rows rejected (30.0%), more than MAX_REJECTED_SHARE (25%) "
        "allows once more than 2 rows are; the first at line 9 "
        "(answer is off its question's scale in questions.csv)"
    )


def test_superseded_answers_are_not_rejected_rows_for_the_limit(tmp_path: Path) -> None:
    survey(tmp_path, [f"1,Q1,{i % 5 + 1},2017-06-{i + 1:02}" for i in range(20)], QUESTIONS)
    tables = load_tables(tmp_path, limits=SHARE)
    assert (tables.report.answers_superseded, tables.report.rejected) == (19, [])
    assert tables.user_answers is not None
    assert tables.user_answers["answer"].tolist() == [5.0]


def test_a_missing_survey_file_is_mentioned_only_when_the_other_one_is_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    export(tmp_path, "user_interests", GOOD_ROWS["user_interests"])
    with caplog.at_level(logging.WARNING, logger="generator.tables"):
        summary = load_tables(tmp_path).report.summary()
    assert not any("user_answers" in line or "questions" in line for line in summary)
    assert "user_answers" not in caplog.text and "questions" not in caplog.text

    export(tmp_path, "user_answers", GOOD_ROWS["user_answers"])
    assert (
        "questions.csv: not found, so answers are not checked against scales "
        "(the scales come from the answers seen)"
    ) in load_tables(tmp_path).report.summary()

    (tmp_path / "user_answers.csv").unlink()
    export(tmp_path, "questions", GOOD_ROWS["questions"])
    assert any(
        line.startswith("user_answers.csv: not found, so ") and line.endswith(" cannot be built")
        for line in load_tables(tmp_path).report.summary()
    )


# --- the report ------------------------------------------------------------------------------


def test_the_summary_lists_rejected_lines_and_shortens_long_lists(tmp_path: Path) -> None:
    rows = [GOOD_ROWS["user_course_views"]] + ["1,2017-06-27,aws,875,Beginner,-1"] * 15
    export(tmp_path, "user_course_views", *rows)
    export(tmp_path, "course_tags", "aws,cloud", "gcp,")
    summary = load_tables(tmp_path).report.summary()
    assert summary == [
        "user_interests.csv: not found, so the interests model cannot be built",
        "user_course_views.csv: 16 rows read, 1 kept, 0 duplicates removed, 15 rejected",
        "user_assessment_scores.csv: not found, so the assessments model cannot be built",
        "course_tags.csv: 2 rows read, 1 kept, 0 duplicates removed, 0 rejected",
        "user_course_views.csv: 15 rows rejected (view_time_seconds is negative) "
        "at lines 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 5 more",
        "course_tags.csv: 1 course without tags (not an error)",
    ]


def test_the_summary_of_a_single_rejected_row_is_singular(tmp_path: Path) -> None:
    export(tmp_path, "user_interests", "x,python,2017-06-27")
    summary = load_tables(tmp_path).report.summary()
    assert "user_interests.csv: 1 row rejected (user_handle is not an integer) at line 2" in summary


def test_loading_logs_one_line_per_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    export(tmp_path, "user_interests", GOOD_ROWS["user_interests"], "x,python,2017-06-27")
    with caplog.at_level(logging.INFO, logger="generator.tables"):
        load_tables(tmp_path)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert infos[0].startswith("user_interests.csv: 2 rows read, 1 kept, 0 duplicates, 1 rejected")


def test_a_fresh_report_is_empty() -> None:
    report = LoadReport()
    assert report.summary() == []
    assert report.rejected == []


# --- the loader's rules as a public API for other readers (convert_rows, Rejections) ---------

# Reasons found by the CSV parser or by checks against another column (finish_table), never by
# converting one row's fields.
NOT_ROW_BY_ROW = {
    "the row has more fields than the header",
    "question_id is already on an earlier line",
    "scale_max is not above scale_min",
}


def fields_of(text: str, width: int) -> pd.DataFrame:
    """Split CSV lines (no quoted line breaks) into str fields labelled by position, padding a
    short row with empty fields and a blank line with all empty ones, as the loader reads them."""
    rows = [row + [""] * (width - len(row)) for row in csv.reader(io.StringIO(text))]
    return pd.DataFrame(rows, columns=range(width), dtype=object)


@pytest.mark.parametrize("table", list(HEADERS))
def test_converting_a_chunk_of_bad_rows_finds_what_reading_the_file_finds(
    tmp_path: Path, table: str
) -> None:
    bad = [row for name, row, reason in BAD_ROWS if name == table and reason not in NOT_ROW_BY_ROW]
    rows = [GOOD_ROWS[table], *bad, "", OTHER_ROWS[table]]
    read = read_table(export(tmp_path, table, *rows), table)
    header = HEADERS[table].split(",")
    columns = locate_columns(header, SCHEMAS[table], f"{table}.csv").of

    converted = convert_rows(fields_of("\n".join(rows), len(header)), table, columns, {})

    found = {
        reason: tuple(int(p) + 2 for p in at)
        for reason, at in converted.problems.items()
        if len(at)  # a blank line may leave a reason with no row
    }
    assert found == {r.reason: r.lines for r in read.rejected}  # line = position + 2 (header)
    assert converted.blank.tolist() == [len(rows) - 2]
    assert converted.kept(len(rows)).sum() == len(read.frame) == 2


def test_rows_counted_beyond_the_lines_kept_are_reported_with_their_count() -> None:
    rejected = Rejections()

    rejected.add_counted("user_handle is empty", 250, np.array([4, 9]))
    rejected.add("user_handle is empty", np.array([3]))
    rejected.add_counted("answer is empty", 1, np.array([20]))

    assert rejected.total() == 252
    assert rejected.rows("a.csv") == (
        RejectedRows("a.csv", "user_handle is empty", (3, 4, 9), 251),
        RejectedRows("a.csv", "answer is empty", (20,), 1),
    )


@pytest.mark.parametrize(("count", "lines"), [(5, []), (0, []), (1, [2, 3])])
def test_a_count_without_lines_or_below_its_lines_is_refused(count: int, lines: list[int]) -> None:
    rejected = Rejections()
    with pytest.raises(ValueError, match="rejected for 'answer is empty'"):
        rejected.add_counted("answer is empty", count, np.array(lines, dtype=np.int64))
    assert rejected.total() == 0
    assert rejected.rows("a.csv") == ()
