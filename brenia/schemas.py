"""Schemas every API router shares: the one error body, and who is asking."""

from __future__ import annotations

import hashlib
from typing import Any

from django.http import HttpRequest
from ninja import Field, Schema


class ErrorItem(Schema):
    field: str
    problem: str


class LimitOut(Schema):
    name: str = Field(..., description="The plan's limit: daily_high_res_cap, "
                      "concurrent_jobs_per_user, monthly_budget_hard or allowed_models")
    value: str = Field(..., description="Its value in the user's plan")
    resets_at: str | None = Field(..., description="When it resets (ISO 8601), if it does")


class ErrorOut(Schema):
    code: str
    message: str
    errors: list[ErrorItem]
    limit: LimitOut | None = Field(None, description="Only on a plan's refusal (403)")


# A team by slug (or id, all digits), as a Team's slug may be spelled; "" files the work
# as the submitter's own. Whether it is one of theirs is the service's to say (422).
TEAM_PATTERN = r"^[-a-zA-Z0-9_]*$"


def team_in(thing: str) -> Any:
    """The optional ``team`` field of a request that files ``thing`` under a team."""
    return Field(None, max_length=60, pattern=TEAM_PATTERN, description=(
        f"A team of yours (slug or id) to share the {thing} with; \"\": yours alone. "
        "Absent: your only team, if you belong to exactly one"))


def team_out(thing: str) -> Any:
    return Field(..., description=f"The team the {thing} is shared with (its slug), "
                                  "or null: its owner's alone")


def auth_user(request: HttpRequest) -> Any:
    """The user ninja's authentication attached to the request."""
    return request.auth  # type: ignore[attr-defined]


def request_client(request: HttpRequest) -> str:
    """Which credential a request came with, for limits per key: the API key (by its
    digest, never the key itself), else the session's user."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return "key:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"user:{auth_user(request).pk}"
