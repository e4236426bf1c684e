"""Model artifacts: written whole, fetched verified, deleted, in a local folder and on S3 (moto)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from store import StoreError, StoreUnavailableError
from store.artifacts import (
    CACHED_RUNS,
    MANIFEST,
    Artifact,
    ArtifactCorruptError,
    ArtifactError,
    ArtifactMissingError,
    ArtifactStore,
    ArtifactUnavailableError,
    FileArtifacts,
    S3Artifacts,
    open_artifacts,
    verify,
)
from tests.fakes import unreachable_s3

BUCKET = "similar-users-artifacts"
RUN = "20261123T100000000000Z-abc123"
FILES = {
    "users.npy": b"\x93NUMPY" + bytes(range(256)) * 5,
    "space.json": b'{"model": "interests"}',
    "empty.npy": b"",
}


def no_s3() -> Any:
    raise AssertionError("an S3 client was asked for")


@pytest.fixture
def s3() -> Iterator[Any]:
    """Return an S3 client on moto with an empty artifacts bucket."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Return an artifact store in a local folder, or under a prefix of a bucket on moto."""
    if request.param == "file":
        return FileArtifacts(tmp_path / "artifacts")
    client = request.getfixturevalue("s3")
    return S3Artifacts(lambda: client, BUCKET, "artifacts")


def put(store: ArtifactStore, model: str = "interests", run_id: str = RUN) -> Artifact:
    """Stage FILES for a run and put them."""
    folder = store.stage(model, run_id)
    for name, content in FILES.items():
        (folder / name).write_bytes(content)
    return store.put(model, run_id, folder)


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# -- both stores -------------------------------------------------------------------------------


def test_a_put_artifact_is_fetched_with_the_same_bytes_and_a_manifest(store, tmp_path):
    artifact = put(store)

    folder = store.fetch(artifact, tmp_path / "cache")

    fetched = contents(folder)
    assert {name: fetched[name] for name in FILES} == FILES
    assert set(fetched) == {*FILES, MANIFEST}
    assert artifact.sha256 == hashlib.sha256(fetched[MANIFEST]).hexdigest()
    assert artifact.bytes == sum(len(content) for content in fetched.values())
    listed = json.loads(fetched[MANIFEST])["files"]
    assert {f["name"]: (f["bytes"], f["sha256"]) for f in listed} == {
        name: (len(content), hashlib.sha256(content).hexdigest()) for name, content in FILES.items()
    }


def test_the_uri_names_the_runs_folder(store):
    artifact = put(store, "course_views", RUN)
    assert artifact.uri.endswith(f"/course_views/{RUN}")
    assert artifact.uri.startswith("file:///" if isinstance(store, FileArtifacts) else "s3://")


def test_put_removes_the_staged_folder(store):
    folder = store.stage("interests", RUN)
    (folder / "users.npy").write_bytes(b"x")
    store.put("interests", RUN, folder)
    assert not folder.exists()


def test_a_wrong_checksum_is_a_corrupt_artifact(store, tmp_path):
    artifact = put(store)
    wrong = Artifact(artifact.uri, "0" * 64, artifact.bytes)
    with pytest.raises(ArtifactCorruptError, match=rf"{artifact.uri}: {MANIFEST} has sha256"):
        store.fetch(wrong, tmp_path / "cache")


def test_a_wrong_size_in_the_record_is_a_corrupt_artifact(store, tmp_path):
    artifact = put(store)
    wrong = Artifact(artifact.uri, artifact.sha256, artifact.bytes + 1)
    with pytest.raises(ArtifactCorruptError, match="add up to"):
        store.fetch(wrong, tmp_path / "cache")


def test_an_artifact_never_put_is_missing(store, tmp_path):
    artifact = put(store)
    other = Artifact(artifact.uri.replace(RUN, "20261124T100000000000Z-def456"), artifact.sha256, 1)
    with pytest.raises(ArtifactMissingError, match="20261124T100000000000Z-def456"):
        store.fetch(other, tmp_path / "cache")


def test_deleting_removes_the_artifact_and_is_idempotent(store, tmp_path):
    artifact = put(store)
    kept = put(store, run_id="20261124T100000000000Z-def456")

    store.delete("interests", RUN)
    store.delete("interests", RUN)
    store.delete("interests", "20991231T000000000000Z-000000")  # never written

    with pytest.raises(ArtifactMissingError):
        store.fetch(artifact, tmp_path / "elsewhere")
    assert contents(store.fetch(kept, tmp_path / "cache"))["users.npy"] == FILES["users.npy"]
    assert store.run_ids("interests") == ["20261124T100000000000Z-def456"]


def test_run_ids_lists_each_models_runs_with_an_artifact_sorted(store):
    for run_id in ("20261125T000000000000Z-c", "20261123T000000000000Z-a"):
        put(store, "interests", run_id)
    put(store, "course_views", "20261124T000000000000Z-b")

    assert store.run_ids("interests") == ["20261123T000000000000Z-a", "20261125T000000000000Z-c"]
    assert store.run_ids("course_views") == ["20261124T000000000000Z-b"]
    assert store.run_ids("hybrid") == []


@pytest.mark.parametrize(
    ("model", "run_id"), [("../x", RUN), ("interests", ".."), ("a/b", RUN), ("interests", "")]
)
def test_a_name_that_is_not_one_path_component_is_refused(store, model, run_id):
    with pytest.raises(ValueError, match="cannot name a folder"):
        store.stage(model, run_id)
    with pytest.raises(ValueError, match="cannot name a folder"):
        store.delete(model, run_id)


def test_a_folder_inside_the_staged_folder_is_refused(store):
    folder = store.stage("interests", RUN)
    (folder / "nested").mkdir()
    with pytest.raises(ArtifactError, match="'nested' cannot be part of an artifact"):
        store.put("interests", RUN, folder)


def test_an_artifact_of_another_store_is_refused(store, tmp_path):
    artifact = put(store)
    foreign = Artifact("s3://another-bucket/x/interests/" + RUN, artifact.sha256, artifact.bytes)
    if isinstance(store, S3Artifacts):
        foreign = Artifact((tmp_path / "interests" / RUN).as_uri(), artifact.sha256, 1)
    with pytest.raises(ArtifactError, match="not an artifact of this store"):
        store.fetch(foreign, tmp_path / "cache")


# -- in a local folder -------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> FileArtifacts:
    return FileArtifacts(tmp_path / "artifacts")


def test_a_local_artifact_is_verified_in_place_not_copied(local, tmp_path):
    artifact = put(local)
    folder = local.fetch(artifact, tmp_path / "cache")
    assert folder == tmp_path / "artifacts" / "interests" / RUN
    assert not (tmp_path / "cache").exists()


def test_a_run_is_staged_under_the_root_so_put_is_a_rename(local, tmp_path):
    assert local.stage("interests", RUN).is_relative_to(tmp_path / "artifacts")


def test_a_flipped_byte_is_a_corrupt_artifact_naming_the_file(local, tmp_path):
    artifact = put(local)
    flip_a_byte(local.root / "interests" / RUN / "users.npy")
    with pytest.raises(ArtifactCorruptError, match=rf"{artifact.uri}: users.npy has sha256"):
        local.fetch(artifact, tmp_path / "cache")


def test_a_file_cut_short_is_a_corrupt_artifact_naming_its_size(local, tmp_path):
    artifact = put(local)
    (local.root / "interests" / RUN / "space.json").write_bytes(b"{}")
    with pytest.raises(ArtifactCorruptError, match=r"space\.json has 2 bytes, not 22"):
        local.fetch(artifact, tmp_path / "cache")


def test_a_removed_file_is_a_missing_artifact_naming_the_file(local, tmp_path):
    artifact = put(local)
    (local.root / "interests" / RUN / "users.npy").unlink()
    with pytest.raises(ArtifactMissingError, match=rf"{artifact.uri}: users.npy is missing"):
        local.fetch(artifact, tmp_path / "cache")


def test_a_removed_manifest_is_a_missing_artifact(local, tmp_path):
    artifact = put(local)
    (local.root / "interests" / RUN / MANIFEST).unlink()
    with pytest.raises(ArtifactMissingError, match=f"{MANIFEST} is missing"):
        local.fetch(artifact, tmp_path / "cache")


def test_a_file_the_manifest_does_not_list_is_a_corrupt_artifact(local, tmp_path):
    artifact = put(local)
    (local.root / "interests" / RUN / "extra.npy").write_bytes(b"")
    with pytest.raises(ArtifactCorruptError, match=r"extra\.npy is not listed"):
        local.fetch(artifact, tmp_path / "cache")


@pytest.mark.parametrize(
    "manifest",
    [
        b"not json",
        b"[]",
        b'{"files": {"users.npy": 1}}',
        b'{"files": [{"name": "../etc/passwd", "bytes": 1, "sha256": "' + b"0" * 64 + b'"}]}',
        b'{"files": [{"name": "a.npy", "bytes": -1, "sha256": "' + b"0" * 64 + b'"}]}',
        b'{"files": [{"name": "a.npy", "bytes": 1}]}',
    ],
)
def test_a_malformed_manifest_is_a_corrupt_artifact_even_when_its_hash_matches(tmp_path, manifest):
    (tmp_path / MANIFEST).write_bytes(manifest)
    with pytest.raises(ArtifactCorruptError, match=f"the-uri: {MANIFEST}"):
        verify(tmp_path, hashlib.sha256(manifest).hexdigest(), "the-uri")


def test_the_same_run_cannot_be_put_twice(local):
    put(local)
    with pytest.raises(ArtifactError, match="already has an artifact"):
        put(local)


def test_deleting_also_removes_what_a_dead_writer_staged(local):
    folder = local.stage("interests", RUN)
    (folder / "users.npy").write_bytes(b"half")
    local.delete("interests", RUN)
    assert not folder.exists()


def test_a_folder_staged_on_another_file_system_is_copied_then_renamed(local, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "users.npy").write_bytes(b"data")

    class OtherDisk(type(elsewhere)):  # renaming out of it fails as across file systems
        def rename(self, target):
            raise OSError(18, "Invalid cross-device link")

    artifact = local.put("interests", RUN, OtherDisk(elsewhere))

    assert contents(local.fetch(artifact, tmp_path / "cache"))["users.npy"] == b"data"
    assert not elsewhere.exists()


# -- on S3 -------------------------------------------------------------------------------------


@pytest.fixture
def remote(s3) -> S3Artifacts:
    return S3Artifacts(lambda: s3, BUCKET, "artifacts/")


def object_names(s3, prefix: str = "") -> list[str]:
    answer = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [entry["Key"] for entry in answer.get("Contents", [])]


def test_an_s3_artifact_is_uploaded_under_the_prefix_manifest_last(s3, tmp_path):
    uploaded: list[str] = []

    class Recording:
        def upload_file(self, filename: str, bucket: str, key: str) -> None:
            uploaded.append(key)
            s3.upload_file(filename, bucket, key)

    artifact = put(S3Artifacts(lambda: Recording(), BUCKET, "artifacts"))

    assert artifact.uri == f"s3://{BUCKET}/artifacts/interests/{RUN}"
    assert sorted(uploaded) == sorted(f"artifacts/interests/{RUN}/{n}" for n in [*FILES, MANIFEST])
    assert uploaded[-1].endswith(MANIFEST)


def test_an_s3_artifact_is_downloaded_into_the_cache_once(remote, s3, tmp_path):
    artifact = put(remote)
    folder = remote.fetch(artifact, tmp_path / "cache")
    assert folder == tmp_path / "cache" / "interests" / RUN

    s3.delete_object(Bucket=BUCKET, Key=f"artifacts/interests/{RUN}/users.npy")

    assert remote.fetch(artifact, tmp_path / "cache") == folder  # verified, not downloaded again


def test_a_damaged_cached_copy_is_downloaded_again(remote, tmp_path):
    artifact = put(remote)
    folder = remote.fetch(artifact, tmp_path / "cache")
    flip_a_byte(folder / "users.npy")

    assert contents(remote.fetch(artifact, tmp_path / "cache"))["users.npy"] == FILES["users.npy"]


def test_a_corrupt_object_on_s3_is_a_corrupt_artifact_and_leaves_nothing_in_the_cache(
    remote, s3, tmp_path
):
    artifact = put(remote)
    s3.put_object(Bucket=BUCKET, Key=f"artifacts/interests/{RUN}/users.npy", Body=b"bad")

    with pytest.raises(ArtifactCorruptError, match=rf"{artifact.uri}: users.npy has 3 bytes"):
        remote.fetch(artifact, tmp_path / "cache")
    assert list((tmp_path / "cache" / "interests").iterdir()) == []


def test_a_missing_object_on_s3_is_a_missing_artifact_naming_the_file(remote, s3, tmp_path):
    artifact = put(remote)
    s3.delete_object(Bucket=BUCKET, Key=f"artifacts/interests/{RUN}/space.json")
    with pytest.raises(ArtifactMissingError, match=rf"{artifact.uri}: downloading space.json"):
        remote.fetch(artifact, tmp_path / "cache")


def test_a_wrong_checksum_is_found_before_any_file_but_the_manifest_is_downloaded(s3, tmp_path):
    downloaded: list[str] = []

    class Recording:
        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def download_file(self, bucket: str, key: str, filename: str) -> None:
            downloaded.append(key.rpartition("/")[2])
            s3.download_file(bucket, key, filename)

    store = S3Artifacts(lambda: Recording(), BUCKET)
    artifact = put(store)

    with pytest.raises(ArtifactCorruptError):
        store.fetch(Artifact(artifact.uri, "f" * 64, artifact.bytes), tmp_path / "cache")
    assert downloaded == [MANIFEST]


def test_two_workers_fetching_at_once_both_get_the_verified_folder(s3, tmp_path):
    class Meeting:
        """An S3 client that holds each fetcher at its first download until both are there."""

        def __init__(self) -> None:
            self.both_there = threading.Barrier(2, timeout=30)

        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def download_file(self, bucket: str, key: str, filename: str) -> None:
            if key.endswith(MANIFEST):
                self.both_there.wait()
            s3.download_file(bucket, key, filename)

    writer = S3Artifacts(lambda: s3, BUCKET)
    artifact = put(writer)
    client = Meeting()
    cache = tmp_path / "cache"

    with ThreadPoolExecutor(max_workers=2) as pool:
        # Two stores, as two gunicorn workers have: each its own, one cache folder.
        futures = [
            pool.submit(S3Artifacts(lambda: client, BUCKET).fetch, artifact, cache)
            for _ in range(2)
        ]
        folders = [future.result() for future in futures]

    assert folders == [cache / "interests" / RUN] * 2
    verify(folders[0], artifact.sha256, artifact.uri)
    assert [p.name for p in (cache / "interests").iterdir()] == [RUN]  # no download left over


def test_deleting_an_s3_artifact_removes_every_object_of_the_run_only(remote, s3):
    put(remote)
    put(remote, run_id="20261124T100000000000Z-def456")
    s3.put_object(Bucket=BUCKET, Key=f"artifacts/interests/{RUN}/half-uploaded.npy", Body=b"x")

    remote.delete("interests", RUN)

    assert object_names(s3, f"artifacts/interests/{RUN}/") == []
    assert len(object_names(s3, "artifacts/interests/20261124T100000000000Z-def456/")) == 4


def test_the_client_is_made_only_when_s3_is_first_needed(s3):
    made: list[Any] = []

    def connect() -> Any:
        made.append(s3)
        return s3

    store = S3Artifacts(connect, BUCKET)
    store.stage("interests", RUN)
    assert made == []
    store.run_ids("interests")
    store.run_ids("hybrid")
    assert made == [s3]


def test_an_unreachable_s3_is_an_unavailable_artifact_store(tmp_path):
    nowhere = unreachable_s3()
    store = S3Artifacts(lambda: nowhere, BUCKET)
    artifact = Artifact(store.uri("interests", RUN), "0" * 64, 1)

    with pytest.raises(ArtifactUnavailableError, match=rf"s3://{BUCKET}/interests/{RUN}") as error:
        store.fetch(artifact, tmp_path / "cache")
    assert isinstance(error.value, StoreUnavailableError)  # a 503 wherever the store's is


def test_a_missing_bucket_is_a_missing_artifact(s3, tmp_path):
    store = S3Artifacts(lambda: s3, "no-such-bucket")
    artifact = Artifact(store.uri("interests", RUN), "0" * 64, 1)
    with pytest.raises(ArtifactMissingError, match="no-such-bucket"):
        store.fetch(artifact, tmp_path / "cache")


# -- choosing a store, and the run record --------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "root"),
    [
        ("file:///srv/artifacts", Path("/srv/artifacts")),
        ("file:///srv/my%20artifacts", Path("/srv/my artifacts")),
        ("file://localhost/srv/artifacts", Path("/srv/artifacts")),
        ("file://data/artifacts", Path.cwd() / "data" / "artifacts"),
    ],
)
def test_a_file_uri_opens_a_local_store_without_asking_for_s3(uri, root):
    store = open_artifacts(uri, no_s3)
    assert isinstance(store, FileArtifacts)
    assert store.root == root


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://bucket-1", "bucket-1", ""),
        ("s3://bucket-1/", "bucket-1", ""),
        ("s3://bucket-1/artifacts", "bucket-1", "artifacts/"),
        ("s3://bucket-1/a/b/", "bucket-1", "a/b/"),
    ],
)
def test_an_s3_uri_opens_an_s3_store_that_has_not_asked_for_a_client_yet(uri, bucket, prefix):
    store = open_artifacts(uri, no_s3)
    assert isinstance(store, S3Artifacts)
    assert (store.bucket, store.prefix) == (bucket, prefix)
    assert store.uri("interests", RUN) == f"s3://{bucket}/{prefix}interests/{RUN}"


@pytest.mark.parametrize(
    "uri",
    ["", "/srv/artifacts", "data/artifacts", "http://x/y", "file://", "s3://", "s3:///prefix",
     "s3://UPPER/x", "s3://bucket/../x", "S3://bucket"],
)  # fmt: skip
def test_anything_else_is_refused_with_a_clear_message(uri):
    with pytest.raises(ValueError, match=r"file://|s3://"):
        open_artifacts(uri, no_s3)


def test_an_artifact_reads_back_from_its_description():
    artifact = Artifact(f"s3://{BUCKET}/interests/{RUN}", "ab" * 32, 1234)
    described = json.loads(json.dumps(artifact.describe()))
    assert described == {"uri": artifact.uri, "sha256": artifact.sha256, "bytes": 1234}
    assert Artifact.from_record(described) == artifact


GOOD = {"uri": f"s3://{BUCKET}/interests/{RUN}", "sha256": "ab" * 32, "bytes": 1}


@pytest.mark.parametrize(
    "record",
    [
        [],
        {},
        GOOD | {"uri": None},
        GOOD | {"uri": "/srv/artifacts/interests/x"},
        GOOD | {"sha256": "AB" * 32},
        GOOD | {"sha256": "ab" * 31},
        {k: v for k, v in GOOD.items() if k != "sha256"},
        GOOD | {"bytes": -1},
        GOOD | {"bytes": "1"},
        GOOD | {"bytes": True},
    ],
)
def test_a_malformed_artifact_record_is_an_artifact_error(record):
    with pytest.raises(ArtifactError, match="artifact") as error:
        Artifact.from_record(record)
    assert isinstance(error.value, StoreError)


def test_a_servers_cache_keeps_the_newest_runs_of_a_model_and_the_one_just_fetched(
    remote, tmp_path
):
    runs = [f"2026112{day}T100000000000Z-abc123" for day in range(1, 7)]
    artifacts = {run_id: put(remote, run_id=run_id) for run_id in runs}
    cache = tmp_path / "cache"
    for run_id in runs:
        remote.fetch(artifacts[run_id], cache)
    newest = runs[-CACHED_RUNS:]
    assert sorted(p.name for p in (cache / "interests").iterdir()) == newest
    # A rollback's older run is fetched again and kept, beside the newest.
    remote.fetch(artifacts[runs[0]], cache)
    assert sorted(p.name for p in (cache / "interests").iterdir()) == [runs[0], *newest]


def test_a_dead_writers_staged_run_is_listed_for_cleanup_and_the_trash_emptied(local):
    staged = local.stage("interests", RUN)
    (staged / "users.npy").write_bytes(b"half")
    (local.root / ".trash" / "left-by-a-dead-delete").mkdir(parents=True)
    assert local.run_ids("interests") == [RUN]
    assert list((local.root / ".trash").iterdir()) == []
    local.delete("interests", RUN)
    assert local.run_ids("interests") == [] and not staged.exists()
