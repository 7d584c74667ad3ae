"""Emulator configuration and the per-app mutable state (counters, fault rules).

The state is touched from the emulator's event loop and from test threads (through
``set_faults``/``reset``), so every method takes one lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .faults import Fault, FaultRule, parse_rules

Latency = Literal["instant", "fast", "realistic"]
LATENCIES: tuple[str, ...] = ("instant", "fast", "realistic")
RECENT_LIMIT = 50


@dataclass(frozen=True)
class GeminiEmulatorConfig:
    """How an emulator instance behaves.

    ``latency``: "instant" (none), "fast" (tens of ms) or "realistic" (text under a
    second or so, images 1-3 s). ``faults``: per-model fault rules (see ``faults``).
    ``api_keys``: None accepts any non-empty key without "invalid" in it; a set accepts
    only its members.
    """

    latency: Latency = "fast"
    faults: Mapping[str, Any] | None = None
    api_keys: Iterable[str] | None = None

    def __post_init__(self) -> None:
        if self.latency not in LATENCIES:
            raise ValueError(f"latency must be one of {', '.join(LATENCIES)}")
        parse_rules(self.faults)  # fail at construction on a malformed rule
        if self.api_keys is not None:
            object.__setattr__(self, "api_keys", frozenset(self.api_keys))

    def key_is_valid(self, key: str) -> bool:
        if self.api_keys is None:
            return "invalid" not in key.lower()
        return key in frozenset(self.api_keys)


def _empty_counter() -> dict[str, Any]:
    return {"requests": 0, "by_method": {}, "by_status": {}, "images": 0,
            "prompt_tokens": 0, "output_tokens": 0}


class GeminiEmulatorState:
    def __init__(self, config: GeminiEmulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._rules: dict[str, FaultRule] = parse_rules(config.faults)
        self._models: dict[str, dict[str, Any]] = {}
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_LIMIT)
        self._total = 0

    # -- faults ----------------------------------------------------------------------

    def set_faults(self, faults: Mapping[str, Any] | None) -> None:
        """Replace the per-model fault rules (validated first; ValueError if bad)."""
        rules = parse_rules(faults)
        with self._lock:
            self._rules = rules

    def next_rule_fault(self, *model_ids: str) -> Fault | None:
        """Consume one step of the rule for the first of ``model_ids`` (or "*") that has one."""
        with self._lock:
            for model_id in (*model_ids, "*"):
                rule = self._rules.get(model_id)
                if rule is not None:
                    return rule.next()
        return None

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return {model: rule.describe() for model, rule in self._rules.items()}

    # -- counters --------------------------------------------------------------------

    def record(self, *, model: str, method: str, status: int, images: int = 0,
               prompt_tokens: int = 0, output_tokens: int = 0, note: str = "") -> None:
        with self._lock:
            self._total += 1
            counter = self._models.setdefault(model, _empty_counter())
            counter["requests"] += 1
            counter["by_method"][method] = counter["by_method"].get(method, 0) + 1
            key = str(status)
            counter["by_status"][key] = counter["by_status"].get(key, 0) + 1
            counter["images"] += images
            counter["prompt_tokens"] += prompt_tokens
            counter["output_tokens"] += output_tokens
            self._recent.append({"model": model, "method": method, "status": status,
                                 "images": images, "note": note[:120]})

    def requests(self, model: str, method: str | None = None) -> int:
        """How many requests reached ``model`` (optionally one method only)."""
        with self._lock:
            counter = self._models.get(model.removeprefix("models/"))
            if counter is None:
                return 0
            if method is None:
                return int(counter["requests"])
            return int(counter["by_method"].get(method, 0))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            models = {name: {**c, "by_method": dict(c["by_method"]),
                             "by_status": dict(c["by_status"])}
                      for name, c in self._models.items()}
            recent = list(self._recent)
            total = self._total
        return {"total_requests": total, "models": models, "recent": recent,
                "faults": self.faults(), "latency": self.config.latency}

    def reset(self) -> None:
        """Zero the counters and restore the configured fault rules."""
        rules = parse_rules(self.config.faults)
        with self._lock:
            self._models.clear()
            self._recent.clear()
            self._total = 0
            self._rules = rules
