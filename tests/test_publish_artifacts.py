"""Each published run carries a model artifact: complete before the run begins, named with its
checksum in the run record, brought back by a rollback and deleted with its run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from generator import pipeline
from similarity.space import ModelSpace, Profile
from store import Run, new_run_id
from store.artifacts import Artifact, ArtifactStore, FileArtifacts
from store.memory import MemoryStore
from tests.builders import make_tables

TABLES = make_tables(
    interests=[(u, t) for u in (1, 2, 3) for t in ("python", "django")]
    + [(u, t) for u in (4, 5) for t in ("javascript", "react")],
    views=[(u, "py-intro", 1800.0) for u in (1, 2, 3)] + [(4, "js-intro", 60.0)],
)


class CheckingStore(MemoryStore):
    """An in-memory store that checks, when a run begins, that its artifact is complete."""

    def __init__(self, artifacts: ArtifactStore, cache: Path) -> None:
        super().__init__()
        self.artifacts, self.cache, self.begun = artifacts, cache, 0

    def begin_run(self, run: Run) -> None:
        assert run.artifact is not None
        folder = self.artifacts.fetch(Artifact.from_record(run.artifact), self.cache)
        ModelSpace.load(folder)  # raises unless the space is all there
        self.begun += 1
        super().begin_run(run)


def loaded(artifacts: ArtifactStore, run: Run, cache: Path) -> ModelSpace:
    assert run.artifact is not None
    return ModelSpace.load(artifacts.fetch(Artifact.from_record(run.artifact), cache))


def test_every_published_run_names_a_complete_artifact_of_its_space(tmp_path):
    artifacts = FileArtifacts(tmp_path / "artifacts")
    store = CheckingStore(artifacts, tmp_path / "cache")
    results = pipeline.run(TABLES, store, top_n_stored=5, artifacts=artifacts)
    assert store.begun == len(results) > 0
    for result in results:
        run = store.current_run(result.model_handle)
        assert run is not None and run.artifact is not None
        assert set(run.artifact) >= {"uri", "sha256", "bytes"}
        assert result.artifact_bytes == run.artifact["bytes"] > 0
        space = loaded(artifacts, run, tmp_path / "cache")
        assert space.model_handle == result.model_handle
        np.testing.assert_array_equal(space.handles, [1, 2, 3, 4, 5])


def test_a_profile_placed_in_a_published_artifact_finds_the_users_alike(tmp_path):
    artifacts = FileArtifacts(tmp_path / "artifacts")
    store = MemoryStore()
    pipeline.run(TABLES, store, ["interests"], top_n_stored=5, artifacts=artifacts)
    space = loaded(artifacts, store.current_run("interests"), tmp_path / "cache")
    vector = space.encode(Profile(interests=["react"]))
    assert [m.user_handle for m in space.search(vector, 5, exact_max_users=100)] == [4, 5]


def test_a_rollback_serves_the_previous_runs_artifact_again(tmp_path):
    artifacts = FileArtifacts(tmp_path / "artifacts")
    store = MemoryStore()
    pipeline.run(TABLES, store, ["interests"], top_n_stored=5, artifacts=artifacts)
    first = store.current_run("interests")
    other = make_tables(interests=[(7, "go"), (8, "go")])
    pipeline.run(other, store, ["interests"], top_n_stored=5, artifacts=artifacts)
    assert loaded(artifacts, store.current_run("interests"), tmp_path / "c").users == 2
    back = store.rollback("interests")
    assert back.run_id == first.run_id
    assert loaded(artifacts, back, tmp_path / "c").users == 5


def test_cleanup_deletes_the_artifacts_of_the_runs_it_deletes(tmp_path):
    artifacts = FileArtifacts(tmp_path / "artifacts")
    store = MemoryStore()
    for _ in range(4):
        pipeline.run(TABLES, store, ["interests"], top_n_stored=5, artifacts=artifacts)
    kept = {r.run_id for r in store.runs("interests")}
    assert len(kept) == 2  # the current run and the one a rollback goes back to
    assert set(artifacts.run_ids("interests")) == kept


def test_an_artifact_whose_run_was_never_begun_is_deleted_once_abandoned(tmp_path):
    artifacts = FileArtifacts(tmp_path / "artifacts")
    old = new_run_id(datetime.now(UTC) - timedelta(days=3))
    recent = new_run_id(datetime.now(UTC) - timedelta(minutes=5))
    for run_id in (old, recent):
        folder = artifacts.stage("interests", run_id)
        (folder / "space.json").write_text("{}")
        artifacts.put("interests", run_id, folder)
    store = MemoryStore()
    pipeline.run(TABLES, store, ["interests"], top_n_stored=5, artifacts=artifacts)
    left = artifacts.run_ids("interests")
    assert old not in left and recent in left  # a recent one may be another job's, still writing
    assert store.current_run("interests").run_id in left


class BrokenArtifacts(FileArtifacts):
    """Artifacts whose writes fail, as a full disk or a denied bucket would."""

    def put(self, model_handle: str, run_id: str, folder: Path) -> Artifact:
        raise OSError(28, "No space left on device")


def test_a_run_whose_artifact_cannot_be_written_is_not_begun_and_the_old_one_stays(tmp_path):
    store = MemoryStore()
    pipeline.run(TABLES, store, ["interests"], top_n_stored=5, artifacts=FileArtifacts(tmp_path))
    before = store.current_run("interests")
    with pytest.raises(OSError, match="No space left"):
        pipeline.run(
            TABLES, store, ["interests"], top_n_stored=5, artifacts=BrokenArtifacts(tmp_path)
        )
    assert store.current_run("interests") == before
    assert [r.run_id for r in store.runs("interests")] == [before.run_id]


def test_the_shared_evidence_in_a_published_artifact_adds_up_to_the_generators_scores(tmp_path):
    from generator.synthetic import synthesize
    from generator.tables import load_tables

    synthesize(300, tmp_path / "export", seed=2)
    tables = load_tables(tmp_path / "export")
    artifacts, store = FileArtifacts(tmp_path / "artifacts"), MemoryStore()
    pipeline.run(tables, store, top_n_stored=5, artifacts=artifacts)
    checked = 0
    for handle, run in store.current_runs().items():
        space = loaded(artifacts, run, tmp_path / "cache")
        for user in space.handles[::25].tolist():
            stored = store.get_list(run, int(user))
            if stored is None:
                continue
            mine = space.row(space.row_of(int(user)))
            for neighbour in stored.neighbours:
                theirs = space.row(space.row_of(neighbour.user_handle))
                total = sum(e.contribution for e in space.shared(mine, theirs))
                assert total == pytest.approx(neighbour.score, abs=2e-6), handle
                checked += 1
    assert checked > 100
