"""Exports from S3: what is downloaded, what is left alone, and how failures are named."""

from __future__ import annotations

import errno
import gzip
from pathlib import Path
from typing import NamedTuple

import boto3
import pytest
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from generator.sources import fetch_export, parse_s3_uri, s3_fingerprint
from generator.tables import TableError, load_tables
from tests.fakes import unreachable_s3

BUCKET = "similar-users-input"
INTERESTS = b"user_handle,interest_tag,date_followed\n1,python,2017-06-27\n2,python,2017-06-28\n"
VIEWS = (
    b"user_handle,view_date,course_id,author_handle,level,view_time_seconds\n"
    b"1,2017-06-27,intro-python,7,Beginner,120\n"
)


@pytest.fixture
def s3():
    """Return an S3 client on moto with an empty input bucket."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(s3, key: str, body: bytes = INTERESTS) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def fetch(s3, uri: str, dest: Path) -> Path:
    """Fetch an export through the given S3 client."""
    return fetch_export(uri, dest, connect_s3=lambda: s3)


class Usage(NamedTuple):
    """A disk as shutil.disk_usage describes it."""

    total: int
    used: int
    free: int


def disk_with(free: int, asked: list[Path] | None = None):
    """Return a disk_usage that says `free` bytes are free, noting which paths it was asked of."""

    def usage(path: Path) -> Usage:
        if asked is not None:
            asked.append(path)
        return Usage(total=10 * free + 1, used=9 * free + 1, free=free)

    return usage


def test_a_local_folder_is_returned_unchanged_without_asking_for_s3(tmp_path):
    def no_s3():
        raise AssertionError("an S3 client was asked for a local folder")

    assert fetch_export("data/export", tmp_path, connect_s3=no_s3) == Path("data/export")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket", ("bucket", "")),
        ("s3://bucket/", ("bucket", "")),
        ("s3://bucket/exports", ("bucket", "exports/")),
        ("s3://bucket/exports/", ("bucket", "exports/")),
        ("s3://bucket/2026/11/23/", ("bucket", "2026/11/23/")),
    ],
)
def test_an_s3_uri_names_a_bucket_and_a_folder_like_prefix(uri, expected):
    assert parse_s3_uri(uri) == expected


def test_an_s3_uri_without_a_bucket_is_refused():
    with pytest.raises(TableError, match="no bucket"):
        parse_s3_uri("s3:///exports/")


def test_the_export_files_under_the_prefix_are_downloaded(s3, tmp_path):
    put(s3, "exports/user_interests.csv")
    put(s3, "exports/user_course_views.csv.gz", gzip.compress(VIEWS))

    found = fetch(s3, f"s3://{BUCKET}/exports", tmp_path / "export")

    assert found == tmp_path / "export"
    assert sorted(p.name for p in found.iterdir()) == [
        "user_course_views.csv.gz",
        "user_interests.csv",
    ]
    assert (found / "user_interests.csv").read_bytes() == INTERESTS


def test_other_files_sub_folders_and_sibling_prefixes_are_left_alone(s3, tmp_path):
    put(s3, "exports/user_interests.csv")
    put(s3, "exports/README.txt", b"not an export")
    put(s3, "exports/old/user_course_views.csv", VIEWS)
    put(s3, "exports-old/course_tags.csv", b"course_id,course_tags\nx,y\n")

    found = fetch(s3, f"s3://{BUCKET}/exports/", tmp_path)

    assert [p.name for p in found.iterdir()] == ["user_interests.csv"]


def test_a_downloaded_export_loads_like_a_folder(s3, tmp_path):
    put(s3, "exports/user_interests.csv")
    put(s3, "exports/user_course_views.csv", VIEWS)

    tables = load_tables(fetch(s3, f"s3://{BUCKET}/exports/", tmp_path))

    assert tables.user_interests is not None and len(tables.user_interests) == 2
    assert tables.user_course_views is not None and len(tables.user_course_views) == 1
    assert tables.user_assessment_scores is None


def test_a_prefix_without_exports_is_an_error_naming_the_uri(s3, tmp_path):
    put(s3, "elsewhere/user_interests.csv")
    with pytest.raises(TableError, match=rf"s3://{BUCKET}/exports/: none of the exports"):
        fetch(s3, f"s3://{BUCKET}/exports/", tmp_path)


def test_a_missing_bucket_is_an_error_naming_the_uri(s3, tmp_path):
    with pytest.raises(TableError, match=r"s3://no-such-bucket/x: no such bucket"):
        fetch(s3, "s3://no-such-bucket/x", tmp_path)


@set_initial_no_auth_action_count(4)
def test_access_denied_is_an_error_naming_the_uri_and_the_permissions(tmp_path):
    with mock_aws():
        # Moto checks permissions after the first four calls: a bucket, and a user with no policy.
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        put(s3, "exports/user_interests.csv")
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        reader = boto3.client(
            "s3",
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
        )

        with pytest.raises(TableError, match=rf"s3://{BUCKET}/exports/: access denied.*ListBucket"):
            fetch(reader, f"s3://{BUCKET}/exports/", tmp_path)


def test_an_unreachable_s3_is_an_error_naming_the_uri(tmp_path):
    nowhere = unreachable_s3()
    with pytest.raises(TableError, match=rf"s3://{BUCKET}/x: cannot read the export from S3"):
        fetch(nowhere, f"s3://{BUCKET}/x", tmp_path)


def test_an_export_larger_than_the_free_disk_is_refused_naming_the_object_before_any_download(
    s3, tmp_path
):
    put(s3, "exports/user_interests.csv")  # 86 bytes
    put(s3, "exports/user_course_views.csv", VIEWS)  # 113 bytes, sorted first
    asked: list[Path] = []

    with pytest.raises(TableError) as refused:
        fetch_export(
            f"s3://{BUCKET}/exports/",
            tmp_path / "export",
            connect_s3=lambda: s3,
            disk_usage=disk_with(len(VIEWS) + len(INTERESTS) - 1, asked),
        )

    assert str(refused.value) == (
        f"s3://{BUCKET}/exports/user_interests.csv: the object is {len(INTERESTS)} bytes; with "
        f"the export files before it, {len(VIEWS) + len(INTERESTS)} bytes are needed in "
        f"{tmp_path / 'export'}, where {len(VIEWS) + len(INTERESTS) - 1} bytes are free; "
        "nothing was downloaded (free space there, or give the generator a larger disk)"
    )
    assert asked == [tmp_path / "export"]
    assert list((tmp_path / "export").iterdir()) == []


def test_an_export_that_just_fits_the_free_disk_is_downloaded(s3, tmp_path):
    put(s3, "exports/user_interests.csv")
    put(s3, "exports/user_course_views.csv", VIEWS)

    found = fetch_export(
        f"s3://{BUCKET}/exports/",
        tmp_path / "export",
        connect_s3=lambda: s3,
        disk_usage=disk_with(len(VIEWS) + len(INTERESTS)),
    )

    assert sorted(p.name for p in found.iterdir()) == [
        "user_course_views.csv",
        "user_interests.csv",
    ]


class DiskFillsUp:
    """An S3 client whose downloads fail as on a disk that filled up after the check."""

    def __init__(self, s3) -> None:
        self.s3 = s3

    def __getattr__(self, name: str):
        return getattr(self.s3, name)

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", filename)


def test_a_disk_that_fills_up_during_the_download_is_an_error_naming_the_object(s3, tmp_path):
    put(s3, "exports/user_interests.csv")

    with pytest.raises(TableError) as refused:
        fetch(DiskFillsUp(s3), f"s3://{BUCKET}/exports/", tmp_path)

    assert str(refused.value).startswith(
        f"s3://{BUCKET}/exports/user_interests.csv: cannot be saved to "
        f"{tmp_path / 'user_interests.csv'}: [Errno {errno.ENOSPC}] No space left on device"
    )


def test_an_s3_export_read_in_place_is_named_by_its_objects_sizes_and_etags(s3):
    put(s3, "exports/user_interests.csv")
    put(s3, "exports/user_course_views.csv", VIEWS)
    put(s3, "exports/notes.txt", b"not an export file")
    put(s3, "exports/old/user_interests.csv", b"another export")
    first = s3_fingerprint(f"s3://{BUCKET}/exports/", s3)
    assert sorted(first["files"]) == ["user_course_views.csv", "user_interests.csv"]
    assert first["files"]["user_interests.csv"]["bytes"] == len(INTERESTS)
    assert first["of"] == "S3 ETags"
    assert s3_fingerprint(f"s3://{BUCKET}/exports/", s3) == first  # the same objects, the same id
    put(s3, "exports/user_interests.csv", INTERESTS + b"3,java,2017-06-29\n")
    assert s3_fingerprint(f"s3://{BUCKET}/exports/", s3)["id"] != first["id"]


def test_an_unreachable_s3_cannot_be_fingerprinted_and_says_so():
    with pytest.raises(TableError, match=rf"s3://{BUCKET}/x: S3 cannot be reached"):
        s3_fingerprint(f"s3://{BUCKET}/x", unreachable_s3())
