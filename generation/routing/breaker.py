"""Circuit breakers per provider endpoint, their state shared by every process.

An endpoint that keeps failing (fal's queue answering 5xx, Gemini's quota spent) should
cost each job one quick "unavailable" rather than a full retry budget of slow failures,
and should be left alone long enough to recover. After ``BRENIA_BREAKER_FAILURES``
transient failures in a row the breaker opens: calls to that endpoint fail at once with
``BreakerOpen`` (an error class that falls back, or ends the job with
``provider_unavailable`` and how long to wait). ``BRENIA_BREAKER_RESET_SECONDS`` later it
is half-open: one call, in one process, is let through as a probe; its success closes
the breaker, its failure opens it again for another period.

Why Brenia's own and not ``pybreaker``: pybreaker is synchronous (its async path needs
Tornado), makes the half-open decision in process memory, and its Redis storage talks to
redis-py directly, a second Redis set-up beside Django's. Brenia already has one store
every process shares: Django's cache, which is Redis in scale-out (``REDIS_URL``, with
the deployment's key prefix) and this process's memory in the embedded profile, where
one process runs every job. Three keys per endpoint over the cache's atomic operations
are the whole breaker:

- ``failures``: transient failures in a row (``incr``; a success deletes it);
- ``opened``: when the breaker opened, in wall-clock seconds (absent: closed); wall
  clock because processes on several machines compare it;
- ``probe``: held by the one call let through when half-open (``add`` is
  set-if-absent, so exactly one process wins it); it expires after one reset period,
  so a probe whose process died does not hold the breaker half-open for ever.

A permanent error (invalid input, a safety refusal) is an answer from a working
endpoint and counts as a success; a call that re-attaches to a request already
submitted is never refused (its work is paid for).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache

from brenia import metrics
from generation.models import AIModel
from generation.providers.base import TransientProviderError

logger = logging.getLogger(__name__)

CLOSED, HALF_OPEN, OPEN = "closed", "half_open", "open"
# How long an unbroken run of failures is remembered without a new one.
FAILURES_TTL = 3600
KEY_PREFIX = "routing:breaker:"


def endpoint_of(model: AIModel) -> str:
    """The breaker's key: the provider and the model's endpoint there."""
    return f"{model.provider}:{model.endpoint_id}"


class BreakerOpen(TransientProviderError):
    """The endpoint's breaker is open: nothing was sent. Falls back, never retried on
    the same endpoint."""

    def __init__(self, endpoint: str, retry_after: float) -> None:
        self.endpoint = endpoint
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            f"{endpoint} is failing, so Brenia stopped calling it for now; try again in "
            f"about {self.retry_after} s.",
            code="provider_unavailable", detail={"retry_after": self.retry_after})


@dataclass(frozen=True)
class BreakerState:
    endpoint: str
    state: str
    failures: int
    # Seconds until a probe may go (open), else None.
    retry_after: float | None

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "failures": self.failures,
                "retry_after": None if self.retry_after is None
                else math.ceil(self.retry_after)}


class CircuitBreaker:
    """One endpoint's breaker. Cheap to build: all state lives in the shared cache.

    ``clock`` (wall-clock seconds) is for tests; thresholds default to the settings.
    """

    def __init__(self, endpoint: str, *, failures: int | None = None,
                 reset_seconds: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.endpoint = endpoint
        self.threshold = failures if failures is not None else settings.BRENIA_BREAKER_FAILURES
        self.reset_seconds = (reset_seconds if reset_seconds is not None
                              else settings.BRENIA_BREAKER_RESET_SECONDS)
        self.clock = clock
        prefix = KEY_PREFIX  # read at each build: tests give each test its own
        self.failures_key = f"{prefix}{endpoint}:failures"
        self.opened_key = f"{prefix}{endpoint}:opened"
        self.probe_key = f"{prefix}{endpoint}:probe"

    # --- the runner's calls ------------------------------------------------------------

    def check(self) -> None:
        """Return if a call may go now; raise BreakerOpen if not. Half-open, the first
        caller (over all processes) takes the probe and goes; the others wait.

        A breaker store that cannot be read (Redis restarting) lets the call go: the
        breaker protects the provider from Brenia, it must not fail jobs on its own."""
        try:
            opened = cache.get(self.opened_key)
        except Exception:
            logger.warning("circuit breaker %s: its store cannot be read; letting the call "
                           "go", self.endpoint, exc_info=True)
            return
        if opened is None:
            return
        now = self.clock()
        reopen_at = float(opened) + self.reset_seconds
        if now < reopen_at:
            self._report(OPEN)
            raise BreakerOpen(self.endpoint, reopen_at - now)
        try:
            probe = cache.add(self.probe_key, now, timeout=self._probe_ttl())
        except Exception:
            logger.warning("circuit breaker %s: its store cannot be written; letting the "
                           "call go", self.endpoint, exc_info=True)
            probe = True
        if probe:
            self._report(HALF_OPEN)
            return
        raise BreakerOpen(self.endpoint, self.reset_seconds)

    def record_success(self) -> None:
        cache.delete_many([self.failures_key, self.opened_key, self.probe_key])
        self._report(CLOSED)

    def record_failure(self) -> None:
        if cache.get(self.opened_key) is not None:
            # Half-open and the probe failed (or a call from before it opened): open
            # again for a whole period, and free the probe for the next one.
            cache.set(self.opened_key, self.clock(), timeout=None)
            cache.delete(self.probe_key)
            self._report(OPEN)
            return
        cache.add(self.failures_key, 0, timeout=FAILURES_TTL)
        try:
            failures = cache.incr(self.failures_key)
        except ValueError:  # expired between the two calls
            cache.set(self.failures_key, failures := 1, timeout=FAILURES_TTL)
        if failures >= self.threshold:
            # add: of processes crossing the threshold together, the first one's time stands.
            cache.add(self.opened_key, self.clock(), timeout=None)
            self._report(OPEN)

    def reset(self) -> None:
        """Close the breaker by hand (the admin's action)."""
        self.record_success()

    # --- reading --------------------------------------------------------------------------

    def state(self) -> BreakerState:
        values = cache.get_many([self.failures_key, self.opened_key])
        return self._state_from(values.get(self.failures_key), values.get(self.opened_key))

    def _state_from(self, failures: object, opened: object) -> BreakerState:
        count = int(failures or 0)  # type: ignore[call-overload]
        if opened is None:
            state = BreakerState(self.endpoint, CLOSED, count, None)
        else:
            wait = float(opened) + self.reset_seconds - self.clock()  # type: ignore[arg-type]
            state = (BreakerState(self.endpoint, OPEN, count, wait) if wait > 0
                     else BreakerState(self.endpoint, HALF_OPEN, count, None))
        self._report(state.state)
        return state

    def _probe_ttl(self) -> int:
        return max(1, math.ceil(self.reset_seconds))

    def _report(self, state: str) -> None:
        metrics.breaker_state(endpoint=self.endpoint, state=state)

    # --- async forms, off the event loop (the cache may be Redis) -----------------------

    async def acheck(self) -> None:
        await sync_to_async(self.check, thread_sensitive=False)()

    async def arecord_success(self) -> None:
        await sync_to_async(self.record_success, thread_sensitive=False)()

    async def arecord_failure(self) -> None:
        await sync_to_async(self.record_failure, thread_sensitive=False)()


def breaker_for(model: AIModel) -> CircuitBreaker:
    return CircuitBreaker(endpoint_of(model))


def breaker_states() -> dict[str, dict[str, object]]:
    """Every registry endpoint's breaker, by endpoint (one cache round trip)."""
    endpoints = sorted({endpoint_of(model) for model in
                        AIModel.objects.only("provider", "endpoint_id")})
    breakers = [CircuitBreaker(endpoint) for endpoint in endpoints]
    keys = [key for b in breakers for key in (b.failures_key, b.opened_key)]
    values = cache.get_many(keys) if keys else {}
    return {b.endpoint: b._state_from(values.get(b.failures_key),
                                      values.get(b.opened_key)).as_dict()
            for b in breakers}
