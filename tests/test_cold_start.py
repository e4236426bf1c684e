"""The cold-start evaluation: newcomers' profiles searched among everyone else, scored as served."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

import run_generator
from generator.evaluate import (
    COLD_START_COURSES,
    Holdout,
    Matrices,
    evaluate,
    profiles,
    search,
    split,
)
from generator.synthetic import synthesize
from generator.tables import load_tables
from similarity.features import UserIndex
from similarity.models import MODELS
from similarity.space import Profile
from tests.builders import dated_tables

# The synthetic export here has no survey: every other model.
EVERY_MODEL = sorted(set(MODELS) - {"survey"})


def day(number: int) -> str:
    """Return the date `number` days after 2017-06-01."""
    return str((pd.Timestamp("2017-06-01") + pd.Timedelta(days=number)).date())


def group(users: range, prefix: str, tag: str) -> tuple[list, list, list]:
    """Six courses each, one a day; user j's own course j comes last, so it is the one hidden."""
    courses = [f"{prefix}{i}" for i in range(6)]
    views, interests, assessments = [], [], []
    for j, user in enumerate(users):
        order = [c for c in courses if c != courses[j]] + [courses[j]]
        views += [(user, course, day(m), 1200.0) for m, course in enumerate(order)]
        interests.append((user, tag, "2017-05-01 09:00:00"))
        assessments.append((user, tag, "2017-05-02 10:00:00", 150.0 + 20 * j))
    return views, interests, assessments


# Two taste groups; the javascript one is larger, so its courses are the most popular ones.
PY = group(range(1, 5), "py", "python")
JS = group(range(11, 17), "js", "javascript")


def two_groups(extra_interests: list | None = None):
    return dated_tables(
        views=PY[0] + JS[0],
        interests=PY[1] + JS[1] + (extra_interests or []),
        assessments=PY[2] + JS[2],
    )


def newcomers(tables):
    """Return the training tables, the hold-out and the evaluated users' profiles."""
    index = UserIndex.of(tables)
    train, hidden = split(tables)
    holdout = Holdout.build(tables, train, hidden, index)
    return train, holdout, profiles(train, index.handles[holdout.users])


def test_a_profile_holds_every_interest_and_only_the_first_courses_by_first_view():
    listed_late_first = [
        (7, "planted", day(3), 60.0),
        (7, "second", day(2), 60.0),
        (7, "first", day(1), 60.0),
        (7, "first", day(5), 60.0),  # viewed again later: still first
        (7, "fourth", day(4), 60.0),
    ]
    tables = dated_tables(
        views=listed_late_first,
        interests=[(7, "go", "2017-05-01"), (7, "rust", "2017-05-02")],
        assessments=[(7, "go", "2017-05-03", 250.0)],
    )
    (profile,) = profiles(tables, np.array([7]))
    assert profile == Profile(interests=("go", "rust"), courses={"first": None, "second": None})
    assert COLD_START_COURSES == 2


def test_a_longer_profile_takes_the_next_course_by_first_view():
    views = [(7, "c", day(3), 60.0), (7, "b", day(2), 60.0), (7, "a", day(1), 60.0)]
    (profile,) = profiles(dated_tables(views=views), np.array([7]), courses=3)
    assert list(profile.courses) == ["a", "b", "c"]


def test_a_user_without_evidence_has_an_empty_profile():
    tables = dated_tables(views=[(7, "a", day(1), 60.0)], interests=[(7, "go", "2017-05-01")])
    assert profiles(tables, np.array([8])) == [Profile()]


def test_a_newcomers_profile_finds_their_taste_group_where_the_most_popular_courses_miss():
    report = evaluate(two_groups(), [MODELS["interests"]], k=1, top_n_stored=3, cold_start=True)
    assert report.cold_start["interests"].recall == 1.0
    assert report.cold_start["most_popular"].recall == pytest.approx(0.6)


def test_a_model_that_ignores_interests_works_from_the_first_courses_alone():
    models = [MODELS["course_views"], MODELS["course_factors"]]
    report = evaluate(two_groups(), models, k=1, top_n_stored=3, cold_start=True)
    assert report.cold_start["course_views"].recall == 1.0
    assert report.cold_start["course_views"].served == 1.0
    assert report.cold_start["course_factors"].served == 1.0


def test_a_model_that_reads_only_assessments_serves_no_newcomer():
    report = evaluate(two_groups(), [MODELS["assessments"]], k=1, top_n_stored=3, cold_start=True)
    assert report.models["assessments"].served > 0
    assert report.cold_start["assessments"].served == 0.0
    assert report.cold_start["assessments"].recall == 0.0


def test_the_users_own_row_is_never_a_neighbour_even_when_it_would_be_the_best():
    # User 1 alone follows django too: their profile is exactly their own row.
    tables = two_groups(extra_interests=[(1, "django", "2017-05-01 09:00:00")])
    train, holdout, asked = newcomers(tables)
    space = Matrices(train, holdout.index).space(MODELS["interests"])
    vectors = space.encode_many(asked)
    first = int(np.flatnonzero(holdout.index.handles[holdout.users] == 1)[0])
    unexcluded = space.search(vectors[first], 3, exact_max_users=space.users)
    assert unexcluded[0].user_handle == 1 and unexcluded[0].score == 1.0

    found = search(space, vectors, holdout.users, 3)
    assert not (found.rows == holdout.users[:, None]).any()
    assert set(holdout.index.handles[found.rows[first]]) == {2, 3, 4}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("export")
    synthesize(300, directory, seed=11)
    return load_tables(directory)


@pytest.mark.parametrize("model", EVERY_MODEL)
def test_profiles_are_encoded_all_at_once_as_the_space_encodes_each(export, model):
    train, holdout, asked = newcomers(export)
    space = Matrices(train, holdout.index).space(MODELS[model])
    together = space.encode_many(asked)
    assert together.shape == (len(asked), space.matrix.shape[1])
    assert together.nnz > 0 or model == "assessments"
    for at in range(0, len(asked), 7):
        one = space.encode(asked[at])
        np.testing.assert_allclose(together[at].toarray(), one.toarray(), atol=1e-6)


def test_the_hybrid_joined_from_the_evaluated_signals_is_the_registry_hybrids_space(export):
    train, holdout, asked = newcomers(export)
    joined = Matrices(train, holdout.index).space(MODELS["hybrid"])
    registry = MODELS["hybrid"].space(train, holdout.index)
    assert [(b.handle, b.weight, b.offset) for b in joined.blocks] == [
        (b.handle, b.weight, b.offset) for b in registry.blocks
    ]
    assert abs(joined.matrix - registry.matrix).max() < 1e-6
    profile = asked[0]
    assert abs(joined.encode(profile) - registry.encode(profile)).max() < 1e-6


def test_a_profile_of_all_ones_interests_finds_the_warm_neighbours(export):
    # Every interest a user followed in training is their interests row, and excluding their row
    # from the search is what the warm search does: the two measures must agree exactly.
    report = evaluate(export, [MODELS["interests"]], top_n_stored=10, cold_start=True)
    assert report.cold_start["interests"] == report.models["interests"]
    assert report.cold_start["interests"].recall > 0


def test_the_report_prints_a_cold_start_table_only_when_measured():
    measured = evaluate(two_groups(), [MODELS["course_views"]], k=1, cold_start=True)
    plain = evaluate(two_groups(), [MODELS["course_views"]], k=1)
    assert any(line.startswith("cold start:") for line in measured.table())
    assert sum(line.startswith("(most_popular)") for line in measured.table()) == 2
    assert not any(line.startswith("cold start:") for line in plain.table())
    assert "cold_start" not in plain.as_json()


@pytest.fixture
def fresh_logging():
    """Let each in-process run configure logging anew, as a new process would."""
    root = logging.getLogger()
    kept = root.handlers[:]
    yield
    root.handlers[:] = kept


@pytest.mark.usefixtures("fresh_logging")
@pytest.mark.parametrize(
    ("files", "built"),
    [
        (None, set(MODELS) - {"survey"}),
        (["user_course_views.csv"], {"course_views", "course_factors", "hybrid"}),
    ],
    ids=["every table", "course views only"],
)
def test_the_cli_reports_cold_start_scores_for_every_model_it_could_build(
    tmp_path, capsys, files, built
):
    synthesize(300, tmp_path, seed=2)
    for path in tmp_path.iterdir():
        if files is not None and path.name not in files:
            path.unlink()
    argv = ["evaluate", "--data-dir", str(tmp_path), "--cold-start", "--json", "--top-n", "10"]
    assert run_generator.main(argv, env={}) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document["models"]) == built
    assert set(document["cold_start"]) == built | {"most_popular"}
    assert document["cold_start_courses"] == COLD_START_COURSES
    for scores in document["cold_start"].values():
        assert 0.0 <= scores["recall"] <= 1.0 and 0.0 <= scores["ndcg"] <= 1.0
    assert document["cold_start"]["most_popular"] == document["baselines"]["most_popular"]
