"""The whole job over the in-memory store: what gets published, replaced, skipped and cleaned up."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator import pipeline
from similarity.features import UserIndex
from similarity.neighbours import Neighbours
from store import IncompleteWriteError, Neighbour, NeighbourList, Run, StoreError
from store.memory import MemoryStore
from tests.builders import make_tables

TABLES = make_tables(
    interests=[(u, t) for u in (1, 2, 3) for t in ("python", "django")]
    + [(u, t) for u in (4, 5) for t in ("javascript", "react")]
    + [(6, "cobol")],
    views=[(u, "py-intro", 1800.0) for u in (1, 2, 3)] + [(4, "js-intro", 60.0)],
)


def handles(store: MemoryStore, model: str, user: int) -> list[int] | None:
    found = store.get_list(store.current_run(model), user)
    return None if found is None else [n.user_handle for n in found.neighbours]


def test_each_available_model_is_published_with_the_obvious_neighbours():
    store = MemoryStore()
    results = pipeline.run(TABLES, store, top_n_stored=5)
    assert [r.model_handle for r in results] == [
        "interests",
        "course_views",
        "course_factors",
        "hybrid",
    ]
    assert handles(store, "interests", 1) == [2, 3]
    assert handles(store, "interests", 4) == [5]
    assert handles(store, "course_views", 2) == [1, 3]


def test_lists_are_ranked_by_score_then_handle_and_never_hold_the_user():
    store = MemoryStore()
    pipeline.run(TABLES, store, top_n_stored=5)
    run = store.current_run("interests")
    for user in range(1, 7):
        found = store.get_list(run, user)
        assert user not in [n.user_handle for n in found.neighbours]
        keys = [(-n.score, n.user_handle) for n in found.neighbours]
        assert keys == sorted(keys)


def test_a_user_with_evidence_but_nobody_alike_gets_an_empty_list_and_others_none():
    store = MemoryStore()
    pipeline.run(TABLES, store, top_n_stored=5)
    assert handles(store, "interests", 6) == []
    assert handles(store, "course_views", 6) is None
    assert store.current_run("course_views").user_count == 4


def test_models_whose_tables_are_missing_are_skipped_with_a_message(caplog):
    caplog.set_level(logging.WARNING)
    results = pipeline.run(TABLES, MemoryStore(), top_n_stored=3)
    assert "assessments" not in [r.model_handle for r in results]
    assert "skipping model assessments: no user_assessment_scores table" in caplog.text
    assert "skipping model course_tags: no course_tags table" in caplog.text


def test_asking_for_an_unknown_model_fails_naming_it():
    with pytest.raises(ValueError, match="'nope'"):
        pipeline.run(TABLES, MemoryStore(), model_handles=["nope"])


def test_no_buildable_model_is_an_error():
    with pytest.raises(ValueError, match="no model can be built"):
        pipeline.run(TABLES, MemoryStore(), model_handles=["assessments"])


def test_a_new_run_replaces_the_old_and_runs_before_the_previous_are_deleted():
    store = MemoryStore()
    first = pipeline.run(TABLES, store, model_handles=["interests"], top_n_stored=3)[0]
    second = pipeline.run(TABLES, store, model_handles=["interests"], top_n_stored=3)[0]
    assert store.current_run("interests").run_id == second.run_id
    assert second.runs_deleted == 0  # the first is kept for a rollback
    third = pipeline.run(TABLES, store, model_handles=["interests"], top_n_stored=3)[0]
    assert third.runs_deleted == 1
    assert [r.run_id for r in store.runs("interests")] == [second.run_id, third.run_id]
    assert first.run_id not in [r.run_id for r in store.runs("interests")]


class DyingStore(MemoryStore):
    """A store whose writer dies after `die_after` lists, as a killed generator would."""

    die_after: int | None = None

    def write_lists(self, run: Run, lists: Iterable[NeighbourList], part: str | None = None) -> int:
        def until_death() -> Iterable[NeighbourList]:
            for i, neighbour_list in enumerate(lists):
                if i == self.die_after:
                    raise IncompleteWriteError("writer died")
                yield neighbour_list

        return super().write_lists(run, until_death(), part)


def test_a_run_that_dies_while_writing_leaves_the_previous_run_current():
    store = DyingStore()
    pipeline.run(TABLES, store, model_handles=["interests"], top_n_stored=3)
    before = store.current_run("interests")
    store.die_after = 2
    with pytest.raises(IncompleteWriteError):
        pipeline.run(TABLES, store, model_handles=["interests"], top_n_stored=3)
    assert store.current_run("interests") == before
    assert handles(store, "interests", 1) == [2, 3]
    assert len(store.runs("interests")) == 2  # the dead run stays until the next cleanup


class CleanupFails(MemoryStore):
    """An in-memory store whose deletes fail, as a DynamoDB outage during cleanup would."""

    def delete_run(self, run: Run) -> int:
        raise StoreError(f"DynamoDB refused to delete run {run.run_id}")


def test_a_cleanup_failure_is_logged_and_every_model_is_still_published(caplog):
    store = CleanupFails()
    first = pipeline.run(TABLES, store, model_handles=["interests"], top_n_stored=3)[0]
    pipeline.run(TABLES, store, model_handles=["interests"], top_n_stored=3)
    caplog.set_level(logging.WARNING)

    results = pipeline.run(TABLES, store, model_handles=["interests", "course_views"])

    assert [r.model_handle for r in results] == ["interests", "course_views"]
    assert store.current_run("interests").run_id == results[0].run_id
    assert store.current_run("course_views").run_id == results[1].run_id
    assert results[0].runs_deleted == 0
    assert f"run {first.run_id} could not be deleted" in caplog.text
    assert first.run_id in [r.run_id for r in store.runs("interests")]  # left for the next run


# -- mutual matches ------------------------------------------------------------------------------


def neighbours_of(lists: list[list[int]], n: int) -> Neighbours:
    """Build a Neighbours of hand-written rows (row i: user i's neighbour rows, best first)."""
    rows = np.full((len(lists), n), -1, dtype=np.int32)
    for user, near in enumerate(lists):
        rows[user, : len(near)] = near
    scores = np.where(rows >= 0, 0.5, 0.0).astype(np.float32)
    return Neighbours(rows, scores)


def brute_force_mutual(rows: np.ndarray) -> np.ndarray:
    """Mark each stored pair found both ways, one pair at a time."""
    listed = {(u, int(v)) for u in range(len(rows)) for v in rows[u] if v >= 0}
    marked = np.zeros(rows.shape, dtype=bool)
    for u in range(len(rows)):
        for at, v in enumerate(rows[u]):
            marked[u, at] = v >= 0 and (int(v), u) in listed
    return marked


# Users 0 and 1 list each other; 2 lists both, and neither lists 2 back; with lists of two, user
# 3 is the last one 5 keeps (so 3 and 5 are mutual) and one 4 cut (so 3 and 4 are not); 6 and 7
# have nobody.
HAND_BUILT = [[1], [0], [0, 1], [4, 5], [6, 7], [6, 3], [], []]


@pytest.mark.parametrize("budget", [1, 7, pipeline.MUTUAL_BUDGET])
def test_exactly_the_pairs_in_both_lists_are_mutual(monkeypatch, budget):
    monkeypatch.setattr(pipeline, "MUTUAL_BUDGET", budget)  # a few users at a time, or all
    found = neighbours_of(HAND_BUILT, n=2)

    marked = pipeline.mutual(found.rows, np.arange(len(HAND_BUILT)))

    assert marked.tolist() == [
        [True, False],  # 1 lists 0; an empty slot is never mutual
        [True, False],
        [False, False],  # neither 0 nor 1 lists 2
        [False, True],  # 4's list was cut before 3; 5 kept 3 last
        [False, False],
        [False, True],  # 6 lists nobody; 3 lists 5
        [False, False],
        [False, False],
    ]


def test_only_the_users_asked_for_are_marked_in_the_order_asked():
    found = neighbours_of(HAND_BUILT, n=2)

    marked = pipeline.mutual(found.rows, np.array([5, 0]))

    assert marked.tolist() == [[False, True], [True, False]]


def test_the_stored_lists_carry_the_marks_in_handles():
    found = neighbours_of(HAND_BUILT, n=2)
    index = UserIndex(np.array([10, 11, 12, 13, 14, 15, 16, 17], dtype=np.int64))
    has_evidence = np.array([True] * 6 + [False, True])

    lists = {
        nl.user_handle: nl.neighbours
        for nl in pipeline.neighbour_lists(found, index, has_evidence, chunk=3)
    }

    assert lists[10] == (Neighbour(11, 0.5, True),)
    assert lists[12] == (Neighbour(10, 0.5, False), Neighbour(11, 0.5, False))
    assert lists[13] == (Neighbour(14, 0.5, False), Neighbour(15, 0.5, True))
    assert lists[17] == ()
    assert 16 not in lists


@st.composite
def neighbour_rows(draw: st.DrawFn) -> np.ndarray:
    """Rows as a search stores them: distinct neighbours, never the user, -1 padded at the end.
    Few users, so that many pairs go both ways."""
    users = draw(st.integers(1, 12))
    n = draw(st.integers(0, 5))
    rows = np.full((users, n), -1, dtype=np.int32)
    for user in range(users):
        others = [v for v in range(users) if v != user]
        near = draw(
            st.lists(st.sampled_from(others), max_size=n, unique=True) if others else st.just([])
        )
        rows[user, : len(near)] = near
    return rows


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(rows=neighbour_rows(), budget=st.sampled_from([1, 3, pipeline.MUTUAL_BUDGET]))
def test_the_marks_are_the_brute_force_set_check(rows, budget):
    saved, pipeline.MUTUAL_BUDGET = pipeline.MUTUAL_BUDGET, budget
    try:
        marked = pipeline.mutual(rows, np.arange(len(rows)))
    finally:
        pipeline.MUTUAL_BUDGET = saved

    assert marked.tolist() == brute_force_mutual(rows).tolist()


@settings(max_examples=5, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_at_scale_the_marks_are_the_brute_force_set_check(seed):
    # 3,000 users in communities of 60, each listing 20 of their own: about a third go both ways.
    rng = np.random.default_rng(seed)
    users, n, community = 3000, 20, 60
    rows = np.empty((users, n), dtype=np.int32)
    for user in range(users):
        first = user // community * community
        others = np.setdiff1d(np.arange(first, first + community), [user])
        rows[user] = rng.choice(others, n, replace=False)
    rows[rng.random(users) < 0.1, n // 2 :] = -1  # some shorter lists

    marked = pipeline.mutual(rows, np.arange(users))

    assert 0.1 < marked.mean() < 0.9
    assert marked.tolist() == brute_force_mutual(rows).tolist()


def test_a_published_run_marks_as_mutual_exactly_the_pairs_both_stored_lists_hold():
    store = MemoryStore()
    results = pipeline.run(TABLES, store, top_n_stored=2)

    for result in results:
        run = store.current_run(result.model_handle)
        lists = {u: store.get_list(run, u) for u in range(1, 7)}
        listed = {
            (u, n.user_handle) for u, found in lists.items() if found for n in found.neighbours
        }
        for u, found in lists.items():
            for n in found.neighbours if found else ():
                assert n.mutual == ((n.user_handle, u) in listed), (result.model_handle, u, n)
