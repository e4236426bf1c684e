"""A corpus of broken exports (tests/exports/): each loads with a precise report or is refused.

Loaded means: every valid row kept, every other row reported by file, line and reason, and the
generator then publishes sane neighbours from what was kept. Refused means: a TableError whose
message names the file and, where the problem has one, the line and the column. Damage confined to
a row (bytes that are not UTF-8 in a value, a row too long to read) is a rejected row.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from generator import pipeline
from generator.tables import MAX_ROW_BYTES, TableError, load_tables
from store.memory import MemoryStore

EXPORTS = Path(__file__).parent / "exports"
VIEWS = "user_course_views"
INTERESTS = "user_interests"
ANSWERS = "user_answers"
QUESTIONS = "questions"
MAX_INT64 = 2**63 - 1
# The column whose values in file order say which rows a case keeps.
KEY = {
    VIEWS: "user_handle",
    INTERESTS: "user_handle",
    ANSWERS: "user_handle",
    QUESTIONS: "question_id",
}

# case: (table, key values kept in file order, {reason: lines}, duplicates removed)
LOADED: dict[str, tuple[str, list[int] | list[str], dict[str, tuple[int, ...]], int]] = {
    "header_only": (VIEWS, [], {}, 0),
    "header_only_no_newline": (VIEWS, [], {}, 0),
    "extra_columns": (VIEWS, [1, 2], {}, 0),
    "bom": (VIEWS, [1], {"view_time_seconds is not a number": (3,)}, 0),
    "crlf": (VIEWS, [1, 3], {"view_time_seconds is negative": (3,)}, 0),
    "quoted_newlines": (
        VIEWS,
        [1, 3],
        {"view_time_seconds is not a number": (4,), "view_date is empty": (8,)},
        0,
    ),
    "blank_lines": (VIEWS, [1], {"view_time_seconds is not a number": (6,)}, 0),
    "bad_dates": (
        VIEWS,
        [1, 5],
        {
            "view_date is not a date": (3, 4, 5),
            "view_date is out of range": (7,),
            "view_date is empty": (8,),
        },
        0,
    ),
    "bad_numbers": (
        VIEWS,
        [1, 6],
        {"view_time_seconds is not a number": (3, 4, 5, 6), "view_time_seconds is empty": (8,)},
        0,
    ),
    "negative_and_huge_times": (
        VIEWS,
        [1, 3, 7],
        {
            "view_time_seconds is negative": (3,),
            "view_time_seconds is too large": (5,),
            "view_time_seconds is not finite": (6, 7),
        },
        0,
    ),
    "bad_handles": (
        VIEWS,
        [1, MAX_INT64],
        {
            "user_handle is empty": (3, 4),
            "user_handle is not an integer": (5, 7, 9),
            "user_handle is negative": (6,),
            "user_handle is too large": (8,),
        },
        0,
    ),
    "duplicates": (VIEWS, [1, 2, 1], {}, 2),
    "ragged_rows": (
        VIEWS,
        [1, 4],
        {"the row has more fields than the header": (3,), "view_time_seconds is empty": (4,)},
        0,
    ),
    "interests_blank_tags": (INTERESTS, [1, 4], {"interest_tag is empty": (3, 4)}, 0),
    "latin1": (VIEWS, [1], {"course_id holds bytes that are not UTF-8": (3,)}, 0),
    "answers_bad_values": (
        ANSWERS,
        [1, 9],
        {
            "answer is not a number": (3, 9),
            "answer is empty": (4,),
            "answer is not finite": (5,),
            "answer is out of range": (6,),
            "question_id is empty": (7,),
            "answered_at is not a date": (8,),
        },
        0,
    ),
    # user 1's latest answer is on line 3; user 2's two at one time: the later line, 7
    "answers_repeated": (ANSWERS, [1, 2, 3], {}, 1),
    "questions_bad_rows": (
        QUESTIONS,
        ["q1", "q7"],
        {
            "reverse_keyed is not true or false": (3,),
            "scale_max is not above scale_min": (4,),
            "reverse_keyed is empty": (5,),
            "question_id is already on an earlier line": (6,),
            "scale_max is not a number": (7,),
            "scale_max is out of range": (8,),
        },
        0,
    ),
}
# case: answers superseded by a later answer to the same question (not rejected rows)
SUPERSEDED = {"answers_repeated": 3}

# case: (table, fragments the message must hold)
REFUSED: dict[str, tuple[str, list[str]]] = {
    "empty": (VIEWS, ["user_course_views.csv", "empty"]),
    "missing_column": (VIEWS, ["user_course_views.csv", "column 'view_time_seconds'"]),
    "answers_missing_column": (ANSWERS, ["user_answers.csv", "missing required column 'answer'"]),
    "semicolons": (VIEWS, ["user_course_views.csv", "'user_handle'", "separated by commas"]),
    "tabs": (VIEWS, ["user_course_views.csv", "'view_date'", "separated by commas"]),
    "mostly_latin1": (
        VIEWS,
        ["user_course_views.csv", "2 of 3 rows", "line 3", "column 'course_id'", "UTF-8"],
    ),
    "unclosed_quote": (
        VIEWS,
        ["user_course_views.csv", "line 3", "column 'course_id'", "never closed"],
    ),
}


def export_dir(tmp_path: Path, case: str, table: str) -> Path:
    """Return a folder holding the corpus file `case` as the export of `table`."""
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copyfile(EXPORTS / f"{case}.csv", folder / f"{table}.csv")
    return folder


def test_the_corpus_is_the_one_described_here():
    assert sorted(p.stem for p in EXPORTS.glob("*.csv")) == sorted([*LOADED, *REFUSED])


@pytest.mark.parametrize("case", sorted(LOADED))
def test_a_damaged_export_loads_every_valid_row_and_reports_each_other_row(tmp_path, case):
    table, kept, rejected, duplicates = LOADED[case]

    tables = load_tables(export_dir(tmp_path, case, table))

    report = tables.report
    frame = getattr(tables, table)
    assert frame is not None
    assert frame[KEY[table]].tolist() == kept
    assert {r.reason: r.lines for r in report.rejected} == rejected
    assert all(r.file == f"{table}.csv" and r.count == len(r.lines) for r in report.rejected)
    assert report.duplicates[table] == duplicates
    assert report.answers_superseded == SUPERSEDED.get(case, 0)
    assert report.rows_read[table] == (
        len(kept) + duplicates + sum(map(len, rejected.values())) + report.answers_superseded
    )
    summary = "\n".join(report.summary())
    for reason, lines in rejected.items():
        assert f"({reason}) at line{'s' if len(lines) > 1 else ''} {lines[0]}" in summary


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_unusable_export_is_refused_naming_file_line_and_column(tmp_path, case):
    table, fragments = REFUSED[case]

    with pytest.raises(TableError) as refused:
        load_tables(export_dir(tmp_path, case, table))

    message = str(refused.value)
    for fragment in fragments:
        assert fragment in message
    assert "Error tokenizing" not in message and "C error" not in message  # pandas' own words


@pytest.mark.parametrize(
    "case", sorted(c for c in LOADED if LOADED[c][1] and LOADED[c][0] in (VIEWS, INTERESTS))
)
def test_what_a_damaged_export_keeps_gives_sane_neighbours(tmp_path, case):
    table, kept, _, _ = LOADED[case]
    model = "interests" if table == INTERESTS else "course_views"
    tables = load_tables(export_dir(tmp_path, case, table))
    store = MemoryStore()

    pipeline.run(tables, store, [model], top_n_stored=5, threads=1)

    run = store.current_run(model)
    assert run is not None
    # A user whose only evidence is 0 seconds has no list, as in any export.
    lists = [found for user in set(kept) if (found := store.get_list(run, user)) is not None]
    assert lists
    for found in lists:
        user = found.user_handle
        for neighbour in found.neighbours:
            assert neighbour.user_handle != user
            assert math.isfinite(neighbour.score) and 0 < neighbour.score <= 1.0 + 1e-6


HEADER = "user_handle,view_date,course_id,author_handle,level,view_time_seconds\n"
BIG = 4 * MAX_ROW_BYTES  # characters in one field


@pytest.mark.slow
def test_a_handle_of_megabytes_is_one_rejected_row(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    with (folder / f"{VIEWS}.csv").open("w") as out:
        out.write(HEADER + "1,2017-06-27,aws,875,Beginner,10\n")
        out.write("9" * BIG + ",2017-06-27,aws,875,Beginner,10\n")
        out.write("3,2017-06-27,aws,875,Beginner,30\n")

    tables = load_tables(folder)

    assert tables.user_course_views is not None
    assert tables.user_course_views["user_handle"].tolist() == [1, 3]
    assert [(r.reason, r.lines) for r in tables.report.rejected] == [
        (f"the row is longer than {MAX_ROW_BYTES:,} bytes", (3,))
    ]


@pytest.mark.slow
def test_a_quoted_field_of_megabytes_across_lines_is_one_rejected_row_and_later_lines_exact(
    tmp_path,
):
    folder = tmp_path / "export"
    folder.mkdir()
    breaks = BIG // 4
    with (folder / f"{VIEWS}.csv").open("w") as out:
        out.write(HEADER + '1,2017-06-27,"' + "abc\n" * breaks + '",875,Beginner,10\n')
        out.write("2,2017-06-27,aws,875,Beginner,twenty\n")
        out.write("3,2017-06-27,aws,875,Beginner,30\n")

    tables = load_tables(folder)

    assert tables.user_course_views is not None
    assert tables.user_course_views["user_handle"].tolist() == [3]
    assert [(r.reason, r.lines) for r in tables.report.rejected] == [
        (f"the row is longer than {MAX_ROW_BYTES:,} bytes", (2,)),
        ("view_time_seconds is not a number", (3 + breaks,)),
    ]
