"""The generator's command line: help, argument checks and settings from the environment."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from moto import mock_aws

import run_generator
from config import AwsSettings, ConfigError
from run_generator import GeneratorConfig, config_from_env, parser
from store import RunStatus, StoreConfigError
from store.artifacts import FileArtifacts, S3Artifacts
from store.dynamo import DynamoStore
from store.memory import MemoryStore
from tests.fakes import FAKE_AWS


@pytest.fixture(autouse=True)
def fresh_logging() -> None:
    """Let each in-process run configure logging anew, as a new process would."""
    root = logging.getLogger()
    kept = root.handlers[:]
    yield
    root.handlers[:] = kept


@pytest.fixture(autouse=True)
def artifacts(tmp_path: Path) -> FileArtifacts:
    """Keep the runs' artifacts of in-process runs in the test's folder, not the project's."""
    kept = FileArtifacts(tmp_path / "artifacts")
    ARTIFACTS[:] = [kept]
    return kept


# The artifact store of the running test (the autouse fixture's): `run` hands it to main.
ARTIFACTS: list[FileArtifacts] = []


def run(argv: list[str], env: Mapping[str, str] | None = None, store: MemoryStore | None = None):
    """Run the command line in this process with `env` and a memory store; return the exit code."""
    chosen = store if store is not None else MemoryStore()
    return run_generator.main(
        argv,
        env=dict(env or {}),
        connect=lambda config: chosen,
        artifacts=lambda config: ARTIFACTS[0],
    )


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        run(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("synthesize", "generate", "evaluate", "rollback"))


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
        ["generate", "--min-recall", "2"],
        ["generate", "--engine", "hadoop"],
        ["generate", "--partitions-per-core", "nan"],
        ["generate", "--partitions-per-core", "inf"],
        ["--log-level", "LOUD", "generate"],
    ],
)
def test_bad_arguments_exit_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TOP_N_STORED", "fifty", "TOP_N_STORED must be a whole number, not 'fifty'"),
        ("TOP_N_STORED", "0", "TOP_N_STORED must be between 1 and 1000, not 0"),
        ("NEIGHBOUR_SEARCH", "fast", "NEIGHBOUR_SEARCH must be one of auto, exact, approximate"),
        ("GENERATOR_THREADS", "-1", "GENERATOR_THREADS must be between 1 and"),
        ("DYNAMODB_WRITERS", "many", "DYNAMODB_WRITERS must be a whole number"),
        ("ABANDONED_RUN_SECONDS", "0", "ABANDONED_RUN_SECONDS must be between 1 and"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("KEEP_UNBUILT_RUNS", "maybe", "KEEP_UNBUILT_RUNS must be true or false, not 'maybe'"),
        ("MIN_RECALL", "1.5", "MIN_RECALL must be between 0 and 1, not 1.5"),
        ("ARTIFACT_URI", "/srv/artifacts", "ARTIFACT_URI: artifacts are kept at file://FOLDER"),
        ("ARTIFACT_URI", "s3://", "ARTIFACT_URI: 's3://' names no valid bucket"),
        ("GENERATOR_ENGINE", "hadoop", "GENERATOR_ENGINE must be one of local, spark"),
        ("SPARK_PARTITIONS_PER_CORE", "0", "SPARK_PARTITIONS_PER_CORE must be between 0.25 and"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(name, value, message, capsys):
    with pytest.raises(ConfigError, match=message):
        config_from_env({name: value})

    assert run(["generate"], env={name: value}) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_settings_are_read_from_the_environment_mapping_alone():
    config = config_from_env(
        {
            "DATA_DIR": " s3://bucket/export ",
            "TOP_N_STORED": "20",
            "GENERATOR_THREADS": "3",
            "NEIGHBOUR_SEARCH": "Exact",
            "APPROXIMATE_ABOVE": "5",
            "DYNAMODB_TABLE_PREFIX": "mine",
            "DYNAMODB_WRITERS": "4",
            "ABANDONED_RUN_SECONDS": "60",
            "LOG_LEVEL": "debug",
            "KEEP_UNBUILT_RUNS": "Yes",
            "MIN_RECALL": "0.8",
            "SEARCH_BUDGET_SECONDS": "60",
            "MAX_REJECTED_SHARE": "0.25",
            "AWS_LOG_LEVEL": "info",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8001",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "ARTIFACT_URI": " s3://bucket/artifacts ",
        }
    )
    assert config == GeneratorConfig(
        data_dir="s3://bucket/export",
        top_n_stored=20,
        threads=3,
        search="exact",
        approximate_above=5,
        table_prefix="mine",
        writers=4,
        abandoned_after=timedelta(seconds=60),
        log_level="DEBUG",
        keep_unbuilt_runs=True,
        min_recall=0.8,
        search_budget_seconds=60.0,
        max_rejected_share=0.25,
        aws=AwsSettings(
            region="eu-west-1",
            dynamodb_endpoint="http://127.0.0.1:8001",
            s3_endpoint="http://127.0.0.1:9000",  # the endpoint of every service not named alone
            credentials=("local", "secret", None),
            log_level="INFO",
        ),
        artifact_uri="s3://bucket/artifacts",
    )
    assert "secret" not in repr(config)


def test_artifacts_are_kept_in_the_projects_data_folder_unless_artifact_uri_says_elsewhere(
    tmp_path,
):
    default = run_generator.connect_artifacts(config_from_env({}))
    assert isinstance(default, FileArtifacts)
    assert default.root == Path(run_generator.__file__).resolve().parent / "data" / "artifacts"

    chosen = run_generator.connect_artifacts(config_from_env({"ARTIFACT_URI": tmp_path.as_uri()}))
    assert isinstance(chosen, FileArtifacts) and chosen.root == tmp_path


def test_artifacts_on_s3_use_a_client_of_the_aws_settings_made_when_first_needed():
    env = {"ARTIFACT_URI": "s3://bucket/artifacts", "AWS_DEFAULT_REGION": "eu-west-1"}
    store = run_generator.connect_artifacts(config_from_env(env))
    assert isinstance(store, S3Artifacts)
    assert (store.bucket, store.prefix) == ("bucket", "artifacts/")
    assert store.client.meta.region_name == "eu-west-1"


def test_without_an_access_key_the_credentials_are_left_to_boto3():
    assert config_from_env({"AWS_ACCESS_KEY_ID": "half"}).aws.credentials is None


def test_aws_region_wins_over_the_default_region():
    env = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-1"}
    assert config_from_env(env).aws.region == "eu-west-1"


@pytest.mark.parametrize(
    ("argv", "environment", "search", "above"),
    [
        ([], {}, "auto", 200_000),
        (["--search", "approximate"], {}, "approximate", 200_000),
        (["--search", "exact"], {"NEIGHBOUR_SEARCH": "approximate"}, "exact", 200_000),
        ([], {"NEIGHBOUR_SEARCH": "Exact", "APPROXIMATE_ABOVE": "5"}, "exact", 5),
        (["--approximate-above", "7"], {"APPROXIMATE_ABOVE": "5"}, "auto", 7),
    ],
)
def test_the_search_is_chosen_by_flag_or_environment(argv, environment, search, above):
    args = parser(config_from_env(environment)).parse_args(["generate", *argv])
    assert run_generator.SEARCHES[args.search] is run_generator.SEARCHES[search]
    assert args.approximate_above == above


def test_generate_publishes_into_the_store_it_is_handed(tmp_path, artifacts):
    store = MemoryStore()

    code = run(
        ["generate", "--synthetic-users", "60", "--models", "interests", "--top-n", "3"],
        env={"GENERATOR_THREADS": "1"},
        store=store,
    )

    assert code == 0
    run_ = store.current_run("interests")
    assert run_ is not None and run_.status == RunStatus.PUBLISHED and run_.top_n == 3
    assert run_.user_count > 0
    assert store.current_runs().keys() == {"interests"}
    assert run_.artifact is not None and artifacts.run_ids("interests") == [run_.run_id]


def test_synthesize_writes_the_four_files(tmp_path):
    assert run(["synthesize", "--users", "40", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "course_tags.csv",
        "user_assessment_scores.csv",
        "user_course_views.csv",
        "user_interests.csv",
    ]


def test_a_missing_data_dir_fails_with_exit_code_one(tmp_path, caplog):
    assert run(["generate", "--data-dir", str(tmp_path / "absent")]) == 1
    assert "no such directory" in caplog.text


def test_a_local_endpoint_without_a_region_is_one_clear_line(capsys, monkeypatch):
    # boto3 looks for a region in the process environment too: there is none, as on a new machine.
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    env = {
        **{k: v for k, v in FAKE_AWS.items() if k != "AWS_DEFAULT_REGION"},
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
    }
    config = config_from_env(env)
    assert config.aws.region is None

    with pytest.raises(StoreConfigError, match="no AWS region is set for the DynamoDB endpoint"):
        run_generator.connect_store(config)

    code = run_generator.main(["generate"], env=env)
    err = capsys.readouterr().err
    assert code == 2
    assert "AWS_DEFAULT_REGION" in err and "http://127.0.0.1:9" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


TOKEN = "SESSION-TOKEN-THAT-MUST-NOT-BE-LOGGED"


def generate_on_moto(caplog: pytest.LogCaptureFixture, **env: str) -> str:
    """Generate into moto at LOG_LEVEL=DEBUG with a session token; return what was logged."""
    settings = {**FAKE_AWS, "AWS_SESSION_TOKEN": TOKEN, "GENERATOR_THREADS": "1", **env}

    def connect(config: GeneratorConfig) -> DynamoStore:
        return DynamoStore.connect(
            region=config.aws.region, credentials=config.aws.credentials, fast_path=False
        )

    caplog.set_level(logging.DEBUG)
    with mock_aws():
        argv = ["generate", "--synthetic-users", "40", "--models", "interests", "--no-evaluate"]
        assert run_generator.main(argv, env=settings, connect=connect) == 0
    return caplog.text


def test_debug_logging_keeps_the_aws_sdk_quiet_so_no_credential_is_logged(caplog):
    logged = generate_on_moto(caplog, LOG_LEVEL="DEBUG")
    assert "interests: published run" in logged
    assert logging.getLogger("generator").isEnabledFor(logging.DEBUG)
    assert TOKEN not in logged
    assert not logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)


def test_the_aws_sdk_logs_at_debug_only_when_its_own_setting_asks(caplog):
    logged = generate_on_moto(caplog, LOG_LEVEL="DEBUG", AWS_LOG_LEVEL="DEBUG")
    assert TOKEN in logged  # what the default keeps out


def test_the_share_of_rejected_rows_a_file_may_have_is_a_setting(tmp_path, caplog):
    assert run(["synthesize", "--users", "40", "--out", str(tmp_path)]) == 0
    interests = tmp_path / "user_interests.csv"
    lines = interests.read_text().splitlines()
    # 60% of the rows are damaged: more than the 10% a file may have by default.
    damaged = [lines[0], *lines[1:], *(f"not-a-handle,tag{i}" for i in range(len(lines) * 3 // 2))]
    interests.write_text("\n".join(damaged) + "\n")
    argv = ["generate", "--data-dir", str(tmp_path), "--models", "interests", "--no-evaluate"]

    assert run(argv) == 1
    assert "user_interests.csv" in caplog.text and "10%" in caplog.text

    assert run(argv, env={"MAX_REJECTED_SHARE": "0.7"}) == 0


def test_generate_with_a_synthetic_survey_publishes_the_survey_model_too():
    store = MemoryStore()
    argv = [
        "generate",
        "--synthetic-users",
        "300",
        "--survey",
        "--models",
        "survey",
        "--top-n",
        "3",
    ]
    assert run(argv, env={"GENERATOR_THREADS": "1"}, store=store) == 0
    assert set(store.current_runs()) == {"survey"}
    assert store.current_run("survey").settings["fit"]["survey"]["traits"] >= 1


def test_a_synthetic_export_has_no_survey_unless_asked(caplog):
    store = MemoryStore()
    argv = ["generate", "--synthetic-users", "60", "--models", "survey", "--top-n", "3"]
    assert run(argv, env={"GENERATOR_THREADS": "1"}, store=store) == 1
    assert store.current_runs() == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["generate", "--engine", "spark", "--search", "approximate"],
            "the Spark engine searches exactly (block pairs): an approximate search "
            "(--search or NEIGHBOUR_SEARCH) needs --engine local",
        ),
        (
            ["generate", "--engine", "spark", "--spark-master", "spark://cluster:7077"],
            "a synthetic export is written on this machine: give a cluster an export it can "
            "read (--data-dir s3://...)",
        ),
        (
            ["generate", "--engine", "spark", "--spark-master", "yarn", "--data-dir", "exports"],
            "exports: a cluster's executors cannot read this machine's folders",
        ),
    ],
)
def test_what_the_spark_engine_cannot_do_is_refused_before_spark_starts(argv, message, capsys):
    store = MemoryStore()
    assert run(argv, store=store) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert store.current_runs() == {}


@pytest.mark.parametrize(
    ("argv", "environment", "engine", "master", "partitions"),
    [
        ([], {}, "local", None, 1.0),
        (["--engine", "spark"], {}, "spark", None, 1.0),
        ([], {"GENERATOR_ENGINE": "Spark", "SPARK_MASTER": "local[2]"}, "spark", "local[2]", 1.0),
        (
            ["--engine", "local", "--spark-master", "yarn", "--partitions-per-core", "4"],
            {"GENERATOR_ENGINE": "spark", "SPARK_PARTITIONS_PER_CORE": "2"},
            "local",
            "yarn",
            4.0,
        ),
    ],
)
def test_the_engine_is_chosen_by_flag_or_environment(argv, environment, engine, master, partitions):
    args = parser(config_from_env(environment)).parse_args(["generate", *argv])
    assert (args.engine, args.spark_master, args.partitions_per_core) == (
        engine,
        master,
        partitions,
    )
