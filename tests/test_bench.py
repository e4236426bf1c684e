"""The benchmarks run end to end at a tiny size and print well-formed JSON lines.

Figures are not checked here (timings are never asserted in tests): only that every script runs,
measures what it says, and computes its ratios against the baseline measured in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import PLATFORM_MODELS

ROOT = Path(__file__).resolve().parents[1]


def bench(module: str, *args: str, data_dir: Path) -> list[dict[str, Any]]:
    """Run a bench module in a child process; return its JSON lines."""
    env = {**os.environ, "BENCH_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines, "no measurement printed"
    for line in lines:
        assert line["bench"] == module
        assert isinstance(line["name"], str)
    return lines


def by_name(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["name"]: line for line in lines}


def test_stages_measure_every_stage_of_every_model(tmp_path):
    lines = by_name(bench("stages", "--users", "400", "--publish", "none", data_dir=tmp_path))

    models = lines["end to end"]["models"]
    assert set(models) == set(PLATFORM_MODELS)
    expected = {
        "load",
        "neighbours, all models",
        "end to end",
        "evaluate, all models",
        "artifacts, all models",
    }
    for model in models:
        expected |= {f"features {model}", f"neighbours {model}", f"publish {model}"}
        expected |= {f"artifact {model}"}
    assert set(lines) == expected
    for line in lines.values():
        assert line["users"] == 400
        assert line["seconds"] >= 0 and line["peak_rss_mb"] > 0
    assert lines["publish interests"]["lists"] > 0
    assert lines["neighbours interests"]["search"] == "exact"
    evaluation = lines["evaluate, all models"]
    assert evaluation["users_evaluated"] > 0
    share = evaluation["seconds"] / lines["end to end"]["seconds"]
    assert evaluation["share_of_generate"] == pytest.approx(share, rel=0.01)  # figures rounded
    assert lines["artifact hybrid"]["megabytes"] > 0
    written = sum(lines[f"artifact {model}"]["seconds"] for model in models)
    assert lines["artifacts, all models"]["seconds"] == pytest.approx(written, rel=0.01, abs=1e-3)


def test_stages_search_approximately_when_asked_and_report_recall(tmp_path):
    lines = by_name(
        bench(
            "stages",
            *("--users", "600", "--models", "interests", "--approximate", "on"),
            *("--publish", "none"),
            data_dir=tmp_path,
        )
    )

    found = lines["neighbours interests"]
    assert found["search"] == "approximate"
    assert 0 < found["recall_at_10"] <= 1
    assert found["baseline"] is None and "ratio" not in found  # the target is 1M users


def test_neighbours_compare_every_method_with_the_dense_baseline_of_the_same_run(tmp_path):
    lines = by_name(
        bench("neighbours", "--users", "500", "--models", "course_views", data_dir=tmp_path)
    )

    baseline = lines["dense cosine_similarity course_views"]
    assert baseline["seconds"] > 0 and "ratio" not in baseline
    for method in ("ours exact", "ours approximate", "sklearn NearestNeighbors"):
        line = lines[f"{method} course_views"]
        assert line["baseline"] == "dense cosine_similarity"
        # Printed seconds are rounded (to 4 significant places or 0.1 s); the ratio is not.
        assert line["ratio"] == pytest.approx(baseline["seconds"] / line["seconds"], rel=0.05)
    assert 0 < lines["ours approximate course_views"]["recall_at_10"] <= 1


def test_publish_compares_batch_writers_with_put_item_one_at_a_time(tmp_path):
    lines = bench(
        "publish",
        *("--lists", "300", "--baseline-lists", "60", "--warm-up-lists", "50", "--writers", "4"),
        *("--repeat", "3"),
        data_dir=tmp_path,
    )

    baseline, ours = lines
    assert baseline["name"] == "put_item one at a time" and baseline["users"] == 60
    assert ours["users"] == 300 and ours["baseline"] == baseline["name"]
    for line in (baseline, ours):
        assert line["rounds"] == 3 and len(line["rounds_items_per_second"]) == 3
        # The figure is the median round's, not the mean or the last round's.
        assert line["items_per_second"] == pytest.approx(
            sorted(line["rounds_items_per_second"])[1], rel=0.01
        )
    expected = ours["items_per_second"] / baseline["items_per_second"]
    assert ours["ratio"] == pytest.approx(expected, rel=0.01)


def test_publish_rates_are_the_median_round():
    from bench.publish import median_rate

    figures = median_rate(600, [2.0, 6.0, 3.0])

    assert figures["seconds"] == 3.0 and figures["items_per_second"] == 200.0
    assert figures["rounds"] == 3 and figures["rounds_items_per_second"] == [300.0, 100.0, 200.0]


def test_server_rounds_are_summed_up_by_their_medians():
    from bench.server import median_of

    rounds = [
        {"requests_per_second": 900.0, "p99_ms": 30.0, "requests": 100, "non_2xx": 0},
        {"requests_per_second": 1200.0, "p99_ms": 12.0, "requests": 200, "non_2xx": 1},
        {"requests_per_second": 1000.0, "p99_ms": 20.0, "requests": 300, "non_2xx": 0},
    ]

    figures = median_of(rounds)

    assert figures["requests_per_second"] == 1000.0 and figures["p99_ms"] == 20.0
    assert figures["requests"] == 600 and figures["non_2xx"] == 1
    assert figures["rounds_requests_per_second"] == [900.0, 1200.0, 1000.0]


def test_server_load_script_posts_each_user_in_turn(tmp_path):
    from bench.server import THREADS, lua_script

    script = lua_script([7, 110, 5182], tmp_path, "mix").read_text()

    assert "local users = {7,110,5182}" in script
    assert 'wrk.format("POST", "/similar-users", headers' in script
    assert '"application/json"' in script and f"i = i + {THREADS}" in script


def test_profiles_time_every_model_and_read_each_workers_memory(tmp_path):
    lines = bench(
        "profiles", "--users", "300", "--queries", "20", "--workers", "2", data_dir=tmp_path
    )
    named = by_name(lines)
    for model in PLATFORM_MODELS:
        for suffix in ("", " explain"):
            line = named[f"profile {model}{suffix}"]
            assert line["requests"] == 20 and sum(line["statuses"].values()) == 20
            assert 0 < line["p50_ms"] <= line["p99_ms"] <= line["max_ms"]
            assert line["ratio"] == pytest.approx(50.0 / line["p99_ms"], rel=0.01)
    assert named["profile hybrid"]["statuses"].get("200", 0) > 0
    workers = [line for line in lines if line["name"].startswith("worker memory")]
    assert len({line["worker"] for line in workers}) == 2
    for line in workers:
        # The artifacts are mapped from their files: the pages a worker reads are file-backed.
        assert line["after"]["file_backed_mb"] > line["before"]["file_backed_mb"]


def test_engines_time_spark_against_the_local_engine_and_find_the_same_lists(tmp_path):
    lines = by_name(
        bench(
            "engines",
            *("--users", "300", "--models", "interests", "--partitions-per-core", "1"),
            *("--executors", "10"),
            data_dir=tmp_path,
        )
    )

    local = lines["local interests"]
    spark = lines["spark interests, 1 partitions per core"]
    assert local["seconds"] > 0 and local["users_with_evidence"] > 0
    assert spark["baseline"] == "local interests" and spark["blocks"] == 2 and spark["pairs"] == 4
    # Printed seconds are rounded (to 4 significant places or 0.1 s); the ratio is not.
    assert spark["ratio"] == pytest.approx(local["seconds"] / spark["seconds"], rel=0.05)
    assert spark["users_with_evidence"] == local["users_with_evidence"]
    assert spark["users_checked"] == local["users_with_evidence"]  # all of them, at 300 users
    assert spark["mismatches"] == 0, spark["mismatch_kinds"]
    projection = lines["projection interests, 10 executors"]
    assert projection["projected_users"] == 10_000_000 and projection["pairs"] == 200**2
    assert projection["from"]["partitions_per_core"] == 1
    assert projection["cost_usd"] > 0 and projection["wall_hours"] > 0
    assert lines["projection all models, 10 executors"]["cost_usd"] == projection["cost_usd"]
