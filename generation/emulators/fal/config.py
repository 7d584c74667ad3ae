"""Emulator configuration and the timing profiles behind ``latency``."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Latency = Literal["instant", "fast", "realistic"]


@dataclass(frozen=True)
class Timing:
    """How long each simulated phase takes, in seconds."""

    dispatch_s: float  # least time a request stays IN_QUEUE, even with an idle runner
    inference_s: float  # IN_PROGRESS time of one request (cold loads come on top)
    log_ticks: int  # progress log lines emitted over inference_s
    cold_load_s: float  # loading one model/LoRA a runner does not hold
    webhook_attempts: int  # deliveries in total, first one included
    webhook_backoff_s: float  # delay before retry n is backoff * 2**(n-1), capped at 60 s
    webhook_timeout_s: float  # per delivery attempt


PROFILES: dict[str, Timing] = {
    "instant": Timing(dispatch_s=0.0, inference_s=0.01, log_ticks=2, cold_load_s=0.0,
                      webhook_attempts=4, webhook_backoff_s=0.02, webhook_timeout_s=5.0),
    "fast": Timing(dispatch_s=0.15, inference_s=0.35, log_ticks=5, cold_load_s=0.25,
                   webhook_attempts=5, webhook_backoff_s=0.05, webhook_timeout_s=5.0),
    "realistic": Timing(dispatch_s=0.8, inference_s=2.5, log_ticks=10, cold_load_s=1.5,
                        webhook_attempts=11, webhook_backoff_s=2.0, webhook_timeout_s=15.0),
}


@dataclass(frozen=True)
class FalEmulatorConfig:
    """Everything ``create_app`` needs; every field has a working default.

    ``faults`` maps a target (endpoint id, app id or ``"*"``) to a fault spec, see
    ``faults.py``. ``api_keys=None`` accepts any well-formed key; a collection of
    ``"id:secret"`` strings (or Bearer tokens) accepts only those. The ``*_s``
    overrides replace single values of the ``latency`` profile (the bench uses them).
    """

    latency: Latency = "fast"
    faults: Mapping[str, Mapping[str, Any]] | None = None
    api_keys: Collection[str] | None = None
    runners: int = 2
    cache_size: int = 2
    cold_load_s: float | None = None
    dispatch_s: float | None = None
    inference_s: float | None = None
    webhook_attempts: int | None = None
    webhook_backoff_s: float | None = None
    keepalive_s: float = 15.0  # SSE comment interval
    max_files: int = 2000  # generated files kept in memory, oldest dropped first
    seed: int | None = None  # seeds fault rates and unseeded generations

    def __post_init__(self) -> None:
        if self.latency not in PROFILES:
            raise ValueError(f"latency must be one of {sorted(PROFILES)}, got {self.latency!r}")
        if self.runners < 1 or self.cache_size < 1:
            raise ValueError("runners and cache_size must be at least 1")

    def timing(self) -> Timing:
        base = PROFILES[self.latency]
        return Timing(
            dispatch_s=_pick(self.dispatch_s, base.dispatch_s),
            inference_s=_pick(self.inference_s, base.inference_s),
            log_ticks=base.log_ticks,
            cold_load_s=_pick(self.cold_load_s, base.cold_load_s),
            webhook_attempts=(self.webhook_attempts if self.webhook_attempts is not None
                              else base.webhook_attempts),
            webhook_backoff_s=_pick(self.webhook_backoff_s, base.webhook_backoff_s),
            webhook_timeout_s=base.webhook_timeout_s,
        )


def _pick(override: float | None, default: float) -> float:
    return default if override is None else float(override)
