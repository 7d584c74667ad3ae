"""Fault injection: which submits fail, and how.

A fault plan maps a *target* to a *spec*::

    {"fal-ai/flux/schnell": {"sequence": ["429", "ok", "nsfw"]},   # one endpoint
     "fal-ai/flux":         {"rate": {"503_ingress": 0.2}},         # every fal-ai/flux/* endpoint
     "*":                   {"rate": {"slow": 0.1}, "slow_s": 3}}   # everything else

The most specific target wins: the exact endpoint id, then its shorter prefixes cut
at ``/`` (``fal-ai/flux/dev/image-to-image`` → ``fal-ai/flux/dev`` → ``fal-ai/flux``),
then ``"*"``. ``fal-ai/flux`` does not match ``fal-ai/flux-lora``.

Every submit attempt (every POST, including the SDK's own retries) draws one fault:
the next unused ``sequence`` item if any is left, otherwise one draw from ``rate``
(kind → probability, summing to ≤ 1), otherwise ``"ok"``. Spec keys: ``sequence``
(list of kinds), ``rate`` (mapping), ``slow_s`` (extra seconds for the ``slow*``
kinds, default 2), ``hang_s`` (how long a ``hang*`` lasts before giving up,
default 300; hangs also end when the emulator shuts down or the request is cancelled).

A prompt containing ``[[fal:<kind>]]`` forces that kind for that submit without
consuming the plan (handy for manual testing through the UI).

Kinds answered at submit (no request is created):
  ``429``          429 concurrent_requests_limit (+ ``X-Fal-Needs-Retry: 1``); the SDK retries
  ``503_ingress``  (also ``502_ingress``/``504_ingress``) nginx HTML, no ``x-fal-request-id``;
                   the SDK retries
  ``500``/``502``/``503``/``504``  JSON platform error *with* ``x-fal-request-id``; not retried
  ``slow_submit``  the submit answers normally after ``slow_s``
  ``hang_submit``  the submit never answers (until ``hang_s``, then a normal answer)
Kinds applied to the accepted request:
  ``slow``            IN_PROGRESS lasts ``slow_s`` longer
  ``hang``            stays IN_PROGRESS; after ``hang_s`` fails with 504 generation_timeout
  ``runner_error``    fails: 500 ``{"detail": …, "error_type": "runner_server_error"}``
  ``content_policy``  fails: 422 detail list with type ``content_policy_violation``
  ``nsfw``            succeeds with ``has_nsfw_concepts: [true…]`` and black images
                      (when ``enable_safety_checker`` is on)
  ``malformed``       succeeds, but the result body is truncated JSON
  ``slow_result`` / ``hang_result``  the result GET answers late / never
  ``stream_drop``     every status stream (SSE) of the request ends after its first
                      event and never sends COMPLETED (a proxy cutting long responses):
                      only a status poll sees the request complete
  ``stream_unavailable``  the status stream route answers 503 nginx HTML (a front that
                      does not serve SSE); polled status works
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INGRESS_FAULTS = frozenset({"502_ingress", "503_ingress", "504_ingress"})
HARD_FAULTS = frozenset({"500", "502", "503", "504"})
SUBMIT_FAULTS = frozenset({"429", "slow_submit", "hang_submit"}) | INGRESS_FAULTS | HARD_FAULTS
RUN_FAULTS = frozenset({"slow", "hang", "runner_error", "content_policy", "nsfw", "malformed",
                        "slow_result", "hang_result", "stream_drop", "stream_unavailable"})
KINDS = frozenset({"ok"}) | SUBMIT_FAULTS | RUN_FAULTS

PROMPT_TOKEN = re.compile(r"\[\[fal:([a-z0-9_]+)\]\]")


@dataclass(frozen=True)
class Fault:
    kind: str = "ok"
    slow_s: float = 2.0
    hang_s: float = 300.0


NO_FAULT = Fault()


@dataclass
class FaultSpec:
    sequence: list[str] = field(default_factory=list)
    rate: dict[str, float] = field(default_factory=dict)
    slow_s: float = 2.0
    hang_s: float = 300.0
    cursor: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"sequence": list(self.sequence), "rate": dict(self.rate), "slow_s": self.slow_s,
                "hang_s": self.hang_s, "used": self.cursor}


def parse_spec(raw: Mapping[str, Any]) -> FaultSpec:
    """Check a spec mapping; raises ``ValueError`` naming the bad part."""
    if not isinstance(raw, Mapping):
        raise ValueError("a fault spec must be an object")
    unknown = set(raw) - {"sequence", "rate", "slow_s", "hang_s"}
    if unknown:
        raise ValueError(f"unknown fault spec keys: {sorted(unknown)}")
    sequence = [str(kind) for kind in raw.get("sequence", [])]
    rate = {str(kind): float(p) for kind, p in dict(raw.get("rate", {})).items()}
    for kind in [*sequence, *rate]:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
    if any(p < 0 for p in rate.values()) or sum(rate.values()) > 1.0 + 1e-9:
        raise ValueError("fault rates must be ≥ 0 and sum to at most 1")
    return FaultSpec(sequence=sequence, rate=rate, slow_s=float(raw.get("slow_s", 2.0)),
                     hang_s=float(raw.get("hang_s", 300.0)))


class FaultPlan:
    """The live fault configuration. Safe to change from any thread."""

    def __init__(self, *, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, FaultSpec] = {}
        self._rng = random.Random(seed)

    def set(self, target: str, raw: Mapping[str, Any] | None) -> None:
        """Install (or with ``None`` remove) the spec for one target."""
        spec = None if raw is None else parse_spec(raw)
        with self._lock:
            if spec is None:
                self._specs.pop(target, None)
            else:
                self._specs[target] = spec

    def replace(self, plan: Mapping[str, Mapping[str, Any] | None] | None) -> None:
        specs = {target: parse_spec(raw) for target, raw in (plan or {}).items() if raw is not None}
        with self._lock:
            self._specs = specs

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {target: spec.as_json() for target, spec in self._specs.items()}

    def draw(self, endpoint: str, prompt: str | None = None) -> Fault:
        """The fault for one submit attempt to ``endpoint`` (consumes a sequence item)."""
        forced = PROMPT_TOKEN.search(prompt) if prompt else None
        with self._lock:
            spec = self._match(endpoint)
            slow_s, hang_s = (spec.slow_s, spec.hang_s) if spec else (2.0, 300.0)
            if forced and forced.group(1) in KINDS:
                return Fault(forced.group(1), slow_s, hang_s)
            if spec is None:
                return NO_FAULT
            if spec.cursor < len(spec.sequence):
                kind = spec.sequence[spec.cursor]
                spec.cursor += 1
                return Fault(kind, slow_s, hang_s)
            if spec.rate:
                roll = self._rng.random()
                for kind, p in spec.rate.items():
                    if roll < p:
                        return Fault(kind, slow_s, hang_s)
                    roll -= p
            return Fault("ok", slow_s, hang_s)

    def _match(self, endpoint: str) -> FaultSpec | None:
        parts = endpoint.split("/")
        for cut in range(len(parts), 0, -1):
            spec = self._specs.get("/".join(parts[:cut]))
            if spec is not None:
                return spec
        return self._specs.get("*")
