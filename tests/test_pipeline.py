"""The whole job over the in-memory store: what gets published, replaced, skipped and cleaned up."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest

from generator import pipeline
from store import IncompleteWriteError, NeighbourList, Run, StoreError
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

    def write_lists(self, run: Run, lists: Iterable[NeighbourList]) -> int:
        def until_death() -> Iterable[NeighbourList]:
            for i, neighbour_list in enumerate(lists):
                if i == self.die_after:
                    raise IncompleteWriteError("writer died")
                yield neighbour_list

        return super().write_lists(run, until_death())


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
