"""Schemas every API router shares: the one error body, and who is asking."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Schema


class ErrorItem(Schema):
    field: str
    problem: str


class ErrorOut(Schema):
    code: str
    message: str
    errors: list[ErrorItem]


def auth_user(request: HttpRequest) -> Any:
    """The user ninja's authentication attached to the request."""
    return request.auth  # type: ignore[attr-defined]
