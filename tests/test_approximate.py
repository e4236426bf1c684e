"""Approximate neighbours: exact scores from a clustered search, recall measured, runs record it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from generator import pipeline
from generator.approximate import (
    PROBE_STEPS,
    Approximate,
    approximate_top_n,
    embedding_of,
    recall_at,
    sample_recall,
)
from server import Settings, create_app
from similarity.models import MODELS
from similarity.neighbours import Neighbours, top_n
from store import SCORE_DECIMALS
from store.memory import MemoryStore
from tests.builders import make_tables, tied_matrix


def grouped_matrix(groups: int, per_group: int, features: int, seed: int) -> sp.csr_matrix:
    """Users in groups that each use their own features only, with random weights."""
    rng = np.random.default_rng(seed)
    rows, cols, values = [], [], []
    for user in range(groups * per_group):
        group = user // per_group
        chosen = rng.choice(features, size=rng.integers(2, 5), replace=False)
        rows += [user] * len(chosen)
        cols += list(group * features + chosen)
        values += list(rng.uniform(0.5, 2.0, size=len(chosen)))
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(groups * per_group, groups * features))
    return normalize(matrix).astype(np.float32)


@pytest.mark.parametrize("make", [grouped_matrix, tied_matrix])
@pytest.mark.parametrize("dimensions", [4, 1024])  # on hashed rows, or on the rows whole
def test_searching_every_cluster_finds_the_exact_best_scores_ties_included(make, dimensions):
    matrix = make(300, 8, seed=3) if make is tied_matrix else make(6, 50, 12, seed=3)
    settings = Approximate(dimensions=dimensions, lists=5, probes=5)

    found, done = approximate_top_n(matrix, 7, settings)

    exact = top_n(matrix, 7)
    assert done["probes"] == done["clusters"] == 5
    assert done["embedding"] == ("rows" if dimensions > 4 else "hashed-4")
    np.testing.assert_array_equal(found.scores, exact.scores)
    assert recall_at(exact, found, 7) == 1.0


def test_users_in_separate_groups_are_found_by_probing_a_few_clusters_of_a_dozen():
    matrix = grouped_matrix(groups=6, per_group=40, features=10, seed=1)

    # About two clusters per group; a user's neighbours share a feature, so sit near it.
    found, _ = approximate_top_n(matrix, 5, Approximate(lists=12, probes=3))

    assert recall_at(top_n(matrix, 5), found, 5) == 1.0


def test_scores_are_exact_cosines_best_first_and_a_user_is_never_their_own_neighbour():
    matrix = grouped_matrix(groups=4, per_group=50, features=15, seed=2)
    dense = (matrix @ matrix.T).toarray()

    found, _ = approximate_top_n(matrix, 6, Approximate(dimensions=6, lists=8, probes=2))

    for user, (rows, scores) in enumerate(zip(found.rows, found.scores, strict=True)):
        kept = rows >= 0
        assert user not in rows
        np.testing.assert_allclose(scores[kept], dense[user, rows[kept]], atol=2e-6)
        keys = list(zip(-scores[kept], rows[kept], strict=True))
        assert keys == sorted(keys)


def test_users_without_evidence_get_no_neighbours_and_are_nobody_s_neighbour():
    matrix = grouped_matrix(groups=3, per_group=30, features=8, seed=4).tolil()
    matrix[[0, 45], :] = 0
    matrix = sp.csr_matrix(matrix)

    found, _ = approximate_top_n(matrix, 5, Approximate(dimensions=4, lists=3, probes=3))

    assert (found.rows[[0, 45]] == -1).all()
    assert not np.isin([0, 45], found.rows).any()


def test_users_are_clustered_on_their_rows_up_to_dimensions_features_and_hashed_above():
    matrix = grouped_matrix(groups=4, per_group=20, features=10, seed=7)  # 40 features

    assert embedding_of(matrix, Approximate(dimensions=40)) == "rows"
    assert embedding_of(matrix, Approximate(dimensions=39)) == "hashed-39"


def test_unset_probes_are_the_fewest_steps_that_reach_the_target_recall_on_a_sample():
    matrix = grouped_matrix(groups=12, per_group=60, features=10, seed=5)
    settings = Approximate(lists=24, target_recall=0.99, calibration_users=200)

    _, done = approximate_top_n(matrix, 5, settings)

    # Each group sits in about two clusters: a few probes suffice, never all 24.
    assert done["probes"] in PROBE_STEPS and done["probes"] < done["clusters"]
    assert done["calibration_recall_at_10"] >= 0.99


def test_a_target_any_search_reaches_settles_on_the_fewest_probes():
    matrix = grouped_matrix(groups=12, per_group=60, features=10, seed=5)
    settings = Approximate(lists=24, target_recall=0.0, calibration_users=200)

    _, done = approximate_top_n(matrix, 5, settings)

    assert done["probes"] == PROBE_STEPS[0]


def test_dense_factors_searched_in_every_cluster_get_the_exact_lists():
    # Signed values: every asker × member score is computed, ties at the cut go to the lower row.
    rng = np.random.default_rng(6)
    distinct = rng.integers(-2, 3, size=(40, 4)).astype(np.float32)
    matrix = sp.csr_matrix(normalize(distinct[rng.integers(0, 40, 300)]))

    found, done = approximate_top_n(matrix, 7, Approximate(lists=5, probes=5))

    exact = top_n(matrix, 7)
    assert done["probes"] == done["clusters"] == 5
    np.testing.assert_array_equal(found.rows, exact.rows)
    np.testing.assert_array_equal(found.scores, exact.scores)


def test_n_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        approximate_top_n(sp.csr_matrix(np.eye(3, dtype=np.float32)), 0)


# -- recall -----------------------------------------------------------------------------------


def lists(rows: list[list[int]], scores: list[list[float]]) -> Neighbours:
    return Neighbours(np.array(rows, dtype=np.int32), np.array(scores, dtype=np.float32))


def test_recall_counts_the_exact_neighbours_found():
    exact = lists([[1, 2, 3], [0, 2, 3]], [[0.9, 0.8, 0.7], [0.9, 0.5, 0.4]])
    found = lists([[1, 2, 9], [0, 2, 3]], [[0.9, 0.8, 0.1], [0.9, 0.5, 0.4]])

    assert recall_at(exact, found, 3) == pytest.approx(5 / 6)


def test_recall_counts_an_equally_similar_user_as_a_match():
    exact = lists([[1, 2, 3]], [[0.9, 0.5, 0.5]])
    found = lists([[1, 2, 7]], [[0.9, 0.5, 0.5]])  # 7 ties with 3, which the exact search kept

    assert recall_at(exact, found, 3) == 1.0


def test_recall_leaves_out_users_with_no_exact_neighbour_and_counts_short_lists_fairly():
    exact = lists([[-1, -1], [4, -1]], [[0, 0], [0.3, 0]])
    found = lists([[-1, -1], [4, -1]], [[0, 0], [0.3, 0]])

    assert recall_at(exact, found, 2) == 1.0
    assert recall_at(exact, lists([[-1, -1], [-1, -1]], [[0, 0], [0, 0]]), 2) == 0.0


def test_sample_recall_of_exact_lists_is_one_on_the_sample_asked_for():
    matrix = tied_matrix(200, 6, seed=8)

    check = sample_recall(matrix, top_n(matrix, 10), k=10, sample=50)

    assert check.recall == 1.0
    assert check.users == 50
    assert [users for _, _, users, _ in check.by_activity] == [5] * 10
    assert all(recall == 1.0 for *_, recall in check.by_activity)


def test_recall_by_activity_shows_which_users_the_lists_fail():
    # 20 users of one feature each (all alike) and 20 users of 5 features: lists that only hold
    # the light users' neighbours fail the heavy users alone.
    light = sp.csr_matrix(np.ones((20, 1), dtype=np.float32))
    heavy = sp.csr_matrix(np.ones((20, 5), dtype=np.float32))
    matrix = normalize(sp.block_diag([light, heavy], format="csr"))
    exact = top_n(matrix, 3)
    found = Neighbours(exact.rows.copy(), exact.scores.copy())
    found.rows[20:] = -1
    found.scores[20:] = 0

    check = sample_recall(matrix, found, k=3, sample=40)

    assert check.recall == pytest.approx(0.5)
    assert [(low, high, users) for low, high, users, _ in check.by_activity][:2] == [
        (1, 1, 4),
        (1, 1, 4),
    ]
    assert [recall for *_, recall in check.by_activity] == [1.0] * 5 + [0.0] * 5


def test_top_n_of_some_rows_equals_those_rows_of_the_whole_search():
    matrix = tied_matrix(150, 5, seed=9)
    rows = np.array([3, 17, 88, 149])

    some = top_n(matrix, 4, rows=rows, block_rows=3)
    whole = top_n(matrix, 4)

    np.testing.assert_array_equal(some.rows, whole.rows[rows])
    np.testing.assert_array_equal(some.scores, whole.scores[rows])


# -- the pipeline -----------------------------------------------------------------------------

TABLES = make_tables(
    interests=[(u, t) for u in range(1, 41) for t in ("python", "django", f"t{u % 5}")]
    + [(u, t) for u in range(41, 81) for t in ("javascript", "react", f"t{u % 4}")],
)


def test_an_approximate_run_records_how_it_was_made_and_its_measured_recall():
    store = MemoryStore()

    result = pipeline.run(TABLES, store, ["interests"], top_n_stored=5, approximate=True)[0]

    run = store.current_run("interests")
    assert result.search == run.settings["search"] == "approximate"
    assert result.recall == run.settings["recall_sample"]
    assert result.recall_at == run.settings["recall_at"] == 5  # n is 5: recall of the best 5
    assert result.recall_by_activity == run.settings["recall_by_activity"]
    assert sum(d["users"] for d in result.recall_by_activity) == 80
    assert run.settings["approximate"]["embedding"] == "rows"
    # 80 users are too few to calibrate on, so every cluster is probed: nothing can be missed.
    assert result.recall == 1.0
    assert run.settings["recall_sample_users"] == 80
    assert run.settings["approximate"]["probes"] >= 1
    assert run.settings["tf"] == "sublinear"  # the model's own settings are kept


def test_runs_are_exact_by_default_and_say_so():
    store = MemoryStore()

    result = pipeline.run(TABLES, store, ["interests"], top_n_stored=5)[0]

    assert result.search == store.current_run("interests").settings["search"] == "exact"
    assert result.recall is None


def test_auto_searches_approximately_only_above_the_user_count_when_exact_would_not_fit():
    no_time = pipeline.Promise(min_recall=0.0, budget_seconds=0)  # no exact search fits
    below = pipeline.run(
        TABLES, MemoryStore(), ["interests"], top_n_stored=5, approximate_above=80, promise=no_time
    )[0]
    above = pipeline.run(
        TABLES, MemoryStore(), ["interests"], top_n_stored=5, approximate_above=79, promise=no_time
    )[0]

    assert (below.search, above.search) == ("exact", "approximate")


def test_auto_above_the_user_count_searches_exactly_when_that_is_expected_to_fit(caplog):
    caplog.set_level(logging.INFO, logger="generator.pipeline")
    result = pipeline.run(
        TABLES, MemoryStore(), ["interests"], top_n_stored=5, approximate_above=79
    )[0]

    assert result.search == "exact"
    assert "an exact search of 80 users is expected to take about" in caplog.text


def test_approximate_lists_published_hold_exact_scores_and_never_the_user():
    store = MemoryStore()
    pipeline.run(TABLES, store, ["interests"], top_n_stored=5, approximate=True)
    run = store.current_run("interests")

    for user in (1, 41, 80):
        found = store.get_list(run, user)
        assert user not in [n.user_handle for n in found.neighbours]
        assert all(0 < n.score <= 1 for n in found.neighbours)
        assert all(round(n.score, SCORE_DECIMALS) == n.score for n in found.neighbours)


# -- the recall promise ------------------------------------------------------------------------


def scattered_matrix(users: int = 600, features: int = 400, seed: int = 3) -> sp.csr_matrix:
    """Users with a few random features each: clusters mean little, so one probe misses a lot."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(users), 4)
    cols = rng.integers(0, features, size=len(rows))
    values = np.ones(len(rows), dtype=np.float32)
    return normalize(sp.csr_matrix((values, (rows, cols)), shape=(users, features)))


ONE_PROBE = Approximate(dimensions=8, lists=24, probes=1, calibration_users=10**9)


def one_probe_search(promise: pipeline.Promise) -> tuple[Neighbours, dict]:
    found, how, _ = pipeline.search(
        MODELS["interests"], scattered_matrix(), 10, True, 1, ONE_PROBE, promise=promise
    )
    return found, how


def test_one_probe_of_scattered_users_misses_the_promise():
    # The premise of the tests below: this search is far from the promised recall.
    _, how = one_probe_search(pipeline.Promise(min_recall=0.0))
    assert how["search"] == "approximate" and how["recall_sample"] < 0.9


def test_a_run_below_the_promise_warns_and_searches_more_within_the_budget(caplog):
    found, how = one_probe_search(pipeline.Promise(min_recall=0.9, budget_seconds=3600))

    assert "below the promised 0.90" in caplog.text
    assert how["search"] == "exact"  # the quickest way to more, on so few users
    assert how["searched_more"][0]["probes"] == 1 and how["searched_more"][0]["recall"] < 0.9
    exact = top_n(scattered_matrix(), 10)
    assert (found.rows == exact.rows).all()


def test_a_run_that_cannot_reach_the_promise_within_the_budget_is_refused():
    with pytest.raises(pipeline.RecallTooLowError, match=r"below MIN_RECALL 0\.9.*not published"):
        one_probe_search(pipeline.Promise(min_recall=0.9, budget_seconds=0))


def test_a_lower_min_recall_accepts_the_run_and_records_what_it_reached():
    _, how = one_probe_search(pipeline.Promise(min_recall=0.1, budget_seconds=0))

    assert how["search"] == "approximate" and 0.1 <= how["recall_sample"] < 0.9
    assert sum(d["users"] for d in how["recall_by_activity"]) == how["recall_sample_users"]


def test_a_refused_model_is_not_published_and_an_exact_one_is():
    store = MemoryStore()
    refuse_all = pipeline.Promise(min_recall=1.01, budget_seconds=0)  # beyond any search

    with pytest.raises(pipeline.RecallTooLowError, match="interests"):
        pipeline.run(
            TABLES, store, ["interests"], top_n_stored=5, approximate=True, promise=refuse_all
        )
    assert store.current_run("interests") is None
    exact_too = pipeline.run(TABLES, store, ["interests"], top_n_stored=5, promise=refuse_all)
    assert exact_too[0].search == "exact"  # the promise is about approximate searches only


def test_models_shows_how_each_run_searched_and_the_recall_it_reached():
    store = MemoryStore()
    pipeline.run(TABLES, store, ["interests"], top_n_stored=5, approximate=True)
    client = create_app(store, Settings(pointer_cache_seconds=0)).test_client()

    [described] = client.get("/models").json["models"]

    run = store.current_run("interests")
    assert described["search"]["method"] == "approximate"
    assert described["search"]["recall_sample"] == run.settings["recall_sample"]
    deciles = described["search"]["recall_by_activity"]
    assert sum(d["users"] for d in deciles) == run.settings["recall_sample_users"]


@pytest.mark.parametrize("dimensions", [6, 1024])  # hashed, or on the rows whole
def test_the_clusters_a_search_returns_find_a_users_lists_again_one_query_at_a_time(dimensions):
    from generator.approximate import approximate_search
    from similarity.space import ModelSpace

    matrix = grouped_matrix(groups=6, per_group=30, features=10, seed=4)
    found, done, clusters = approximate_search(
        matrix, 5, Approximate(dimensions=dimensions, lists=8, probes=2)
    )
    assert clusters is not None and clusters.probes == done["probes"] == 2
    assert (clusters.hashing is None) == (dimensions > 6)
    space = ModelSpace("m", {}, np.arange(matrix.shape[0]), matrix, (), clusters=clusters)
    for row in range(0, matrix.shape[0], 7):
        matches = space.search(space.row(row), 5, exact_max_users=0, exclude=row)
        expected = found.scores[row][found.rows[row] >= 0]
        np.testing.assert_allclose([m.score for m in matches], expected, atol=2e-6)
