"""The generator's command line: help, argument checks and settings from the environment."""

from __future__ import annotations

import pytest

import run_generator


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_generator.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "synthesize" in out and "generate" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["synthesize", "--users", "0", "--out", "x"],
        ["synthesize", "--users", "ten", "--out", "x"],
        ["generate", "--top-n", "-3"],
        ["generate", "--models", "nope"],
        ["generate", "--data-dir", "a", "--synthetic-users", "5"],
        ["generate", "--search", "fast"],
        ["generate", "--approximate-above", "0"],
    ],
)
def test_bad_arguments_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_generator.main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_bad_number_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("TOP_N_STORED", "fifty")
    with pytest.raises(SystemExit, match="TOP_N_STORED must be a whole number"):
        run_generator.main(["generate"])


def test_a_bad_search_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("NEIGHBOUR_SEARCH", "fast")
    with pytest.raises(SystemExit, match="NEIGHBOUR_SEARCH must be one of auto, exact, approxim"):
        run_generator.main(["generate"])


@pytest.mark.parametrize(
    ("argv", "environment", "approximate", "above"),
    [
        ([], {}, None, 200_000),
        (["--search", "approximate"], {}, True, 200_000),
        (["--search", "exact"], {"NEIGHBOUR_SEARCH": "approximate"}, False, 200_000),
        ([], {"NEIGHBOUR_SEARCH": "Exact", "APPROXIMATE_ABOVE": "5"}, False, 5),
        (["--approximate-above", "7"], {"APPROXIMATE_ABOVE": "5"}, None, 7),
    ],
)
def test_the_search_is_chosen_by_flag_or_environment(
    argv, environment, approximate, above, monkeypatch, tmp_path
):
    from generator import pipeline
    from store.dynamo import DynamoStore

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(DynamoStore, "connect", classmethod(lambda cls, **_: _ReachableStore()))
    asked = {}

    def run(tables, store, models, **kwargs):
        asked.update(kwargs)
        return []

    monkeypatch.setattr(pipeline, "run", run)
    assert run_generator.main(["generate", "--synthetic-users", "30", *argv]) == 0
    assert asked["approximate"] is approximate
    assert asked["approximate_above"] == above


def test_synthesize_writes_the_four_files(tmp_path):
    assert run_generator.main(["synthesize", "--users", "40", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "course_tags.csv",
        "user_assessment_scores.csv",
        "user_course_views.csv",
        "user_interests.csv",
    ]


class _ReachableStore:
    """Stands in for DynamoDB when a test is about input, not the store."""

    def ensure_tables(self) -> None:
        return None


def test_a_missing_data_dir_fails_with_exit_code_one(tmp_path, monkeypatch, caplog):
    from store.dynamo import DynamoStore

    monkeypatch.setattr(DynamoStore, "connect", classmethod(lambda cls, **_: _ReachableStore()))
    assert run_generator.main(["generate", "--data-dir", str(tmp_path / "absent")]) == 1
    assert "no such directory" in caplog.text
