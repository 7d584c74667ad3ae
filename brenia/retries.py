"""Brenia's one retry policy: exponential backoff plus jitter, capped, bounded in tries.

Every retry in Brenia waits the same way; each use brings only its own numbers
(the job runner its module constants, outgoing webhooks their settings):

- Code that retries in place (the job runner around a provider call) loops over
  :meth:`Backoff.retrying`, a ``stamina`` retry context.
- Work that reschedules itself instead of sleeping (a webhook delivery stores its
  next due time and returns) asks :meth:`Backoff.delay` for the wait.

Both wait, after the n-th failed try, stamina's documented backoff::

    min(cap, base * 2 ** (n - 1) + uniform(0, base))

The first retry comes base to 2*base seconds after the failure, each later one about
twice as late, none later than ``cap``. The jitter is additive and one ``base`` wide:
it spreads callers that failed together without ever waiting less than the
exponential floor. (That is not AWS's "full jitter", which draws the whole wait
from 0 to base * 2 ** (n - 1).)

``stamina.set_testing(True, attempts=...)`` makes every wait of both forms zero (and
sets the in-place form's number of tries, as stamina documents).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass

import stamina

# What decides whether a failure is retried: exception types, or a hook that gets
# the exception and returns True to retry (stamina's ``on``).
RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]


@dataclass(frozen=True)
class Backoff:
    attempts: int  # tries in all, the first one included
    base: float  # seconds before the first retry, at least; also the jitter's width
    cap: float  # no single wait is longer

    def delay(self, *, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed try before the next one."""
        if stamina.is_testing():
            return 0.0
        # The exponent stops at 60 (past any cap) so that a huge count cannot overflow.
        exponential = self.base * 2.0 ** min(failures - 1, 60)
        return min(self.cap, exponential + random.uniform(0, self.base))

    def retrying(self, *, on: RetryOn) -> AsyncIterable[stamina.Attempt]:
        """``async for attempt in backoff.retrying(on=...): with attempt: ...``.

        Retries what ``on`` accepts until ``attempts`` tries are spent, then lets the
        last exception through; anything else goes through at once.
        """
        return stamina.retry_context(
            on=on, attempts=self.attempts,
            # No overall deadline: one try may rightly run for minutes (a queued image
            # job), and stamina's default (no retry once 45 s have passed since the
            # first try) would then rule out every retry. Callers bound their own tries.
            timeout=None,
            wait_initial=self.base, wait_max=self.cap, wait_jitter=self.base,
        )
