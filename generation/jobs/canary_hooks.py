"""The canary guard's two triggers: a canary job ends, a canary image is rated.

The guard itself (``generation.routing.canary``) reads and decides; this module only
calls it once the triggering change has committed, so it counts what really happened.
Registered in ``GenerationConfig.ready()``.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction

from generation.jobs.lifecycle import JobFinished, job_finished_hook
from generation.models import JobStatus
from generation.routing.canary import canary_guard


@job_finished_hook
def judge_canary_on_finish(finished: JobFinished) -> None:
    canary_id = finished.job.canary_id
    if canary_id is not None and finished.status != JobStatus.CANCELLED:
        transaction.on_commit(partial(canary_guard, canary_id))
