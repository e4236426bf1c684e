"""The synthetic export's aggregate figures are each within a stated tolerance of the real ones."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from generator.synthetic import synthesize
from generator.synthetic.realism import (
    DATA_MD,
    DATA_MD_FIGURES,
    FIGURES,
    Figure,
    Tolerance,
    compare,
    export_users,
    figures,
    interest_saves,
    read_export,
    real_figures,
    save_figures,
)

# The real sample's size: the tolerances are stated for an export of as many users.
USERS = 10_000


@functools.cache
def synthetic_figures(catalogue: Path | None) -> dict[str, float]:
    """Write the default synthetic export (seed 0) once per catalogue and measure it."""
    with tempfile.TemporaryDirectory(prefix="realism-") as folder:
        synthesize(USERS, Path(folder), seed=0, catalogue_dir=catalogue)
        frames = read_export(Path(folder))
        return figures(frames, export_users(frames))


@functools.cache
def sample_figures(sample: Path | None) -> dict[str, float]:
    return real_figures(sample)


@pytest.fixture(params=["real catalogue", "built-in catalogue"])
def synthetic(request: pytest.FixtureRequest) -> dict[str, float]:
    """Measure the export `synthesize` writes with the real course files, and without them."""
    catalogue = request.getfixturevalue("sample_dir") if request.param == "real catalogue" else None
    return synthetic_figures(catalogue)


@pytest.mark.parametrize("figure", FIGURES, ids=lambda figure: figure.name)
def test_each_figure_of_the_synthetic_export_is_within_its_tolerance_of_the_real_one(
    figure: Figure, synthetic: dict[str, float], request: pytest.FixtureRequest
) -> None:
    sample = request.getfixturevalue("sample_dir") if figure.source != DATA_MD else None
    real = sample_figures(sample)[figure.name]
    found = synthetic[figure.name]
    assert figure.tolerance.allows(real, found), (
        f"{figure.name}: synthetic {found:.4g}, real {real:.4g} ({figure.source}), "
        f"allowed {figure.tolerance.describe()}: {figure.tolerance.reason}"
    )


def test_figures_from_data_md_are_those_whose_source_is_data_md() -> None:
    assert set(DATA_MD_FIGURES) == {f.name for f in FIGURES if f.source == DATA_MD}


def test_without_the_sample_only_data_md_figures_are_known() -> None:
    assert sample_figures(None) == dict(DATA_MD_FIGURES)


def test_every_figure_says_why_its_tolerance_is_what_it_is() -> None:
    assert all(figure.tolerance.reason for figure in FIGURES)
    assert len({figure.name for figure in FIGURES}) == len(FIGURES)


def test_the_sample_files_measure_what_data_md_says_of_them(sample_dir: Path) -> None:
    real = sample_figures(sample_dir)
    assert real["interest rows per user, mean"] == pytest.approx(29.75, abs=0.01)
    assert [real[f"interest rows per user, {q}"] for q in ("25%", "median", "75%", "max")] == [
        6,
        13,
        29,
        2_851,
    ]
    assert real["users with one interest row, share"] == 1_050 / USERS
    assert real["users with 100+ interest rows, share"] == 515 / USERS
    assert real["users with assessments, share"] == 3_114 / USERS
    assert real["assessments per assessed user, mean"] == pytest.approx(2.1, abs=0.05)
    assert real["assessment score, mean"] == pytest.approx(142.5, abs=0.05)
    assert real["assessment score, std"] == pytest.approx(55.6, abs=0.05)
    assert real["assessment tags, distinct"] == 54
    assert (real["courses"], real["course tags, distinct"]) == (5_942, 998)
    assert real["courses without a tag"] == 112
    assert real["most used course tag, courses"] == 484


def test_interest_rows_are_counted_with_their_exact_duplicates_as_the_real_counts_are() -> None:
    interests = pd.DataFrame(
        {
            "user_handle": [1, 1, 1, 2, 2],
            "interest_tag": ["c#", "c#", "sql", "c#", "sql"],
            "date_followed": ["2017-06-27 16:26:52"] * 3 + ["2017-07-01 10:00:00"] * 2,
        }
    )
    saves = interest_saves(interests)
    assert saves.to_dict("list") == {
        "user_handle": [1, 2],
        "date_followed": ["2017-06-27 16:26:52", "2017-07-01 10:00:00"],
        "N Rows": [3, 2],
    }
    measured = figures({"user_interests": interests}, users=2)
    assert measured["interest rows per user, mean"] == 2.5
    assert measured["interest rows that are exact duplicates, share"] == 1 / 5
    assert measured["most followed tag, rows per user"] == 3 / 2


def test_a_user_who_saved_twice_counts_once_among_those_who_followed_at_one_time() -> None:
    saves = pd.DataFrame(
        {"user_handle": [1, 1, 2], "date_followed": ["a", "b", "a"], "N Rows": [2, 3, 1]}
    )
    measured = save_figures(saves, users=2)
    assert measured["users who followed everything at one time, share"] == 0.5
    assert measured["follow times per user, mean"] == 1.5
    assert measured["interest rows per user, max"] == 5


@pytest.mark.parametrize(
    ("tolerance", "real", "inside", "outside"),
    [
        (Tolerance(0.1, 0, "why"), 100, [90, 110], [89, 111]),
        (Tolerance(0.1, 1, "why"), 5, [4, 6], [3.9, 6.1]),
        (Tolerance(0, 0, "why", factor=2), 100, [50, 200], [49, 201]),
    ],
)
def test_a_tolerance_allows_what_its_bounds_say_and_no_more(
    tolerance: Tolerance, real: float, inside: list[float], outside: list[float]
) -> None:
    assert all(tolerance.allows(real, value) for value in inside)
    assert not any(tolerance.allows(real, value) for value in outside)


def test_comparisons_keep_the_order_of_the_figures_and_leave_out_one_sided_ones() -> None:
    names = [figure.name for figure in FIGURES]
    synthetic = {names[0]: 1.0, names[2]: 2.0, names[5]: 3.0}
    real = {names[2]: 4.0, names[0]: 2.0}
    paired = compare(synthetic, real)
    assert [(c.figure.name, c.real, c.synthetic, c.ratio) for c in paired] == [
        (names[0], 2.0, 1.0, 0.5),
        (names[2], 4.0, 2.0, 0.5),
    ]
