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
