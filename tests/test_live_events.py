"""Events from whichever process runs a job reach WebSocket clients of the web process.

In the scale-out profile the job runs in a separate procrastinate worker process
and its events travel through Redis to daphne; in the embedded profile they stay
inside daphne. The client only ever talks to daphne.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import httpx
import pytest

from tests.conftest import SCALEOUT, LiveBrenia, Persona

pytestmark = [pytest.mark.e2e]


async def follow(url: str, key: str, job_id: str, *, after: int = 0) -> list[dict[str, Any]]:
    """Events of one job until it is known completed: by an event, or by a snapshot
    that follows the replayed events of a catch-up."""
    ws_url = url.replace("http://", "ws://") + f"/ws/jobs/?job={job_id}&after={after}"
    events: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(
            ws_url, headers={"Authorization": f"Bearer {key}",
                             "Origin": "http://127.0.0.1"}) as ws:
        async with asyncio.timeout(30):
            async for message in ws:
                event = json.loads(message.data)
                events.append(event)
                if event["type"] == "snapshot" and event["job"]["status"] == "completed":
                    break
                if event["type"] == "completed" and not after:
                    break
    return events


def test_worker_events_reach_the_web_process_websocket(live_brenia: LiveBrenia,
                                                       owner: Persona) -> None:
    if SCALEOUT:
        assert live_brenia.worker() is not None  # the job really runs elsewhere
    client = httpx.Client(base_url=live_brenia.url,
                          headers={"Authorization": f"Bearer {owner.key}"})
    job_id = client.post("/api/images/generate", json={
        "model": "flux-schnell", "inputs": {"prompt": "live events [[fal:slow]]"}}).json()["id"]
    events = asyncio.run(follow(live_brenia.url, owner.key, job_id))
    types = [e["type"] for e in events]
    assert types[0] == "snapshot"
    assert "in_progress" in types and types[-1] == "completed"
    seqs = [e["seq"] for e in events[1:]]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert events[-1]["images"][0]["url"].startswith("/api/images/")

    # A client that reconnects after the end with its last seq still learns the outcome.
    missed = asyncio.run(follow(live_brenia.url, owner.key, job_id, after=seqs[0]))
    assert [e["seq"] for e in missed if e["type"] != "snapshot"] == seqs[1:]
    assert missed[-1]["type"] == "snapshot" and missed[-1]["job"]["status"] == "completed"
