"""Idempotency-Key: a retried POST gets back what the first one made.

A row made under a key stores the key and a fingerprint of the request. The same key
with the same request returns that row; with another request it is a 409, since the
client is reusing a key by mistake.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from brenia.errors import Conflict

M = TypeVar("M", bound=Model)


def request_fingerprint(**parts: Any) -> str:
    """A stable hash of a request's parts (key order and value types do not matter)."""
    body = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def replayed(rows: QuerySet[M], *, key: str, fingerprint: str) -> M | None:
    """The row of ``rows`` (already narrowed to the caller) made under ``key``, if any.

    Raises Conflict when that row was made by a different request."""
    row = rows.filter(idempotency_key=key).first()
    if row is not None and getattr(row, "request_fingerprint", None) != fingerprint:
        raise Conflict("This Idempotency-Key was already used with a different request.",
                       code="idempotency_key_reused")
    return row
