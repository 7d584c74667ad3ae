"""Applying a verified fal completion webhook to its job.

The HTTP handler only verifies the signature and hands the event to the background
runner (``generation.jobs.tasks``), so fal gets its answer at once; downloading and
storing the images happens here. A job already final is left alone, so fal's
repeated deliveries change nothing.
"""

from __future__ import annotations

from typing import Any

from brenia.logs import request_id_var
from generation.jobs.runner import JobRun
from generation.models import Job
from generation.providers.base import PermanentProviderError, ProviderError
from generation.providers.fal import FalProvider, detail_message


async def fal_webhook_apply(*, event: dict[str, Any]) -> str:
    """Finish the job the event names; returns what happened (for logs and tests)."""
    job = await Job.objects.select_related("model").filter(
        provider_request_id=str(event.get("request_id", ""))).afirst()
    if job is None:
        return "unknown_request"
    if job.is_terminal:
        return "already_final"
    # Logged under the request id of the call that made the job, like its runner.
    token = request_id_var.set(job.request_id or "-")
    try:
        return await _apply(job, event)
    finally:
        request_id_var.reset(token)


async def _apply(job: Job, event: dict[str, Any]) -> str:
    run = JobRun(job)
    if event.get("status") == "OK":
        try:
            result = FalProvider().parse_output(event.get("payload"))
        except ProviderError as exc:
            await run.fail(exc)
            return "failed"
        await run.complete_with(result)
        return "completed"
    payload = event.get("payload")
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, list) and detail:
        code = "content_policy_violation" if "content_policy_violation" in str(detail) \
            else "invalid_input"
        await run.fail(PermanentProviderError(detail_message(detail) or str(event.get("error")),
                                              code=code))
        return "failed"
    # A transient failure: the runner that owns the job retries it.
    return "left_to_runner"
