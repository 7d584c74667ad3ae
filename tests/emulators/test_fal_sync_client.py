"""The stock SyncClient against the emulator: same protocol, blocking calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fal_client import Completed, FalClientHTTPError, InProgress, Queued

from tests.emulators.fal_support import (  # noqa: F401  (fixtures)
    RunningFal,
    SyncFalClient,
    fal_factory_fixture,
    fal_fixture,
)

SCHNELL = "fal-ai/flux/schnell"
BODY = {"prompt": "a quiet street", "image_size": "square", "seed": 11}


@pytest.fixture
def client(fal: RunningFal) -> Iterator[SyncFalClient]:
    sync = fal.sync_client()
    yield sync
    sync._client.close()


def test_subscribe_reports_progress(fal_factory: Callable[..., RunningFal]) -> None:
    emulator = fal_factory(latency="fast")
    client = emulator.sync_client()
    updates: list[object] = []
    result = client.subscribe(SCHNELL, BODY, with_logs=True, on_queue_update=updates.append)
    assert any(isinstance(u, Queued) for u in updates)
    assert any(isinstance(u, InProgress) and u.logs for u in updates)
    assert isinstance(updates[-1], Completed)
    assert result["seed"] == 11 and result["images"][0]["height"] == 512
    client._client.close()


def test_id_based_status_result_and_cancel(client: SyncFalClient) -> None:
    handle = client.submit("fal-ai/flux/dev", BODY)
    result = client.result("fal-ai/flux/dev", handle.request_id)
    status = client.status("fal-ai/flux/dev", handle.request_id, with_logs=False)
    assert isinstance(status, Completed) and status.logs is None
    assert result["prompt"] == BODY["prompt"]
    with pytest.raises(FalClientHTTPError) as caught:
        client.cancel("fal-ai/flux/dev", handle.request_id)
    assert caught.value.status_code == 400


def test_validation_error_surfaces_on_result(client: SyncFalClient) -> None:
    handle = client.submit(SCHNELL, {"prompt": "x", "guidance_scale": 99})
    with pytest.raises(FalClientHTTPError) as caught:
        handle.get()
    assert caught.value.status_code == 422
    assert caught.value.message[0]["ctx"] == {"le": 20}  # type: ignore[index]


def test_retries_and_hard_errors(fal: RunningFal, client: SyncFalClient) -> None:
    fal.state.set_faults(SCHNELL, {"sequence": ["429", "503_ingress", "ok", "502"]})
    assert client.subscribe(SCHNELL, BODY)["images"]
    with pytest.raises(FalClientHTTPError) as caught:
        client.submit(SCHNELL, BODY)
    assert caught.value.status_code == 502
    assert fal.state.stats()["submit_attempts"]["total"] == 4
    assert fal.state.submit_count() == 1


def test_invalid_key(fal: RunningFal) -> None:
    client = fal.sync_client(key="invalid-key:secret")
    with pytest.raises(FalClientHTTPError) as caught:
        client.submit(SCHNELL, BODY)
    assert caught.value.status_code == 401
    client._client.close()
