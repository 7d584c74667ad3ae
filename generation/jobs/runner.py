"""Running one job to its end: provider call, events, images, cost.

Async end to end: a waiting job costs a coroutine, not a thread. Safe to run
again at any point: a job holding a provider request id re-attaches instead of
submitting, and finalization creates each image row once and settles once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError
from django.db.models import Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from brenia.logs import request_id_var
from brenia.retries import Backoff
from brenia.safe_http import SafeClient
from brenia.worker import drop_broken_connection
from generation.jobs import metrics as job_metrics
from generation.jobs.events import anotify_job_update, apublish
from generation.jobs.lifecycle import StoredImage, job_finish
from generation.jobs.results import check_image, fetch_image_bytes, store_image
from generation.models import (
    ACTIVE_STATUSES,
    AIModel,
    AttemptOutcome,
    IllegalTransition,
    Image,
    Job,
    JobAttempt,
    JobStatus,
    RoutedBy,
)
from generation.providers import get_provider
from generation.providers.base import (
    MalformedResponse,
    PermanentProviderError,
    Provider,
    ProviderError,
    ProviderResult,
    Queued,
    Running,
    TransientProviderError,
    Update,
)
from generation.providers.hosts import trusted_result_hosts
from generation.routing.breaker import BreakerOpen, breaker_for
from generation.routing.fallback import error_kind, fallback_choose, falls_back

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Log and progress events of one job go out at most this often; what arrives meanwhile
# is merged into the next one. The first move to in_progress and the job's end are
# never held back.
PROGRESS_EVENT_INTERVAL = 1.0

# What losing the database looks like (a restart, a dropped connection, a full pool):
# the run stops where it is and starts again from the job's row once the database
# answers, instead of ending the job. Waits follow brenia.retries; about 5 minutes
# in all before the task gives up (and the worker's recovery puts the job back).
DATABASE_LOST = (OperationalError, InterfaceError)
DATABASE_RESUME = Backoff(attempts=12, base=0.5, cap=30.0)


def off_thread(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``fn`` (one self-contained unit of database work) run on any free thread with a
    pooled connection, instead of queueing behind every other job's work on the one
    shared database thread. Only for what must not wait: moving all of the runner's
    work off that thread started 1,000 jobs a little faster but cost 17 ms more CPU
    per job (bench/inflight.py, 50 at once on PostgreSQL: 81 ms against 64)."""
    return database_sync_to_async(fn, thread_sensitive=False)


class MonotonicClock:
    """What the runner reads the time from to space a job's progress events (tests
    give a JobRun a clock they move themselves)."""

    def now(self) -> float:
        return time.monotonic()

    async def wait(self, seconds: float, wake: asyncio.Event) -> None:
        """Return after ``seconds``, or as soon as ``wake`` is set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=seconds)


# Provider attempts per job, and the backoff between them (brenia/retries.py: the first
# retry after 1-2 s, then 2-3 s). Read at each run, so tests can shorten them.
MAX_ATTEMPTS = 3
BACKOFF_BASE = 1.0
BACKOFF_CAP = 20.0


def worth_retrying(exc: Exception) -> bool:
    """A transient provider error is tried again, unless the provider's own client has
    already retried that very failure to its limit (fal: RetriedByFalClient): one
    failure is retried by one layer, so the two never multiply."""
    return (isinstance(exc, TransientProviderError)
            and not exc.retried_by_client
            # An open breaker refuses every call to its endpoint for a while: the next
            # model of the fallback chain is worth trying, the same endpoint is not.
            and not isinstance(exc, BreakerOpen))


_download_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SafeClient] = (
    weakref.WeakKeyDictionary()
)


def download_client() -> SafeClient:
    """The client result images are fetched with: the configured provider hosts are
    trusted, every other address is checked as it is connected to. One per event loop:
    building one per job costs ~25 ms of CPU (TLS setup)."""
    loop = asyncio.get_running_loop()
    client = _download_clients.get(loop)
    if client is None:
        client = _download_clients[loop] = SafeClient(trusted_hosts=trusted_result_hosts,
                                                      timeout=60.0)
    return client


_durations: dict[int, tuple[float, float | None]] = {}
DURATION_SAMPLE = 50
DURATION_TTL = 30.0


async def median_run_seconds(model_id: int) -> float | None:
    """Median seconds from start to finish of the model's recent jobs (cached briefly)."""
    now = time.monotonic()
    cached = _durations.get(model_id)
    if cached and now - cached[0] < DURATION_TTL:
        return cached[1]
    spans = [
        (finished - started).total_seconds()  # type: ignore[operator]  # filtered non-null
        async for started, finished in Job.objects.filter(
            model_id=model_id, status=JobStatus.COMPLETED, started_at__isnull=False,
            finished_at__isnull=False).order_by("-finished_at")
        .values_list("started_at", "finished_at")[:DURATION_SAMPLE]
    ]
    median = statistics.median(spans) if spans else None
    _durations[model_id] = (now, median)
    return median


async def eta_seconds(model_id: int, position: int) -> int | None:
    """Requests ahead, plus this one, times the model's recent median run time."""
    median = await median_run_seconds(model_id)
    return None if median is None else max(1, round((position + 1) * median))


async def run_job(job_id: Any) -> None:
    """Drive a job to a terminal state; raises only on cancellation, or when the
    database stays unreachable past DATABASE_RESUME's tries."""
    lost: DatabaseLost | None = None
    failures = 0
    while True:
        try:
            await _run_once(job_id, lost)
            return
        except DatabaseLost as exc:
            failures += 1
            if failures >= DATABASE_RESUME.attempts:
                raise
            lost = exc
            delay = DATABASE_RESUME.delay(failures=failures)
            logger.warning("job %s: lost the database (%r); resuming in %.1fs", job_id,
                           exc.__cause__, delay)
            await asyncio.sleep(delay)


class DatabaseLost(Exception):
    """A run stopped because the database went away. ``remote`` is the model and
    provider request id it was following (the row may not have learnt the id: the
    next run re-attaches instead of paying twice); ``attempt_id`` its running attempt."""

    def __init__(self, remote: tuple[int, str] | None, attempt_id: int | None) -> None:
        super().__init__("the database went away")
        self.remote = remote
        self.attempt_id = attempt_id


async def _run_once(job_id: Any, lost: DatabaseLost | None) -> None:
    run: JobRun | None = None
    try:
        if lost is not None:
            await drop_broken_connection()
        try:
            job = await Job.objects.select_related("model").aget(pk=job_id)
        except Job.DoesNotExist:
            logger.warning("job %s vanished before it ran", job_id)
            return
        if lost is not None and lost.attempt_id is not None:
            await JobAttempt.objects.filter(
                pk=lost.attempt_id, outcome=AttemptOutcome.RUNNING).aupdate(
                outcome=AttemptOutcome.INTERRUPTED, ended_at=timezone.now(),
                reason="the database went away; the job resumed")
        if job.is_terminal:
            return
        token = request_id_var.set(job.request_id or "-")
        try:
            run = JobRun(job)
            remote = lost.remote if lost is not None else None
            if remote is not None and not job.provider_request_id \
                    and remote[0] == job.model_id:
                await run._on_submitted(remote[1])
            with job_metrics.in_flight():
                await run.run()
        finally:
            request_id_var.reset(token)
    except DATABASE_LOST as exc:
        if run is None:  # lost again before this run began: what the last one knew holds
            raise DatabaseLost(lost.remote if lost else None,
                               lost.attempt_id if lost else None) from exc
        attempt = run.attempt
        raise DatabaseLost(
            (run.job.model_id, run.remote_id) if run.remote_id and run.job.model_id else None,
            attempt.pk if attempt is not None and attempt.outcome == AttemptOutcome.RUNNING
            else None) from exc


def attempt_start(*, job: Job, provider: str, model: AIModel) -> JobAttempt:
    """Record a new attempt, numbered one past the job's last, in one INSERT … SELECT."""
    last = JobAttempt.objects.filter(job_id=job.pk).order_by("-number").values("number")[:1]
    attempt = JobAttempt(job=job, number=Coalesce(Subquery(last), 0) + 1, provider=provider,
                         endpoint_id=model.endpoint_id, model_slug=model.slug,
                         provider_request_id=job.provider_request_id)
    meta = JobAttempt._meta
    number = meta.get_field("number")
    assert meta.pk is not None
    fields = [field for field in meta.local_concrete_fields if not field.primary_key]
    db = JobAttempt.objects.db
    rows = JobAttempt.objects.using(db)._insert(  # type: ignore[attr-defined]
        [attempt], fields=fields, returning_fields=[meta.pk, number], using=db)
    attempt.pk, attempt.number = rows[0]
    attempt._state.adding = False
    attempt._state.db = db
    return attempt


class JobRun:
    clock: MonotonicClock = MonotonicClock()
    progress_interval: float = PROGRESS_EVENT_INTERVAL

    def __init__(self, job: Job) -> None:
        self.job = job
        self.provider: Provider = get_provider(job.called_model)
        self.attempt: JobAttempt | None = None
        self.last_position: int | None = None
        # Status updates wait here for ``_apply_updates``, so that writing and sending
        # them never holds up the provider's next poll.
        self.updates: list[Update] = []
        self.pump: asyncio.Task[None] | None = None
        # Log lines and progress held back until ``progress_due`` (clock time), and
        # what wakes the pump early to write them (the attempt is settling).
        self.held: Running | None = None
        self.progress_due = 0.0
        self.flushing = False
        self.wake = asyncio.Event()
        # The provider request this run submitted or re-attached to.
        self.remote_id = job.provider_request_id
        # Models this run has called, so a fallback chain never loops.
        self.tried: set[int] = {job.called_model.pk}

    async def run(self) -> None:
        # The cancellation may land anywhere, even inside one of the handlers below
        # (a user's cancel races the runner noticing it): handle it once, outside.
        try:
            await self._run()
        except asyncio.CancelledError:
            await self._stop_updates()
            await self._on_cancelled()
            raise

    async def _run(self) -> None:
        job = self.job
        try:
            while True:
                try:
                    result = await self._run_on_model()
                    break
                except (TransientProviderError, TimeoutError) as exc:
                    # The model's own tries are spent: its fallback, by error class.
                    if not await self._fall_back(exc):
                        raise
            # Outside the retry loop: a failure while finalizing never resubmits. The
            # attempt's end is written with the job's (or, if finalizing fails, alone).
            await self._finalize(result, attempt=self._mark_attempt(AttemptOutcome.SUCCEEDED))
        except IllegalTransition:
            # Someone else moved the job (a cancel, a webhook that finalized it).
            await self._stop_if_cancelled()
        except TimeoutError:
            await self._end_attempt(AttemptOutcome.TRANSIENT_ERROR, None)
            # Stop the remote work too, so it is not billed for nothing.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.provider.cancel(job=job), timeout=10)
            await self._finish(JobStatus.FAILED, "timeout",
                               "The provider did not finish in time.")
        except MalformedResponse as exc:
            await self._end_attempt(AttemptOutcome.PERMANENT_ERROR, exc)
            await self._finish(JobStatus.ERRORED, exc.code, exc.message,
                               traceback.format_exc())
        except ProviderError as exc:
            if self.attempt is not None and self.attempt.outcome == AttemptOutcome.RUNNING:
                await self._end_attempt(AttemptOutcome.PERMANENT_ERROR, exc)
            status = JobStatus.FAILED if exc.permanent else JobStatus.ERRORED
            await self._finish(status, exc.code, exc.message,
                               "" if exc.permanent else traceback.format_exc())
        except DATABASE_LOST:
            raise  # run_job starts the job again once the database answers
        except Exception as exc:
            logger.exception("job %s errored", job.pk)
            await self._end_attempt(AttemptOutcome.PERMANENT_ERROR, exc)
            await self._finish(JobStatus.ERRORED, "internal_error",
                               "Brenia hit an unexpected error; an admin can see the details.",
                               traceback.format_exc())

    async def _run_on_model(self) -> ProviderResult:
        """The job's current model, tried up to MAX_ATTEMPTS times on transient errors."""
        job = self.job
        backoff = Backoff(attempts=MAX_ATTEMPTS, base=BACKOFF_BASE, cap=BACKOFF_CAP)
        # stamina sleeps between tries and lets the last error through once the
        # attempts are spent, or at once when worth_retrying says no.
        async for retry in backoff.retrying(on=worth_retrying):
            with retry:
                try:
                    return await self._attempt(retry.num)
                except TransientProviderError as exc:
                    again = worth_retrying(exc) and retry.num < backoff.attempts
                    await self._end_attempt(AttemptOutcome.TRANSIENT_ERROR, exc,
                                            reason="retried on the same model" if again
                                            else "")
                    if again:
                        logger.info("job %s: transient error %s, retrying", job.pk,
                                    exc.code)
                        if exc.code != "provider_unreachable":
                            # The remote request itself failed: the next attempt
                            # submits anew.
                            await self._forget_request()
                    raise
        raise AssertionError("unreachable: stamina returns or raises")  # pragma: no cover

    async def _fall_back(self, exc: BaseException) -> bool:
        """Move the job to the next model of its fallback chain if ``exc``'s class
        allows it; False (the job ends with ``exc``) if not or if none is left.

        Only what ran is charged: the job's model, arguments and remote request become
        the fallback's, so the cost it settles is the fallback's own.
        """
        job = self.job
        kind = error_kind(exc)
        timed_out = isinstance(exc, TimeoutError)
        if timed_out:
            await self._end_attempt(AttemptOutcome.TRANSIENT_ERROR, None)
        if not falls_back(kind):
            return False
        choice = await database_sync_to_async(fallback_choose)(job=job, tried=self.tried)
        skipped = "; ".join(choice.skipped)
        if choice.model is None:
            await self._note_attempt(f"no fallback left ({kind})"
                                     + (f": {skipped}" if skipped else ""))
            return False
        if timed_out:
            # Stop the remote work too, so it is not billed for nothing.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.provider.cancel(job=job), timeout=10)
        model = choice.model
        fields: dict[str, Any] = {
            "model": model, "model_slug": model.slug, "model_version": model.version_label,
            "provider_arguments": choice.arguments, "provider_request_id": "",
            "routed_by": RoutedBy.FALLBACK}
        updated = await Job.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).aupdate(
            updated_at=timezone.now(), **fields)
        if not updated:
            raise IllegalTransition(f"job {job.pk} ended before its fallback")
        for name, value in fields.items():
            setattr(job, name, value)
        await self._note_attempt(f"fell back to {model.slug} ({kind})"
                                 + (f"; skipped {skipped}" if skipped else ""))
        logger.info("job %s: %s on %s, falling back to %s", job.pk, kind,
                    self.provider.name, model.slug)
        self.provider = get_provider(model)
        self.tried.add(model.pk)
        self.remote_id = ""
        self.last_position = None
        return True

    async def _note_attempt(self, reason: str) -> None:
        """Say on the last attempt what the runner did after it, and why."""
        if self.attempt is not None:
            self.attempt.reason = reason[:300]
            await self.attempt.asave(update_fields=["reason"])

    async def complete_with(self, result: ProviderResult) -> None:
        """Finish the job from a result obtained elsewhere (a provider's webhook)."""
        try:
            await self._finalize(result)
        except IllegalTransition:
            return  # the polling runner finished first
        except ProviderError as exc:
            await self.fail(exc)

    async def fail(self, exc: ProviderError) -> None:
        status = JobStatus.FAILED if exc.permanent and not isinstance(
            exc, MalformedResponse) else JobStatus.ERRORED
        await self._finish(status, exc.code, exc.message)

    async def _attempt(self, number: int) -> ProviderResult:
        job = self.job
        model = job.called_model
        self.attempt = await database_sync_to_async(attempt_start)(
            job=job, provider=self.provider.name, model=model)
        breaker = breaker_for(model)
        if not job.provider_request_id:
            # Raises BreakerOpen while the endpoint's breaker is open: nothing is sent.
            # A re-attach always goes: that request is submitted and paid for.
            await breaker.acheck()
        try:
            async with asyncio.timeout(settings.BRENIA_JOB_TIMEOUT):
                try:
                    result = await self.provider.execute(
                        job=job, on_submitted=self._on_submitted, on_update=self._on_update)
                except Exception:
                    with contextlib.suppress(Exception):  # the provider's error is the news
                        await self._settle_updates()
                    raise
                except BaseException:
                    await self._stop_updates()
                    raise
                await self._settle_updates()
        except (TransientProviderError, TimeoutError):
            await self._breaker_record(breaker.arecord_failure)
            raise
        except PermanentProviderError:
            # A refusal (bad input, safety) is an answer from a working endpoint.
            await self._breaker_record(breaker.arecord_success)
            raise
        await self._breaker_record(breaker.arecord_success)
        return result

    async def _breaker_record(self, record: Any) -> None:
        """A breaker store that cannot be reached must not fail the job it reports on."""
        try:
            await record()
        except Exception:
            logger.warning("job %s: could not update the circuit breaker", self.job.pk,
                           exc_info=True)

    async def _end_attempt(self, outcome: str, exc: BaseException | None = None, *,
                           reason: str = "") -> None:
        attempt = self._mark_attempt(outcome, exc, reason=reason)
        if attempt is not None:
            await attempt.asave()

    def _mark_attempt(self, outcome: str, exc: BaseException | None = None, *,
                      reason: str = "") -> JobAttempt | None:
        """End the running attempt in memory (the caller saves it); None if none runs."""
        attempt = self.attempt
        if attempt is None or attempt.outcome != AttemptOutcome.RUNNING:
            return None
        if outcome in (AttemptOutcome.TRANSIENT_ERROR, AttemptOutcome.PERMANENT_ERROR):
            kind = error_kind(exc)
            attempt.error_kind = kind
            if not reason and not falls_back(kind):
                reason = f"{kind}: never retried or routed around"
            attempt.reason = reason[:300]
        if outcome in (AttemptOutcome.TRANSIENT_ERROR, AttemptOutcome.PERMANENT_ERROR):
            job_metrics.provider_error(provider=self.provider.name, error=exc)
        attempt.outcome = outcome
        attempt.ended_at = timezone.now()
        attempt.provider_request_id = self.job.provider_request_id
        if exc is not None:
            attempt.error_class = f"{exc.__class__.__module__}.{exc.__class__.__qualname__}"
            attempt.error_message = str(exc)[:2000]
        return attempt

    async def _forget_request(self) -> None:
        await Job.objects.filter(pk=self.job.pk).aupdate(provider_request_id="")
        self.job.provider_request_id = ""
        self.remote_id = ""

    async def _on_submitted(self, request_id: str) -> None:
        """Commit the remote id before any waiting: a restart re-attaches to it.

        Until it is committed, a killed worker's job would be submitted again (fal
        has no idempotency key), so it does not queue behind every other job's
        writes on the shared database thread: it takes a thread (and a pooled
        connection) of its own. bench/drills.py kill measures the lag.
        """
        self.remote_id = request_id
        await off_thread(self._submitted)(request_id)

    def _submitted(self, request_id: str) -> None:
        """The job's and then the attempt's remote id, in one trip to the database
        thread (the attempt's copy is for admins: the job's row is what a restart
        reads, so the two need no transaction of their own)."""
        job = self.job
        if job.status == JobStatus.QUEUED:
            job.transition(JobStatus.SUBMITTED, provider_request_id=request_id,
                           submitted_at=timezone.now())
        else:
            updated = Job.objects.filter(
                pk=job.pk, status__in=(JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)
            ).update(provider_request_id=request_id)
            if not updated:
                raise IllegalTransition(f"job {job.pk} left the running states")
            job.provider_request_id = request_id
        if self.attempt is not None:
            self.attempt.provider_request_id = request_id
            self.attempt.save(update_fields=["provider_request_id"])

    async def _on_update(self, update: Update) -> None:
        """The provider's callback at each poll: queue the update and return at once."""
        pump = self.pump
        if pump is not None and pump.done():
            self.pump = None
            await pump  # raises what applying an earlier update raised (the job moved on)
        self.updates.append(update)
        if self.pump is None:
            self.pump = asyncio.create_task(self._apply_updates())

    async def _apply_updates(self) -> None:
        while True:
            while self.updates:
                update: Update | None = self.updates.pop(0)
                # Log lines that piled up while the database was busy go out as one event.
                while isinstance(update, Running) and self.updates and isinstance(
                        later := self.updates[0], Running):
                    self.updates.pop(0)
                    update = _merged(update, later)
                update = self._hold_back(update)
                if update is not None:
                    await self._apply_update(update)
            if self.held is None:
                return
            # Log lines wait for their turn, unless the attempt is settling.
            wait = self.progress_due - self.clock.now()
            if wait > 0 and not self.flushing:
                self.wake.clear()
                await self.clock.wait(wait, self.wake)
            if not self.updates:  # else they join the held lines in the next pass
                held, self.held = self.held, None
                await self._apply_update(held)

    def _hold_back(self, update: Update | None) -> Update | None:
        """The update to write now, or None if it waits (merged into ``held``) because
        the job's last progress event is less than ``progress_interval`` old."""
        if not isinstance(update, Running) or self.job.status != JobStatus.IN_PROGRESS:
            return update  # the first move to in_progress is never held back
        if self.held is not None:
            update, self.held = _merged(self.held, update), None
        if not self.flushing and self.clock.now() < self.progress_due:
            self.held = update
            return None
        return update

    async def _settle_updates(self) -> None:
        """Wait until every queued update is written, held log lines too; raises what
        writing one raised."""
        pump, self.pump = self.pump, None
        if pump is not None:
            self.flushing = True
            self.wake.set()
            try:
                await pump
            finally:
                self.flushing = False

    async def _stop_updates(self) -> None:
        pump, self.pump = self.pump, None
        self.updates.clear()
        self.held = None
        if pump is not None and not pump.done():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _apply_update(self, update: Update) -> None:
        job = self.job
        if isinstance(update, Queued):
            if update.position == self.last_position and job.status != JobStatus.QUEUED:
                return
            self.last_position = update.position
            if job.status == JobStatus.IN_PROGRESS:
                return  # a retried remote attempt; the job does not move backwards
            eta = await eta_seconds(job.called_model.pk, update.position)
            await anotify_job_update(
                job=job, query=Job.objects.filter(pk=job.pk, status=JobStatus.SUBMITTED),
                values={"queue_position": update.position}, type="queued", payload={
                    "status": job.status, "position": update.position, "eta_seconds": eta})
        elif isinstance(update, Running):
            first = job.status != JobStatus.IN_PROGRESS
            if not first and not update.new_logs and update.progress is None:
                return
            fields: dict[str, Any] = {"queue_position": None}
            if update.progress is not None:
                fields["progress"] = update.progress
            if first:
                fields["started_at"] = timezone.now()
            query, values = job._transition_update(JobStatus.IN_PROGRESS, fields)
            progress = update.progress if update.progress is not None else job.progress
            await anotify_job_update(job=job, query=query, values=values, type="in_progress",
                                     payload={"status": JobStatus.IN_PROGRESS,
                                              "progress": progress, "logs": update.new_logs})
            self.progress_due = self.clock.now() + self.progress_interval

    async def _finalize(self, result: ProviderResult, *, attempt: JobAttempt | None = None
                        ) -> None:
        """Store the result's images and complete the job; ``attempt`` (ended in memory)
        is saved in the completing transaction, or on its own if completing fails."""
        try:
            await self._complete(result, attempt)
        except BaseException:
            if attempt is not None:
                await attempt.asave()
            raise

    async def _complete(self, result: ProviderResult, attempt: JobAttempt | None) -> None:
        job = self.job
        stored: list[StoredImage] = []
        http = download_client()
        for output in result.images:
            data = await fetch_image_bytes(output, client=http)
            image = await asyncio.to_thread(check_image, data)
            name = await store_image(image)
            stored.append(StoredImage(name=name, sha256=image.sha256, width=image.width,
                                      height=image.height, format=image.format,
                                      bytes=len(image.data), seed=output.seed))
        if not stored and not result.text:
            raise PermanentProviderError("The model produced no output.", code="no_output")
        cost = self._settle_cost(result, stored)
        produced = {"text": result.text, "usage": result.usage} if result.text or result.usage \
            else {}
        try:
            event = await database_sync_to_async(job_finish)(
                job=job, status=JobStatus.COMPLETED, cost=cost, output=produced, images=stored,
                publish_on_commit=False, attempt=attempt)
        except IllegalTransition:
            await sync_to_async(_discard_unreferenced)([image.name for image in stored])
            raise
        await apublish(event)

    def _settle_cost(self, result: ProviderResult, images: list[StoredImage]) -> Any:
        model = self.job.called_model
        if result.billed_tokens is not None:
            return self.provider.price_tokens(model, result.billed_tokens)
        price = getattr(self.provider, "price", None)
        if price is not None:
            return price(model, [(image.width, image.height) for image in images])
        return model.price_per_image * len(images)

    async def _finish(self, status: str, code: str, message: str, trace: str = "") -> None:
        try:
            event = await database_sync_to_async(job_finish)(
                job=self.job, status=status, error_code=code, error_message=message,
                error_traceback=trace, publish_on_commit=False)
        except IllegalTransition:  # someone else ended it first
            return
        await apublish(event)

    async def _on_cancelled(self) -> None:
        """The task was cancelled: by a user's cancel or by shutdown.

        A user's cancel tells the provider itself (``cancel_remote``); a shutdown
        leaves the remote request running, for the next run to re-attach to.
        """
        await self._end_attempt(AttemptOutcome.INTERRUPTED)

    async def _stop_if_cancelled(self) -> None:
        await self._end_attempt(AttemptOutcome.INTERRUPTED)
        remote_id = self.remote_id
        await self.job.arefresh_from_db()
        if self.job.status == JobStatus.CANCELLED and remote_id \
                and remote_id != self.job.provider_request_id:
            # Submitted just as the user cancelled: the row never learnt this request,
            # so nothing else will cancel it.
            self.job.provider_request_id = remote_id
            await asyncio.shield(self.provider.cancel(job=self.job))


def _merged(first: Running, later: Running) -> Running:
    """Two progress updates as one: every log line in order, the latest progress."""
    return Running(new_logs=[*first.new_logs, *later.new_logs],
                   progress=later.progress if later.progress is not None else first.progress)


def _discard_unreferenced(names: list[str]) -> None:
    """Files saved for a job that did not complete, unless another image uses them."""
    for name in names:
        if not Image.objects.filter(file=name).exists():
            default_storage.delete(name)
