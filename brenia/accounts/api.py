"""The API key routes: list, create (the raw key answered once) and revoke your keys.

All of them need the "admin" scope (or a browser session): a key that can mint keys
can do anything its owner can.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from brenia.accounts import selectors, services
from brenia.accounts.auth import admin_auth
from brenia.accounts.models import ApiKey
from brenia.errors import FieldProblem, InvalidInput
from brenia.schemas import ErrorOut, auth_user

router = Router(tags=["api keys"], auth=admin_auth)

# Not blank, and no NUL (no database stores it): refused in the schema, so the document
# and the API agree on every name.
NAME_PATTERN = r"^[^\x00]*[^\x00\s][^\x00]*$"
# RFC 3339 with an offset, as the pattern says exactly; whether the date is real and
# ahead (and within ten years) is the service's to say, a 422 naming expires_at.
DATE_TIME_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                     r"(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$")
LIST_MAX = 200

Scope = Literal["generate", "read", "admin"]


def _default_scopes() -> list[Scope]:
    return ["generate", "read"]


class ApiKeyIn(Schema):
    model_config = {"extra": "forbid"}

    name: str = Field(..., min_length=1, max_length=services.NAME_MAX, pattern=NAME_PATTERN)
    scopes: list[Scope] = Field(default_factory=_default_scopes, min_length=1, max_length=3,
                                description="What the key may do; generate and read if absent")
    expires_at: str | None = Field(None, max_length=40, pattern=DATE_TIME_PATTERN,
                                   description="When it stops working (RFC 3339, with an "
                                               "offset), within ten years")
    expires_in_days: int | None = Field(None, ge=1, le=services.MAX_LIFETIME.days,
                                        description="Or: days from now until it stops working")


class ApiKeyOut(Schema):
    id: int
    name: str
    prefix: str = Field(..., description="The key's first characters, to tell keys apart")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(..., description="The key itself: shown this once, never again")


def api_key_state(key: ApiKey) -> dict[str, Any]:
    return {"id": key.pk, "name": key.name, "prefix": key.prefix, "scopes": list(key.scopes),
            "created_at": key.created_at, "expires_at": key.expires_at,
            "last_used_at": key.last_used_at, "revoked_at": key.revoked_at}


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # 2027-02-30: the pattern's shape, not a date
        raise InvalidInput("The API key has invalid fields.", errors=[
            FieldProblem("expires_at", "is not a real date and time")]) from None


@router.get("/keys", response={200: list[ApiKeyOut], 401: ErrorOut, 403: ErrorOut,
                               500: ErrorOut},
            summary="Your API keys, newest first (revoked ones too)")
def list_keys(request: HttpRequest) -> Any:
    keys = selectors.api_key_list_for_user(user=auth_user(request))[:LIST_MAX]
    return [api_key_state(key) for key in keys]


@router.post("/keys", response={201: ApiKeyCreatedOut, 400: ErrorOut, 401: ErrorOut,
                                403: ErrorOut, 413: ErrorOut, 422: ErrorOut, 500: ErrorOut},
             summary="Create an API key; the answer holds the key, shown this once")
def create_key(request: HttpRequest, payload: ApiKeyIn) -> Any:
    key, raw = services.api_key_create(
        user=auth_user(request), name=payload.name, scopes=payload.scopes,
        expires_at=_moment(payload.expires_at), expires_in_days=payload.expires_in_days)
    return Status(201, {**api_key_state(key), "key": raw})


@router.delete("/keys/{key_id}", response={204: None, 401: ErrorOut, 403: ErrorOut,
                                           404: ErrorOut, 500: ErrorOut},
               summary="Revoke one of your keys; sockets opened with it close")
def revoke_key(request: HttpRequest, key_id: str) -> Any:
    key = selectors.api_key_get_for_user(user=auth_user(request), key_id=key_id)
    services.api_key_revoke(key=key)
    return Status(204, None)
