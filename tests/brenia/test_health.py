"""/readyz checks storage with a read, and not on every probe: it is unauthenticated."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.test import Client

from brenia import health
from tests.conftest import S3_CREDENTIALS

pytestmark = pytest.mark.django_db

FILESYSTEM = {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def tree(root: Path) -> set[str]:
    """Every file and directory under ``root``: a probe's write leaves its folder behind."""
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "media"
    (root / "images" / "ab").mkdir(parents=True)
    (root / "images" / "ab" / "earlier.png").write_bytes(b"\x89PNG")
    settings.MEDIA_ROOT = root
    # A new storage instance, so no earlier test's cached answer serves this one.
    settings.STORAGES = {**settings.STORAGES, "default": FILESYSTEM}
    return root


def test_readyz_answers_ok_and_writes_nothing_to_the_media_root(client: Client,
                                                                media: Path) -> None:
    before = tree(media)
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["storage"] == {"ok": True}
    assert tree(media) == before


def test_readyz_is_ready_before_the_first_image_makes_the_media_root(
        client: Client, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "not-yet"
    settings.STORAGES = {**settings.STORAGES, "default": FILESYSTEM}
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert not (tmp_path / "not-yet").exists()


# --- S3 -------------------------------------------------------------------------------------

@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any, s3_server: str, settings: Any) -> str:
    """A versioned bucket: an object written and deleted again still leaves versions."""
    name = f"brenia-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": name, "endpoint_url": s3_server,
                    "region_name": "us-east-1", "default_acl": None}}}
    return name


def test_readyz_on_s3_puts_no_object(client: Client, s3: Any, bucket: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["storage"] == {"ok": True}
    history = s3.list_object_versions(Bucket=bucket)
    assert history.get("Versions", []) == [] and history.get("DeleteMarkers", []) == []


def test_readyz_reuses_the_storage_answer_for_an_interval(
        client: Client, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/readyz").status_code == 200
    s3.delete_bucket(Bucket=bucket)
    # Still ready: within the interval no probe reaches S3 to find the bucket gone.
    assert client.get("/readyz").status_code == 200
    monkeypatch.setattr(health, "STORAGE_CHECK_INTERVAL", 0.0)
    gone = client.get("/readyz")
    assert gone.status_code == 503
    assert gone.json()["checks"]["storage"] == {"ok": False, "error": "NoSuchBucket"}
