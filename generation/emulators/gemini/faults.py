"""Deterministic fault injection: prompt tokens, a request header, and per-model rules.

One vocabulary serves all three (case-insensitive):

- ``ok``: no fault (useful in scripted sequences).
- ``400`` ``403`` ``404`` ``408`` ``429`` ``500`` ``503`` ``504``: that canned error.
  ``429=30`` sets RetryInfo.retryDelay to 30 s (default 1 s); ``429=none`` omits RetryInfo.
- ``block`` (PROHIBITED_CONTENT) or ``block=SAFETY`` etc.: HTTP 200, promptFeedback, no
  candidates.
- ``image_safety``, ``image_prohibited`` (IMAGE_PROHIBITED_CONTENT), ``image_other``,
  ``image_recitation``, or ``finish=REASON`` for any finishReason: HTTP 200, a candidate
  with that finishReason and no image part.
- ``no_image`` / ``text_only``: a text-only answer with finishReason STOP.
- ``stream_error`` (500) or ``stream_error=503``: streams send this as a ``data:`` error
  event after the first chunk; generateContent ignores it.
- ``slow=2.5``: wait 2.5 s before answering (adds to any other fault).
- ``verbose``: JSON answers ignore the schema's ``maxLength`` and run long (every
  string several sentences), as a real model sometimes overwrites its brief.

In a prompt: ``[[gemini:429]]`` (``[[emulate:429]]`` works too); the token is removed
from the prompt before it is answered. In a header: ``X-Emulator-Fault: 429``.
Per model (config or ``POST /_emulator/faults``), keyed by model id or ``"*"``:
``["429", "ok"]`` (a script, one entry per request, then no fault),
``{"sequence": [...], "cycle": true}`` (repeats), or
``{"rate": 0.2, "fault": "503", "seed": 0}`` (seeded, so reproducible).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

TOKEN_RE = re.compile(r"\[\[\s*(?:gemini|emulate)\s*:\s*([^\]]+?)\s*\]\]", re.IGNORECASE)

ERROR_CODES = frozenset({400, 403, 404, 408, 429, 500, 503, 504})
FINISH_SHORTHANDS = {
    "image_safety": "IMAGE_SAFETY",
    "image_prohibited": "IMAGE_PROHIBITED_CONTENT",
    "image_prohibited_content": "IMAGE_PROHIBITED_CONTENT",
    "image_other": "IMAGE_OTHER",
    "image_recitation": "IMAGE_RECITATION",
    "no_image_finish": "NO_IMAGE",
}
BLOCK_REASONS = frozenset({"SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT",
                           "IMAGE_SAFETY", "MODEL_ARMOR", "JAILBREAK"})
# The emulator never emits CONTINUATION (spec §2), even when asked to.
FINISH_REASONS = frozenset({
    "STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "LANGUAGE", "OTHER", "BLOCKLIST",
    "PROHIBITED_CONTENT", "SPII", "MALFORMED_FUNCTION_CALL", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_OTHER", "NO_IMAGE", "IMAGE_RECITATION",
    "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "MISSING_THOUGHT_SIGNATURE",
    "MALFORMED_RESPONSE",
})

FaultKind = Literal["ok", "error", "block", "finish", "text_only", "stream_error", "slow",
                    "verbose"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    code: int = 0
    retry_delay_s: float | None = 1.0
    reason: str = ""
    delay_s: float = 0.0


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one request: at most one outcome, plus an added delay."""

    outcome: Fault | None = None
    delay_s: float = 0.0

    def merged(self, other: FaultPlan) -> FaultPlan:
        return FaultPlan(outcome=self.outcome or other.outcome,
                         delay_s=self.delay_s + other.delay_s)


def parse_fault(text: str) -> Fault:
    """Parse one fault word; raises ValueError on anything unknown."""
    word, _, arg = text.strip().partition("=")
    word = word.strip().lower().replace("-", "_")
    arg = arg.strip()
    if word == "ok":
        return Fault("ok")
    if word.isdigit():
        code = int(word)
        if code not in ERROR_CODES:
            raise ValueError(f"unsupported fault status {code}")
        delay: float | None = 1.0
        if code == 429 and arg:
            delay = None if arg.lower() == "none" else float(arg.rstrip("s"))
        return Fault("error", code=code, retry_delay_s=delay)
    if word == "block":
        reason = (arg or "PROHIBITED_CONTENT").upper()
        if reason not in BLOCK_REASONS:
            raise ValueError(f"unknown block reason {reason}")
        return Fault("block", reason=reason)
    if word in FINISH_SHORTHANDS:
        return Fault("finish", reason=FINISH_SHORTHANDS[word])
    if word == "finish":
        reason = arg.upper()
        if reason not in FINISH_REASONS:
            raise ValueError(f"unknown finish reason {arg!r}")
        return Fault("text_only" if reason == "STOP" else "finish", reason=reason)
    if word == "verbose":
        return Fault("verbose")
    if word in ("no_image", "text_only"):
        return Fault("text_only", reason="STOP")
    if word == "stream_error":
        code = int(arg) if arg else 500
        if code not in ERROR_CODES:
            raise ValueError(f"unsupported stream error status {code}")
        return Fault("stream_error", code=code)
    if word == "slow":
        seconds = float(arg.rstrip("s")) if arg else 2.0
        if not 0 <= seconds <= 600:
            raise ValueError("slow= takes 0..600 seconds")
        return Fault("slow", delay_s=seconds)
    raise ValueError(f"unknown fault {text!r}")


def plan_from_words(words: list[str]) -> FaultPlan:
    plan = FaultPlan()
    for word in words:
        fault = parse_fault(word)
        if fault.kind == "slow":
            plan = plan.merged(FaultPlan(delay_s=fault.delay_s))
        elif fault.kind != "ok":
            plan = plan.merged(FaultPlan(outcome=fault))
    return plan


def strip_tokens(text: str) -> tuple[str, list[str]]:
    """Remove fault tokens from ``text``; return the clean text and the fault words.

    Unknown words are kept out of the prompt but ignored, so a typo never crashes a
    request (the emulator logs nothing here on purpose: the word is visible in stats).
    """
    words: list[str] = []

    def take(match: re.Match[str]) -> str:
        for word in match.group(1).split(","):
            try:
                parse_fault(word)
            except ValueError:
                continue
            words.append(word.strip())
        return ""

    cleaned = TOKEN_RE.sub(take, text)
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip(), words


class FaultRule:
    """A per-model rule: a script (optionally cycling) or a seeded failure rate."""

    def __init__(self, spec: Any) -> None:
        self.sequence: list[Fault] = []
        self.cycle = False
        self.rate = 0.0
        self.fault: Fault | None = None
        self.position = 0
        if isinstance(spec, str):
            spec = [spec]
        if isinstance(spec, list | tuple):
            self.sequence = [parse_fault(str(item)) for item in spec]
        elif isinstance(spec, Mapping):
            if "sequence" in spec:
                self.sequence = [parse_fault(str(item)) for item in spec["sequence"]]
                self.cycle = bool(spec.get("cycle", False))
            elif "rate" in spec:
                self.rate = float(spec["rate"])
                if not 0.0 <= self.rate <= 1.0:
                    raise ValueError("rate must be within 0..1")
                self.fault = parse_fault(str(spec.get("fault", "503")))
                self.random = random.Random(int(spec.get("seed", 0)))
            else:
                raise ValueError("a fault rule needs 'sequence' or 'rate'")
        else:
            raise ValueError(f"bad fault rule {spec!r}")
        self.spec = spec

    def next(self) -> Fault | None:
        if self.sequence:
            if self.position >= len(self.sequence):
                if not self.cycle:
                    return None
                self.position = 0
            fault = self.sequence[self.position]
            self.position += 1
            return fault
        if self.fault is not None and self.random.random() < self.rate:
            return self.fault
        return None

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "consumed": self.position,
                "remaining": max(0, len(self.sequence) - self.position)
                if self.sequence and not self.cycle else None}


def parse_rules(faults: Mapping[str, Any] | None) -> dict[str, FaultRule]:
    """Validate a ``{model id or "*": rule}`` mapping; raises ValueError when malformed."""
    if not faults:
        return {}
    if not isinstance(faults, Mapping):
        raise ValueError("faults must be a mapping of model id to rule")
    return {str(model).removeprefix("models/"): FaultRule(spec)
            for model, spec in faults.items()}


def plan_from_rule_fault(fault: Fault | None) -> FaultPlan:
    if fault is None or fault.kind == "ok":
        return FaultPlan()
    if fault.kind == "slow":
        return FaultPlan(delay_s=fault.delay_s)
    return FaultPlan(outcome=fault)
