"""`manage.py emulate`: what `make run` starts when no provider keys are set."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys

import fal_client
import pytest
from google import genai
from google.genai import types

from generation.providers.fal_transport import FalAsyncClient
from tests.conftest import ROOT


def test_emulate_serves_both_providers_for_the_stock_sdks() -> None:
    faults = json.dumps({"fal": {"fal-ai/flux/dev": {"sequence": ["content_policy"]}}})
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "emulate", "--fal-port", "0", "--gemini-port", "0",
         "--latency", "instant", "--faults", faults],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())["emulators"]
        assert set(urls) == {"fal", "gemini"}

        async def use_fal() -> None:
            client = FalAsyncClient(key="k:s", queue_url=urls["fal"])
            ok = await client.subscribe("fal-ai/flux/schnell", {"prompt": "hello"})
            assert ok["images"][0]["url"].startswith(urls["fal"])
            with pytest.raises(fal_client.client.FalClientHTTPError) as refused:
                await client.subscribe("fal-ai/flux/dev", {"prompt": "scripted fault"})
            assert refused.value.status_code == 422
            await client.aclose()

        asyncio.run(use_fal())
        gemini = genai.Client(api_key="k", http_options=types.HttpOptions(
            base_url=urls["gemini"]))
        answer = gemini.models.generate_content(model="gemini-2.5-flash", contents="Hi")
        assert answer.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0


@pytest.mark.parametrize("faults", ["{not json", '{"openai": {}}'])
def test_emulate_rejects_a_bad_fault_profile_clearly(faults: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", "emulate", "--faults", faults],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--faults" in result.stderr
