"""The offline evaluation: a hold-out that leaks nothing, metrics that mean what they say."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from generator import pipeline
from generator.evaluate import Holdout, evaluate, most_popular, score, split
from generator.plot import plot
from generator.synthetic import synthesize
from generator.tables import load_tables
from generator.tune import tune
from similarity.features import UserIndex
from similarity.models import MODELS, SIGNALS
from similarity.weighting import combine, unit_rows
from store.memory import MemoryStore
from tests.builders import dated_tables

ROOT = Path(__file__).resolve().parents[1]


def day(number: int) -> str:
    """Return the date `number` days after 2017-06-01."""
    return str((pd.Timestamp("2017-06-01") + pd.Timedelta(days=number)).date())


def community(users: range, prefix: str, tag: str) -> tuple[list, list, list]:
    """Six courses each; user j's own course j comes last, so it is the one hidden from them."""
    courses = [f"{prefix}{i}" for i in range(6)]
    views, interests, assessments = [], [], []
    for j, user in enumerate(users):
        order = [c for c in courses if c != courses[j]] + [courses[j]]
        views += [(user, course, day(m), 1200.0) for m, course in enumerate(order)]
        interests += [(user, tag, "2017-05-01 09:00:00"), (user, f"{tag}-tools", "2017-05-01")]
        assessments.append((user, tag, "2017-05-02 10:00:00", 200.0 + 10 * j))
    return views, interests, assessments


PY = community(range(1, 5), "py", "python")
JS = community(range(5, 10), "js", "javascript")
# User 10 has two courses only: too few to hide any, so everything they did stays in.
FEW = ([(10, "py0", day(1), 600.0), (10, "js0", day(9), 600.0)], [(10, "python", "2017-08-01")])
COURSE_TAGS = [(f"py{i}", "python") for i in range(6)] + [
    (f"js{i}", "javascript") for i in range(6)
]


def obvious_export(
    extra_views: list | None = None,
    extra_interests: list | None = None,
    extra_assessments: list | None = None,
):
    return dated_tables(
        views=PY[0] + JS[0] + FEW[0] + (extra_views or []),
        interests=PY[1] + JS[1] + FEW[1] + (extra_interests or []),
        assessments=PY[2] + JS[2] + (extra_assessments or []),
        course_tags=COURSE_TAGS,
    )


def test_each_eligible_user_hides_the_last_fifth_of_their_courses_by_first_view():
    _, hidden = split(obvious_export())
    expected = {(u, f"py{j}") for j, u in enumerate(range(1, 5))} | {
        (u, f"js{j}") for j, u in enumerate(range(5, 10))
    }
    assert set(zip(hidden["user_handle"], hidden["course_id"].astype(str), strict=True)) == expected


def test_a_user_with_fewer_than_five_courses_keeps_everything_and_is_not_evaluated():
    train, hidden = split(obvious_export())
    assert 10 not in set(hidden["user_handle"])
    assert (train.user_course_views["user_handle"] == 10).sum() == 2
    assert (train.user_interests["user_handle"] == 10).sum() == 1


def test_hidden_views_and_anything_dated_after_the_cutoff_change_nothing():
    # Every eligible user's cutoff is day 5, when they first viewed their hidden course.
    planted_views = [(u, c, day(8), 9999.0) for u, c in [(1, "py0"), (6, "js1")]]  # hidden ones
    planted_views += [(2, "py0", day(20), 5000.0)]  # a training course, viewed again later
    planted_interests = [(1, "cobol", f"{day(5)} 08:00:00"), (7, "rust", "2017-07-01 12:00:00")]
    planted_assessments = [(3, "python", f"{day(6)} 10:00:00", 290.0), (8, "sql", day(30), 10.0)]
    clean = obvious_export()
    planted = obvious_export(planted_views, planted_interests, planted_assessments)

    clean_train, clean_hidden = split(clean)
    planted_train, planted_hidden = split(planted)

    pd.testing.assert_frame_equal(clean_hidden, planted_hidden)
    for table in ("user_course_views", "user_interests", "user_assessment_scores"):
        pd.testing.assert_frame_equal(
            getattr(clean_train, table), getattr(planted_train, table), obj=table
        )
    index = UserIndex.of(clean)
    for handle, model in MODELS.items():
        if not model.available(clean_train):  # the survey: this export has none
            continue
        before = model.matrix(clean_train, index)
        after = model.matrix(planted_train, index)
        assert before.shape == after.shape, handle
        assert (before != after).nnz == 0, handle


def test_planted_rows_would_change_the_models_if_they_were_not_held_out():
    # The test above can fail: the very same rows, dated before the cutoff, do reach the models.
    planted = obvious_export(extra_interests=[(1, "cobol", "2017-05-01")])
    index = UserIndex.of(planted)
    clean_train, _ = split(obvious_export())
    planted_train, _ = split(planted)
    before = MODELS["interests"].matrix(clean_train, index)
    assert before.shape != MODELS["interests"].matrix(planted_train, index).shape


@pytest.mark.parametrize(
    "model", ["course_views", "interests", "course_tags", "course_factors", "hybrid"]
)
def test_on_an_obvious_export_the_right_model_finds_every_hidden_course(model):
    report = evaluate(obvious_export(), [MODELS[model]], k=1, top_n_stored=3)
    assert report.users_evaluated == 9
    assert report.models[model].recall == 1.0
    assert report.models[model].ndcg == 1.0
    assert report.models[model].served == 1.0


def test_random_neighbours_and_most_popular_courses_miss_on_the_obvious_export():
    report = evaluate(obvious_export(), [MODELS["course_views"]], k=1, top_n_stored=3)
    assert report.baselines["random_neighbours"].recall < 1.0
    # The five JavaScript users make their courses the most popular, wrong for Python users.
    assert report.baselines["most_popular"].recall == pytest.approx(5 / 9)


def test_recall_counts_hits_among_at_most_k_hidden_and_ndcg_discounts_late_hits():
    tables = dated_tables(
        views=[(1, c, day(i), 60.0) for i, c in enumerate("abcdefghij")]
        + [(2, c, day(i), 60.0) for i, c in enumerate("abcde")]
    )
    train, hidden = split(tables)  # user 1 hides i and j, user 2 hides e
    index = UserIndex.from_tables(tables.user_course_views)
    holdout = Holdout.build(tables, train, hidden, index)
    column = {c: holdout.courses.get_loc(c) for c in "abcdefghij"}
    recommended = np.array([[column["e"], column["j"]], [column["e"], -1]])
    scores = score(recommended, holdout, served=np.array([True, False]))
    assert scores.recall == pytest.approx((1 / 2 + 1) / 2)
    ideal_two = 1 + 1 / np.log2(3)
    assert scores.ndcg == pytest.approx(((1 / np.log2(3)) / ideal_two + 1) / 2)
    assert scores.served == 0.5
    assert scores.coverage == pytest.approx(2 / 10)


def test_most_popular_never_recommends_a_course_the_user_has_seen():
    tables = obvious_export()
    train, hidden = split(tables)
    index = UserIndex.of(tables)
    holdout = Holdout.build(tables, train, hidden, index)
    recommended = most_popular(holdout, k=4)
    seen = holdout.seen[holdout.users].toarray() > 0
    rows = np.arange(len(holdout.users))[:, None].repeat(4, axis=1)
    assert not seen[rows[recommended >= 0], recommended[recommended >= 0]].any()


def test_an_export_with_only_course_views_is_evaluated_and_other_models_are_skipped(caplog):
    caplog.set_level(logging.WARNING)
    tables = dated_tables(views=PY[0] + JS[0])
    report = evaluate(tables, k=1, top_n_stored=3)
    assert set(report.models) == {"course_views", "course_factors", "hybrid"}
    assert report.models["course_views"].recall == 1.0
    for skipped in ("interests", "assessments", "course_tags"):
        assert f"skipping model {skipped}: no" in caplog.text
        assert any(skipped in message for message in report.skipped)


def test_the_hybrid_similarity_is_the_weighted_mean_of_the_signals_cosines():
    a = unit_rows(sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])))
    b = unit_rows(sp.csr_matrix(np.array([[1.0, 2.0, 0.0], [0.0, 1.0, 0.0], [3.0, 0.0, 1.0]])))
    joined = combine({"a": a, "b": b}, {"a": 3.0, "b": 1.0})
    expected = (3 * (a @ a.T).toarray() + (b @ b.T).toarray()) / 4
    assert np.allclose((joined @ joined.T).toarray(), expected, atol=1e-6)


def test_a_user_missing_a_signal_is_compared_on_the_signals_they_have():
    a = unit_rows(sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 0.0]])))
    b = unit_rows(sp.csr_matrix(np.array([[0.0, 1.0], [0.0, 0.0]])))  # user 2 has no b
    joined = combine({"a": a, "b": b}, {"a": 1.0, "b": 1.0})
    assert np.allclose(np.asarray(joined.multiply(joined).sum(axis=1)).ravel(), 1.0)
    assert (joined @ joined.T)[0, 1] == pytest.approx(1 / np.sqrt(2))


def test_the_hybrid_weights_are_its_settings_and_go_into_the_published_run():
    weights = MODELS["hybrid"].settings["weights"]
    assert set(weights) == set(SIGNALS)
    assert all(w >= 0 for w in weights.values()) and any(w > 0 for w in weights.values())
    store = MemoryStore()
    pipeline.run(obvious_export(), store, ["hybrid"], top_n_stored=3)
    assert store.current_run("hybrid").settings["weights"] == weights


def test_a_models_settings_are_the_whole_of_its_weighting():
    tables = obvious_export()
    index = UserIndex.of(tables)
    views = SIGNALS["course_views"]
    same = views.with_settings(dict(views.settings))
    binary = views.with_settings({"tf": "binary"})
    assert (same.matrix(tables, index) != views.matrix(tables, index)).nnz == 0
    assert binary.settings == {"tf": "binary"}
    # Every course counts the same, whatever its seconds: six courses each, two for user 10.
    values = np.unique(binary.matrix(tables, index).data.round(5))
    assert np.allclose(values, [1 / np.sqrt(6), 1 / np.sqrt(2)], atol=1e-5)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATA_DIR": "", "LOG_LEVEL": "INFO"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run_generator.py"), "evaluate", *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )


def test_the_cli_prints_one_json_object_with_every_model_and_both_baselines():
    done = run_cli("--synthetic-users", "600", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["k"] == 10
    assert report["users_evaluated"] > 100
    assert set(report["models"]) == set(MODELS) - {"survey"}  # a synthetic export without one
    assert "survey" in " ".join(report["skipped"])
    assert set(report["baselines"]) == {"most_popular", "random_neighbours"}
    assert report["default_model"] in report["models"]
    for scores in [*report["models"].values(), *report["baselines"].values()]:
        assert set(scores) == {"recall", "ndcg", "coverage", "served"}
        assert all(0.0 <= value <= 1.0 for value in scores.values())
    assert report["settings"]["hybrid"] == MODELS["hybrid"].settings
    assert "hold-out:" in done.stderr


def test_the_cli_fails_clearly_on_an_export_without_course_views(tmp_path):
    (tmp_path / "user_interests.csv").write_text(
        "user_handle,interest_tag,date_followed\n1,python,2017-06-01 10:00:00\n"
    )
    done = run_cli("--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert "the hold-out needs course views" in done.stderr
    assert done.stdout == ""


def test_the_plot_is_drawn_into_a_png_file(tmp_path):
    report = evaluate(obvious_export(), [MODELS["course_views"], MODELS["interests"]], k=1)
    path = tmp_path / "images" / "evaluation.png"
    plot(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_hybrid_is_skipped_when_no_signal_it_weighs_has_its_tables(caplog):
    caplog.set_level(logging.WARNING)
    zero = {h: 0.0 for h in SIGNALS} | {"interests": 1.0}
    hybrid = MODELS["hybrid"].with_settings({"weights": zero})
    tables = dated_tables(views=PY[0] + JS[0])  # course views but no interests
    report = evaluate(tables, [hybrid, MODELS["course_views"]], k=1, top_n_stored=3)
    assert set(report.models) == {"course_views"}
    assert "skipping model hybrid: no user_interests table for any of interests" in caplog.text


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("export")
    synthesize(400, directory, seed=3)
    return load_tables(directory)


def test_tuning_never_reads_the_test_courses_or_anything_after_the_cutoff(small_export):
    tables = small_export
    _, hidden = split(tables)
    views = tables.user_course_views
    later = views["view_date"].max() + pd.Timedelta(days=1)
    planted_views = hidden.assign(view_date=later, view_time_seconds=40_000.0)
    planted_interests = hidden.drop_duplicates("user_handle")[["user_handle"]].assign(
        interest_tag="planted", date_followed=later
    )
    planted = dataclasses.replace(
        tables,
        user_course_views=pd.concat([views, planted_views], ignore_index=True),
        user_interests=pd.concat([tables.user_interests, planted_interests], ignore_index=True),
    )
    clean_tuning = tune(tables, top_n_stored=20)
    assert tune(planted, top_n_stored=20).as_json() == clean_tuning.as_json()
    assert set(clean_tuning.chosen) == set(SIGNALS) - {"survey"}  # no survey in the export
    assert set(clean_tuning.weights) == set(SIGNALS) - {"survey"}
    assert any(line.startswith("hybrid:") for line in clean_tuning.lines())
