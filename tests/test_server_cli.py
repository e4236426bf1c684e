"""The server's command line: settings from the environment, and one-line errors for bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run_server
from config import ConfigError
from store import StoreError
from store.memory import MemoryStore
from tests.fakes import publish_lists


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT must be a whole number, not 'http'"),
        ("PORT", "70000", "PORT must be between 1 and 65535, not 70000"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("STORE_READ_TIMEOUT_SECONDS", "nan", "STORE_READ_TIMEOUT_SECONDS must be between"),
        ("DEFAULT_TOP_N", "0", "DEFAULT_TOP_N must be between 1 and 1000, not 0"),
        ("DEFAULT_MODEL", "Hybrid!", "default_model must match"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(name, value, message, tmp_path, capsys):
    with pytest.raises(ConfigError, match=message):
        run_server.config_from_env({name: value})

    argv = ["--env-file", str(tmp_path / "absent.env"), "lookup", "--user-handle", "1"]
    code = run_server.main(argv, env={name: value}, connect=lambda config: MemoryStore())
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_lookup_answers_from_the_store_it_is_handed(tmp_path, capsys):
    store = MemoryStore()
    publish_lists(store, {110: [(7, 0.5)], 7: [(110, 0.5)]})
    argv = ["--env-file", str(tmp_path / "absent.env"), "lookup", "--user-handle", "110"]

    assert run_server.main(argv, env={}, connect=lambda config: store) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["data"]["similar_users"] == [{"user_handle": 7, "score": 0.5}]

    argv[-1] = "8"
    assert run_server.main(argv, env={}, connect=lambda config: store) == 1
    assert json.loads(capsys.readouterr().err)["status"] == 404


def test_settings_in_the_env_file_count_and_the_environment_wins(tmp_path, capsys):
    env_file = tmp_path / "settings.env"
    env_file.write_text("DEFAULT_TOP_N=1\nDEFAULT_MODEL=course_views\n")
    store = MemoryStore()
    publish_lists(store, {110: [(7, 0.5), (8, 0.25)]}, model_handle="course_views")
    argv = ["--env-file", str(env_file), "lookup", "--user-handle", "110"]

    assert run_server.main(argv, env={"DEFAULT_TOP_N": "2"}, connect=lambda config: store) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["request_data"] == {
        "user_handle": 110,
        "model_handle": "course_views",
        "top_n": 2,
    }


def test_the_store_is_found_where_the_environment_says():
    config = run_server.config_from_env(
        {
            "AWS_REGION": "eu-west-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8001",
            "DYNAMODB_TABLE_PREFIX": "mine",
            "LOG_LEVEL": "warning",
        }
    )
    assert (config.aws.region, config.aws.dynamodb_endpoint) == (
        "eu-west-1",
        "http://127.0.0.1:8001",
    )
    assert (config.table_prefix, config.log_level) == ("mine", "WARNING")
    store = run_server.connect_store(config)
    assert store.table_prefix == "mine"
    assert store.client.meta.region_name == "eu-west-1"
    assert store.client.meta.endpoint_url == "http://127.0.0.1:8001"


def test_a_local_endpoint_without_a_region_is_one_clear_line(tmp_path: Path, monkeypatch, capsys):
    # boto3 looks for a region in the process environment too: there is none, as on a new machine.
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    env = {"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"}

    code = run_server.main(["--env-file", str(tmp_path / "absent.env"), "serve"], env=env)

    err = capsys.readouterr().err
    assert code == 2
    assert "no AWS region is set for the DynamoDB endpoint http://127.0.0.1:9" in err
    assert "AWS_DEFAULT_REGION" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_outage_settings_are_read_from_the_environment():
    config = run_server.config_from_env(
        {"STALE_IF_ERROR_SECONDS": "0", "READINESS_CACHE_SECONDS": "2.5"}
    )
    assert (config.settings.stale_if_error_seconds, config.settings.readiness_cache_seconds) == (
        0,
        2.5,
    )
    with pytest.raises(ConfigError, match="STALE_IF_ERROR_SECONDS must be between"):
        run_server.config_from_env({"STALE_IF_ERROR_SECONDS": "-1"})


class RefusingStore(MemoryStore):
    """A store that refuses reads, as DynamoDB does when access is denied."""

    def current_run(self, model_handle):
        raise StoreError("DynamoDB refused a read: AccessDeniedException")


def test_lookup_on_a_store_that_refuses_is_a_problem_not_a_traceback(tmp_path, capsys):
    argv = ["--env-file", str(tmp_path / "absent.env"), "lookup", "--user-handle", "1"]
    argv += ["--model-handle", "interests"]

    assert run_server.main(argv, env={}, connect=lambda config: RefusingStore()) == 1
    err = capsys.readouterr().err
    assert json.loads(err)["status"] == 503 and "Traceback" not in err
