"""Brenia's one retry policy: its waits, its bound, and stamina's test switch."""

from __future__ import annotations

import pytest
import stamina
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks

from brenia.retries import Backoff


def test_delay_doubles_from_base_with_up_to_one_base_of_jitter_and_stops_at_the_cap() -> None:
    backoff = Backoff(attempts=10, base=0.5, cap=5.0)
    for failures in range(1, 9):
        floor = min(5.0, 0.5 * 2 ** (failures - 1))
        for _ in range(50):
            assert floor <= backoff.delay(failures=failures) <= min(5.0, floor + 0.5)
    assert backoff.delay(failures=60) == backoff.delay(failures=5000) == 5.0


def test_stamina_test_mode_makes_the_delay_zero() -> None:
    with stamina.set_testing(True):
        assert Backoff(attempts=3, base=30.0, cap=60.0).delay(failures=2) == 0.0


async def test_in_place_retries_wait_like_delay_and_stop_after_the_attempts() -> None:
    waits: list[float] = []
    previous = get_on_retry_hooks()

    def record(details: RetryDetails) -> None:
        waits.append(details.wait_for)

    set_on_retry_hooks([record])
    tries = 0
    try:
        with pytest.raises(ConnectionError):
            async for attempt in Backoff(attempts=3, base=0.01, cap=1.0).retrying(
                    on=ConnectionError):
                with attempt:
                    tries += 1
                    raise ConnectionError("still down")
    finally:
        set_on_retry_hooks(previous)
    assert tries == 3
    assert len(waits) == 2
    assert 0.01 <= waits[0] <= 0.02 and 0.02 <= waits[1] <= 0.03


async def test_what_on_refuses_goes_through_at_once() -> None:
    tries = 0
    with pytest.raises(ValueError, match="bad input"):
        async for attempt in Backoff(attempts=3, base=0.01, cap=1.0).retrying(
                on=lambda exc: isinstance(exc, ConnectionError)):
            with attempt:
                tries += 1
                raise ValueError("bad input")
    assert tries == 1
