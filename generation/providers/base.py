"""What every provider offers the job runner, and how its errors are classed.

A provider turns a job's fixed ``provider_arguments`` into a result. Errors say
whether they are permanent (bad input, safety refusal: never retried, never
routed around) or transient (429, 5xx, timeouts: retried with backoff).
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from generation.models import AIModel, Job

logger = logging.getLogger("generation.providers")


class ProviderError(Exception):
    """A provider call did not produce a result."""

    permanent = False

    def __init__(self, message: str, *, code: str = "provider_error",
                 detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail


class PermanentProviderError(ProviderError):
    """Retrying cannot help: invalid input, a safety refusal, no image produced."""

    permanent = True


class TransientProviderError(ProviderError):
    """Worth another try later: rate limits, outages, timeouts."""

    # True when the provider's own client already retried it to its limit: then the
    # runner does not retry again, so the two retry layers never multiply.
    retried_by_client = False


class MalformedResponse(ProviderError):
    """The provider answered something Brenia cannot interpret (an unexpected error)."""

    permanent = True


@dataclass(frozen=True)
class Queued:
    position: int


@dataclass(frozen=True)
class Running:
    new_logs: list[str] = field(default_factory=list)
    progress: float | None = None


Update = Queued | Running


@dataclass
class OutputImage:
    """One image of a result: a URL to fetch, or bytes already in hand."""

    url: str = ""
    data: bytes | None = None
    content_type: str = ""
    seed: int | None = None


@dataclass
class ProviderResult:
    images: list[OutputImage]
    text: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    # Units the provider bills on, when it reports them (tokens); None means
    # "price by the images".
    billed_tokens: int | None = None


OnSubmitted = Callable[[str], Awaitable[None]]
OnUpdate = Callable[[Update], Awaitable[None]]


class Provider(ABC):
    """One remote service. Instances are cheap and belong to one event loop."""

    name: str

    @abstractmethod
    def build_arguments(self, *, model: AIModel, inputs: dict[str, Any],
                        options: dict[str, Any]) -> dict[str, Any]:
        """Map Brenia's inputs and common options onto the provider's parameters."""

    @abstractmethod
    async def execute(self, *, job: Job, on_submitted: OnSubmitted,
                      on_update: OnUpdate) -> ProviderResult:
        """Run the job to a result.

        A queue-based provider submits (or, when ``job.provider_request_id`` is set,
        re-attaches to the request already submitted), calls ``on_submitted`` with the
        remote id before waiting, and reports queue and progress through ``on_update``.
        """

    async def cancel(self, *, job: Job) -> None:  # noqa: B027 - optional for providers
        """Best effort: ask the remote side to drop the request."""

    async def aclose(self) -> None:  # noqa: B027 - optional for providers
        """Release connections."""

    def estimate_images(self, arguments: dict[str, Any],
                        model: AIModel | None = None) -> list[tuple[int, int]]:
        """The (width, height) of each image the arguments ask for (of ``model``, when
        the size depends on it), for pricing and plans' high-resolution caps."""
        return []

    def estimate(self, model: AIModel, arguments: dict[str, Any]) -> Decimal:
        """What the request will likely cost, quoted before anything is spent."""
        return model.price_per_image + model.price_per_megapixel

    def price_tokens(self, model: AIModel, tokens: int) -> Decimal:
        return model.price_per_million_tokens * Decimal(tokens) / Decimal(1_000_000)


def decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise MalformedResponse("The provider returned an unsupported data URI.",
                                code="malformed_response")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponse("The provider returned a corrupt data URI.",
                                code="malformed_response") from exc


def log_provider_call(*, provider: str, call: str, endpoint: str, started: float,
                      request_id: str = "", outcome: str = "ok") -> None:
    """One line per call to a provider: which call, which request, how it went, how long.

    Never the input or the provider's message: both can echo the user's prompt, which
    is logged at DEBUG at most. The line carries the job's request id from the context.
    """
    duration_ms = round((time.monotonic() - started) * 1000)
    level = logging.INFO if outcome == "ok" else logging.WARNING
    logger.log(level, "%s %s %s: request %s %s (%d ms)", provider, call, endpoint,
               request_id or "-", outcome, duration_ms,
               extra={"provider": provider, "call": call, "endpoint": endpoint,
                      "provider_request_id": request_id, "outcome": outcome,
                      "duration_ms": duration_ms})
