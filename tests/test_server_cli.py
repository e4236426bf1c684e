"""The server's command line: settings from the environment, and one-line errors for bad ones."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

import run_server
from config import ConfigError
from similarity.features import UserIndex
from similarity.models import MODELS
from store import StoreError
from store.artifacts import FileArtifacts, S3Artifacts
from store.memory import MemoryStore
from tests.builders import people_tables
from tests.fakes import publish_lists, publish_space


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT must be a whole number, not 'http'"),
        ("PORT", "70000", "PORT must be between 1 and 65535, not 70000"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("STORE_READ_TIMEOUT_SECONDS", "nan", "STORE_READ_TIMEOUT_SECONDS must be between"),
        ("DEFAULT_TOP_N", "0", "DEFAULT_TOP_N must be between 1 and 1000, not 0"),
        ("DEFAULT_MODEL", "Hybrid!", "default_model must match"),
        ("ARTIFACT_URI", "https://x/y", "ARTIFACT_URI: artifacts are kept at file://FOLDER"),
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
    assert answer["data"]["similar_users"] == [{"user_handle": 7, "score": 0.5, "mutual": False}]

    argv[-1] = "8"
    assert run_server.main(argv, env={}, connect=lambda config: store) == 1
    assert json.loads(capsys.readouterr().err)["status"] == 404


def test_lookup_passes_mutual_only_on(tmp_path, capsys):
    store = MemoryStore()
    publish_lists(store, {110: [(7, 0.5, False), (8, 0.25, True)], 8: [(110, 0.25, True)]})
    argv = ["--env-file", str(tmp_path / "absent.env"), "lookup", "--user-handle", "110"]

    assert run_server.main([*argv, "--mutual-only"], env={}, connect=lambda config: store) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["request_data"]["mutual_only"] is True
    assert answer["data"]["similar_users"] == [{"user_handle": 8, "score": 0.25, "mutual": True}]


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
        "explain": False,
        "mutual_only": False,
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


def test_artifacts_are_read_from_the_projects_data_folder_and_cached_in_the_temp_folder():
    config = run_server.config_from_env({})
    assert config.artifact_cache_dir == Path(tempfile.gettempdir()) / "similar-users-artifacts"
    store = run_server.connect_artifacts(config)
    assert isinstance(store, FileArtifacts)
    assert store.root == Path(run_server.__file__).resolve().parent / "data" / "artifacts"


def test_where_artifacts_are_read_and_cached_is_read_from_the_environment(tmp_path):
    config = run_server.config_from_env(
        {
            "ARTIFACT_URI": "s3://bucket/artifacts/",
            "ARTIFACT_CACHE_DIR": str(tmp_path / "cache"),
            "AWS_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        }
    )
    assert (config.artifact_uri, config.artifact_cache_dir) == (
        "s3://bucket/artifacts/",
        tmp_path / "cache",
    )
    store = run_server.connect_artifacts(config)
    assert isinstance(store, S3Artifacts)
    assert (store.bucket, store.prefix) == ("bucket", "artifacts/")
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9000"


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


# -- profiles and explanations ---------------------------------------------------------------


@pytest.fixture
def published_space(tmp_path: Path) -> tuple[MemoryStore, dict[str, str]]:
    """A store with a hybrid run whose artifact is in a local folder, and the environment that
    points the server at it."""
    tables = people_tables()
    artifacts = FileArtifacts(tmp_path / "artifacts")
    store = MemoryStore()
    publish_space(store, artifacts, MODELS["hybrid"].space(tables, UserIndex.of(tables)))
    env = {
        "ARTIFACT_URI": artifacts.root.as_uri(),
        "ARTIFACT_CACHE_DIR": str(tmp_path / "cache"),
        "DEFAULT_MODEL": "hybrid",
    }
    return store, env


def test_lookup_answers_a_profile_and_explains_it(published_space, tmp_path, capsys):
    store, env = published_space
    profile = json.dumps({"interests": ["pythn"], "courses": ["Python Beyond Basics"]})
    argv = ["--env-file", str(tmp_path / "absent.env"), "lookup", "--profile", profile]

    assert run_server.main([*argv, "--explain"], env=env, connect=lambda config: store) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [(m["input"], m["name"], m["how"]) for m in answer["request_data"]["matched"]] == [
        ("pythn", "python", "fuzzy"),
        ("Python Beyond Basics", "python-beyond-basics", "normalised"),
    ]
    first = answer["data"]["similar_users"][0]
    assert first["user_handle"] in (1, 2) and first["shared"]


def test_lookup_explains_a_user(published_space, tmp_path, capsys):
    store, env = published_space
    argv = ["--env-file", str(tmp_path / "absent.env"), "lookup", "--user-handle", "1", "--explain"]

    assert run_server.main(argv, env=env, connect=lambda config: store) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["request_data"]["explain"] is True
    assert all("shared" in user for user in answer["data"]["similar_users"])


@pytest.mark.parametrize(
    ("profile", "status"),
    [("{", 400), ('{"interests": ["cobol"]}', 422), ('["python"]', 422), ('{"skills": []}', 422)],
)
def test_lookup_of_a_bad_profile_is_a_problem(published_space, tmp_path, capsys, profile, status):
    store, env = published_space
    argv = ["--env-file", str(tmp_path / "absent.env"), "lookup", "--profile", profile]

    assert run_server.main(argv, env=env, connect=lambda config: store) == 1
    err = capsys.readouterr().err
    assert json.loads(err)["status"] == status and "Traceback" not in err


def test_lookup_without_the_artifact_is_503_naming_the_run(tmp_path, capsys):
    store = MemoryStore()
    run = publish_lists(store, {1: [(2, 0.5)], 2: [(1, 0.5)]})
    env = {"ARTIFACT_URI": (tmp_path / "none").as_uri()}
    argv = [
        "--env-file",
        str(tmp_path / "absent.env"),
        "lookup",
        "--profile",
        '{"interests": ["a"]}',
    ]

    assert run_server.main(argv, env=env, connect=lambda config: store) == 1
    problem = json.loads(capsys.readouterr().err)
    assert problem["status"] == 503 and run.run_id in problem["detail"]


@pytest.mark.parametrize(
    "asked", [[], ["--user-handle", "1", "--profile", '{"interests": ["python"]}']]
)
def test_lookup_takes_exactly_one_of_a_user_and_a_profile(tmp_path, asked):
    with pytest.raises(SystemExit) as exit_:
        run_server.main(["--env-file", str(tmp_path / "absent.env"), "lookup", *asked], env={})

    assert exit_.value.code == 2


def test_the_profile_settings_are_read_from_the_environment(tmp_path):
    config = run_server.config_from_env(
        {"PROFILE_EXACT_MAX_USERS": "1000", "ARTIFACT_CACHE_DIR": str(tmp_path)}
    )

    assert config.settings.profile_exact_max_users == 1000
    assert config.settings.artifact_cache_dir == config.artifact_cache_dir == tmp_path
    assert run_server.config_from_env({}).settings.max_body_bytes == 65_536
    with pytest.raises(ConfigError, match="PROFILE_EXACT_MAX_USERS must be between"):
        run_server.config_from_env({"PROFILE_EXACT_MAX_USERS": "0"})
