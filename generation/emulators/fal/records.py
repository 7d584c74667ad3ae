"""The request record and the outcome a runner leaves behind."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .faults import NO_FAULT, Fault

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Outcome:
    """What the result route replays: status code, body and extra headers.

    ``error``/``error_type`` go into the COMPLETED status of a failed request;
    ``payload``/``payload_error`` into the webhook.
    """

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    payload: Any = None
    payload_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400


def success(output: dict[str, Any]) -> Outcome:
    return Outcome(200, dumps(output), payload=output)


def malformed(output: dict[str, Any]) -> Outcome:
    """A 200 whose body is cut off mid-JSON (fault ``malformed``)."""
    body = dumps(output)
    return Outcome(200, body[: max(1, len(body) // 2)], payload=None,
                   payload_error="Response payload is not JSON serializable. Either return a "
                                 "JSON serializable object or use the queue endpoint to "
                                 "retrieve the response.")


def model_error(status: int, detail: list[dict[str, Any]]) -> Outcome:
    """A model's own error (validation, content checks): ``{"detail": [...]}``."""
    body = {"detail": detail}
    error_type = str(detail[0]["type"]) if detail else None
    return Outcome(status, dumps(body), error=f"Invalid status code: {status}",
                   error_type=error_type, payload=body)


def platform_error(status: int, detail: str, error_type: str,
                   headers: Mapping[str, str] | None = None) -> Outcome:
    """A platform error: ``{"detail": str, "error_type": str}`` + ``X-Fal-Error-Type``."""
    body = {"detail": detail, "error_type": error_type}
    return Outcome(status, dumps(body), headers={"X-Fal-Error-Type": error_type, **(headers or {})},
                   error=detail, error_type=error_type, payload=body)


def log_entry(message: str, level: str = "INFO") -> dict[str, str]:
    return {"message": message, "level": level, "source": "USER",
            "timestamp": datetime.now(UTC).isoformat()}


@dataclass(eq=False)
class QueuedRequest:
    """One accepted submit, from IN_QUEUE to COMPLETED. Lives on the emulator's loop."""

    id: str
    endpoint: str  # full endpoint id, e.g. fal-ai/flux/dev/image-to-image
    app: str  # [ns/]owner/alias, what status/result/cancel URLs carry
    user_id: str
    base_url: str  # scheme://host:port the client reached us on
    body: Any  # parsed JSON body, or None when it was not JSON
    body_error: str | None  # JSON decode error text, when it was not
    priority: str = "normal"
    hint: str | None = None
    webhook_url: str | None = None
    deadline: float | None = None  # monotonic time-to-start deadline
    fault: Fault = NO_FAULT
    cache_keys: tuple[str, ...] = ()
    fingerprint: str = ""
    status: str = IN_QUEUE
    submitted_at: float = field(default_factory=time.monotonic)
    ready_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    created: float = field(default_factory=time.time)
    runner: str | None = None
    routed_by_hint: bool = False
    cold_loads: int = 0
    logs: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None
    cancel_requested: bool = False
    result_fetches: int = 0
    status_polls: int = 0  # GET …/status answered
    log_polls: int = 0  # … of which asked for the logs (?logs=1)
    stream_opens: int = 0  # GET …/status/stream answered (any outcome)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _cancel: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def prompt(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("prompt"), str):
            return str(self.body["prompt"])
        return None

    def url(self, suffix: str = "") -> str:
        return f"{self.base_url}/{self.app}/requests/{self.id}{suffix}"

    def log(self, message: str, level: str = "INFO") -> None:
        self.logs.append(log_entry(message, level))
        self.notify()

    def notify(self) -> None:
        """Wake everything waiting for a change (SSE streams)."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_changed(self, wait_s: float) -> bool:
        """Wait for the next ``notify()``; False when ``wait_s`` passed first."""
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    def request_cancel(self) -> None:
        self.cancel_requested = True
        self._cancel.set()

    async def pause(self, seconds: float) -> bool:
        """Sleep ``seconds``; True (early) when the client asked to cancel meanwhile."""
        if self._cancel.is_set():
            return True
        if seconds <= 0:
            await asyncio.sleep(0)
            return self._cancel.is_set()
        try:
            await asyncio.wait_for(self._cancel.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def snapshot(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "request_id": self.id, "endpoint": self.endpoint, "app": self.app,
            "status": self.status, "user_id": self.user_id, "priority": self.priority,
            "hint": self.hint, "runner": self.runner, "routed_by_hint": self.routed_by_hint,
            "cold_loads": self.cold_loads,
            "cache_keys": list(self.cache_keys), "fault": self.fault.kind,
            "webhook_url": self.webhook_url, "prompt": self.prompt, "input": self.body,
            "created": self.created,
            "started": (None if self.started_at is None
                        else self.created + self.started_at - self.submitted_at),
            "queued_s": None if self.started_at is None else self.started_at - self.submitted_at,
            "run_s": (None if self.started_at is None or self.completed_at is None
                      else self.completed_at - self.started_at),
            "total_s": (None if self.completed_at is None
                        else self.completed_at - self.submitted_at),
            "cancel_requested": self.cancel_requested, "result_fetches": self.result_fetches,
            "status_polls": self.status_polls, "log_polls": self.log_polls,
            "stream_opens": self.stream_opens,
            "result_status": outcome.status if outcome else None,
            "error": outcome.error if outcome else None,
            "error_type": outcome.error_type if outcome else None,
            "log_count": len(self.logs),
        }
