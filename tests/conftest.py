"""Shared fixtures: stores of every kind, and a DynamoDB Local that the test session runs itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import dynamodb_local as local
from store.dynamo import DynamoStore
from tests.fakes import FAKE_AWS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "pluralsight-sample"


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test reach a real AWS account: fake credentials and no shared config."""
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(autouse=True)
def artifacts_in_a_temporary_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep the artifacts of every generator and server a test starts out of the project's data
    folder (child processes get the environment through tests.fakes.aws_env)."""
    folder = tmp_path_factory.mktemp("artifacts")
    monkeypatch.setenv("ARTIFACT_URI", folder.as_uri())


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[local.DynamoDBLocal]:
    """Run one in-memory DynamoDB Local for the whole test session."""
    instance = local.start(local.free_port(), data_dir=None, project_root=ROOT)
    try:
        yield instance
    finally:
        local.stop(instance)


@pytest.fixture
def table_prefix() -> str:
    """Give each test its own tables, so tests sharing a DynamoDB never see each other's runs."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def local_store(dynamodb_local: local.DynamoDBLocal, table_prefix: str) -> DynamoStore:
    """Return a DynamoStore on DynamoDB Local with fresh tables."""
    store = DynamoStore.connect(
        table_prefix=table_prefix, region="us-east-1", endpoint_url=dynamodb_local.endpoint_url
    )
    store.ensure_tables()
    return store


@pytest.fixture
def sample_dir() -> Path:
    """Return the real sample export folder, or skip when ../shared is not beside the project."""
    if not SAMPLE.is_dir():
        pytest.skip("../shared/data/pluralsight-sample is not present")
    return SAMPLE
