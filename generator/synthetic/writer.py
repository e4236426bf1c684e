"""Write a synthetic export: the four files in the real export's format, for any number of users.

Users are drawn and written in chunks, each from its own seeded generator, so memory stays one
chunk's worth however many users there are and the same seed always gives byte-identical files.
A survey (user_answers.csv and questions.csv) is drawn from generators of its own, so asking for
one leaves the four files as they are without it. File and column names come from the table
schemas the loader reads the export with.
"""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from generator.synthetic.catalogue import COURSE_TAGS, build_catalogue
from generator.synthetic.survey import QUESTIONS, answer_rows, build_survey
from generator.synthetic.users import user_rows
from generator.tables import PLATFORM_TABLES, SURVEY_TABLES, column_names, file_name

log = logging.getLogger(__name__)

# Chunk size is part of the output's definition (each chunk has its own generator), so changing it
# changes the files a seed produces.
CHUNK_USERS = 20_000


def synthesize(
    users: int,
    out_dir: Path,
    seed: int = 0,
    catalogue_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    chunk_users: int = CHUNK_USERS,
    survey: bool = False,
) -> dict[str, int]:
    """Write the four export files for users 1..users into out_dir and return rows per file.

    Real course_tags.csv and user_assessment_scores.csv files in `catalogue_dir` are reused. Users
    are drawn `chunk_users` at a time; `progress` is told how many are written after each chunk.
    With `survey`, every user's survey answers and the questions are written too. Survey files
    left in out_dir by an earlier export are removed first, so the folder holds one export.
    """
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}")
    if chunk_users < 1:
        raise ValueError(f"chunk_users must be at least 1, got {chunk_users}")
    out_dir.mkdir(parents=True, exist_ok=True)
    catalogue = build_catalogue(np.random.default_rng([seed, 0]), catalogue_dir)
    tables = PLATFORM_TABLES + (SURVEY_TABLES if survey else ())
    questions = (
        build_survey(np.random.default_rng([seed, 2]), len(catalogue.topic_weight))
        if survey
        else None
    )
    _remove_stale_survey(out_dir)
    rows = dict.fromkeys(tables, 0)
    with ExitStack() as stack:
        files = {
            table: stack.enter_context(
                (out_dir / file_name(table)).open("w", encoding="utf-8", newline="")
            )
            for table in tables
        }
        for table, file in files.items():
            file.write(",".join(f'"{column}"' for column in column_names(table)) + "\n")
        rows[COURSE_TAGS] = _write(files[COURSE_TAGS], catalogue.course_tag_rows)
        if questions is not None:
            rows[QUESTIONS] = _write(files[QUESTIONS], questions.question_rows())
        for chunk, first in enumerate(range(1, users + 1, chunk_users)):
            size = min(chunk_users, users + 1 - first)
            answers = (
                None
                if questions is None
                else functools.partial(
                    answer_rows, np.random.default_rng([seed, 3, chunk]), questions
                )
            )
            frames = user_rows(
                np.random.default_rng([seed, 1, chunk]), catalogue, first, size, answers
            )
            for table, frame in frames.items():
                rows[table] += _write(files[table], frame)
            # Release this chunk before the next one is drawn, so memory stays one chunk's worth.
            del frames
            if progress is not None:
                progress(first + size - 1)
    written = {file_name(table): count for table, count in rows.items()}
    log.info("wrote %s users to %s: %s", users, out_dir, written)
    return written


def _remove_stale_survey(out_dir: Path) -> None:
    """Remove survey files an earlier export left in out_dir, which would be read with this one."""
    for table in SURVEY_TABLES:
        for path in (out_dir / file_name(table), out_dir / f"{file_name(table)}.gz"):
            if path.is_file():
                path.unlink()
                log.info("removed %s, left by an earlier export", path)


def _write(file: IO[str], frame: pd.DataFrame) -> int:
    """Append frame to an open CSV file in the export's quoting and return its row count."""
    frame.to_csv(file, header=False, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    return len(frame)
