"""Every run measured on its own export, remembering that export; the best one served by default."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import run_generator
from generator.sources import fingerprint
from generator.synthetic import synthesize
from generator.tables import load_tables
from server import Settings, create_app
from similarity.models import MODELS
from store import RunStatus
from store.memory import MemoryStore
from tests.builders import PLATFORM_MODELS

FULL = PLATFORM_MODELS


def buildable(folder: Path) -> list[str]:
    """Return the models the export in `folder` can build, as the registry says."""
    tables = load_tables(folder)
    return sorted(h for h, model in MODELS.items() if model.available(tables))


@pytest.fixture(scope="module")
def full_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("full")
    synthesize(600, folder, seed=5)
    return folder


@pytest.fixture(scope="module")
def views_only(full_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export of course views and course tags only, as an interaction log would be."""
    folder = tmp_path_factory.mktemp("views")
    for name in ("user_course_views.csv", "course_tags.csv"):
        shutil.copy(full_export / name, folder / name)
    return folder


def generate(store: MemoryStore, folder: Path, *flags: str) -> int:
    argv = ["generate", "--data-dir", str(folder), "--top-n", "20", *flags]
    return run_generator.main(argv, env={"GENERATOR_THREADS": "1"}, connect=lambda c: store)


def test_runs_from_views_alone_carry_their_quality_and_the_best_is_the_default(views_only):
    store = MemoryStore()

    assert generate(store, views_only) == 0

    current = store.current_runs()
    assert sorted(current) == buildable(views_only)
    assert {"course_views", "course_tags", "hybrid"} <= set(current)
    for run in current.values():
        assert run.export == fingerprint(views_only)
        quality = run.quality
        assert quality is not None
        assert quality["k"] == 10 and 0 < quality["users_evaluated"] <= quality["users_eligible"]
        assert 0 <= quality["most_popular_recall"] <= 1 and 0 < quality["recall"] <= 1
    best = max(current, key=lambda h: current[h].quality["recall"])  # type: ignore[index]
    models = create_app(store, Settings(pointer_cache_seconds=0)).test_client().get("/models").json
    assert models["default_model"] == best
    assert models["default_reason"] == "best recall@10 of the current runs"
    assert {m["model_handle"]: m["quality"] for m in models["models"]} == {
        h: r.quality for h, r in current.items()
    }


def test_the_neighbours_beat_the_most_popular_courses_on_a_real_signal(views_only):
    store = MemoryStore()
    generate(store, views_only, "--models", "course_views")
    quality = store.current_runs()["course_views"].quality
    assert quality is not None
    assert quality["recall"] > quality["random_neighbours_recall"]


def test_a_new_export_retires_the_runs_it_cannot_rebuild(full_export, views_only, caplog):
    store = MemoryStore()
    assert generate(store, full_export, "--no-evaluate") == 0
    before = store.current_runs()
    assert sorted(before) == sorted(FULL)

    assert generate(store, views_only, "--no-evaluate") == 0

    assert sorted(store.current_runs()) == buildable(views_only)
    for handle in ("interests", "assessments"):
        assert [r.status for r in store.runs(handle)] == [RunStatus.RETIRED]
        assert f"{handle}: retired run {before[handle].run_id}" in caplog.text


def test_a_setting_keeps_the_runs_the_new_export_cannot_rebuild(full_export, views_only):
    store = MemoryStore()
    generate(store, full_export, "--no-evaluate")

    assert generate(store, views_only, "--no-evaluate", "--keep-unbuilt-runs") == 0

    assert sorted(store.current_runs()) == sorted(FULL)
    exports = {h: r.export["id"] for h, r in store.current_runs().items()}  # type: ignore[index]
    assert exports["interests"] != exports["course_views"]


def test_without_evaluation_a_run_carries_no_quality(views_only):
    store = MemoryStore()
    generate(store, views_only, "--no-evaluate", "--models", "course_views")
    assert store.current_runs()["course_views"].quality is None


def test_tuning_records_the_settings_it_chose_with_the_run(views_only):
    store = MemoryStore()

    assert generate(store, views_only, "--tune", "--models", "course_views", "hybrid") == 0

    for run in store.current_runs().values():
        assert run.settings["tuned"] is True
        assert run.quality is not None
    weights = store.current_runs()["hybrid"].settings["weights"]
    assert set(weights) >= {"course_views", "course_tags"}
