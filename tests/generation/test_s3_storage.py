"""Results in S3 through django-storages, against an S3-compatible server on loopback."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import boto3
import httpx
import pytest
from channels.db import database_sync_to_async
from django.core.files.storage import default_storage

from generation.emulators.server import EmulatorThread
from generation.jobs.runner import run_job
from generation.models import Image, Job, JobStatus
from tests.conftest import S3_CREDENTIALS, ApiClient, Persona
from tests.generation.factories import make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)



@pytest.fixture
def s3_storage(s3_server: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = f"brenia-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(
        Bucket=bucket)
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket, "endpoint_url": s3_server,
                    "region_name": "us-east-1", "querystring_auth": True,
                    "file_overwrite": True, "default_acl": None}}}
    return bucket


async def test_finished_images_are_stored_in_s3_under_their_hash(
        owner: Persona, fal_emulator: EmulatorThread, s3_storage: str, s3_server: str) -> None:
    job = await database_sync_to_async(make_prepared_job)(
        owner, inputs={"prompt": f"s3 {uuid.uuid4()}", "output_format": "png"})
    await run_job(job.pk)
    job = await Job.objects.aget(pk=job.pk)
    assert job.status == JobStatus.COMPLETED, job.error_message
    image = await Image.objects.aget(job=job)

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    stored = s3.get_object(Bucket=s3_storage, Key=image.file.name)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == image.sha256
    assert image.file.name.endswith(f"{image.sha256}.png")
    assert await database_sync_to_async(default_storage.exists)(image.file.name)


async def test_download_link_redirects_the_owner_to_a_signed_url(
        owner: Persona, outsider: Persona, fal_emulator: EmulatorThread,
        s3_storage: str) -> None:
    job = await database_sync_to_async(make_prepared_job)(
        owner, inputs={"prompt": f"s3 link {uuid.uuid4()}"})
    await run_job(job.pk)
    image = await Image.objects.aget(job__pk=job.pk)
    url = f"/api/images/{image.id}/content"

    response = await database_sync_to_async(ApiClient(owner.key).get_json)(url)
    assert response.status_code == 302
    signed = response["Location"]
    assert "Signature=" in signed or "X-Amz-Signature=" in signed
    fetched = httpx.get(signed)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == image.sha256
    other = await database_sync_to_async(ApiClient(outsider.key).get_json)(url)
    assert other.status_code == 404
