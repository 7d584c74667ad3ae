"""The one NinjaAPI: every app's router is mounted here, errors are mapped here.

Every error body has the same shape: ``{code, message, errors: [{field, problem}]}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from brenia.accounts.api import router as keys_router
from brenia.accounts.auth import api_auth
from brenia.billing.api import router as usage_router
from brenia.errors import DomainError, FieldProblem, InvalidInput
from brenia.inputs import MAX_JSON_DEPTH, json_problems
from generation.api.openapi import extend_openapi
from generation.api.routes import router as generation_router
from generation.outbound.api import router as webhooks_router
from templates_app.api import router as templates_router
from templates_app.openapi import extend_openapi as extend_templates_openapi

logger = logging.getLogger(__name__)

OpenAPIExtension = Callable[[dict[str, Any]], None]


class BreniaAPI(NinjaAPI):
    """NinjaAPI whose OpenAPI document is finished by each app at request time.

    The generation app adds each enabled registry model's own input schema, so the
    docs follow the registry as admins change it, with no deploy.
    """

    openapi_extensions: list[OpenAPIExtension] = []

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        for extend in self.openapi_extensions:
            extend(schema)
        return schema


class LimitedJSONParser(Parser):
    """JSON bodies within ``brenia.inputs``' limits (depth, string length), checked as
    they are parsed: nothing downstream (pydantic, jsonschema, the database) ever
    recurses through a body nested deeper, or copies a string longer.

    A body past them is a 422 naming the field; ninja hands any parser error on as a
    400 "Cannot parse request body" caused by it, and ``on_http_error`` answers with
    the cause.
    """

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        try:
            data = json.loads(request.body)
        except RecursionError:  # deeper than Python's own parser goes: valid, but too deep
            raise InvalidInput("The request body is beyond Brenia's input limits.", errors=[
                FieldProblem("body", f"is nested more than {MAX_JSON_DEPTH} levels deep")],
                code="input_limits") from None
        problems = json_problems(data, "")
        if problems:
            raise InvalidInput("The request body is beyond Brenia's input limits.",
                               errors=problems, code="input_limits")
        return cast(dict[str, Any], data)


api = BreniaAPI(
    title="Brenia API",
    version="1",
    description=(
        "Turn a marketing brief into finished images. Authenticate with "
        "`Authorization: Bearer <key>` (create one on the API keys page, at "
        "`POST /api/keys`, or with `manage.py create_api_key USERNAME`). A key has scopes: "
        "`read` for every GET, `generate` to create, cancel or retry work and rate images, "
        "`admin` for account management (API keys, the webhook secret, brand kit writes). "
        "A key without the scope an operation needs is answered 403 `insufficient_scope`."
    ),
    auth=api_auth,
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=LimitedJSONParser(),
)


def error_body(code: str, message: str,
               errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors or []}


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    response = api.create_response(request, exc.as_dict(), status=exc.status_code)
    # An error may say when to come back (a plan's rate or cap: Retry-After).
    for name, value in getattr(exc, "headers", {}).items():
        response[name] = value
    return response


def _loc_to_field(loc: list[Any]) -> str:
    # ninja prefixes the parameter source ("body", "query", "path") and the
    # parameter name; keep what names the field in the client's own request.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "payload":
        parts = parts[1:]
    return ".".join(parts) or "body"


_PROBLEMS = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "extra_forbidden": "is not an accepted field",
    "uuid_parsing": "must be a UUID",
    "string_pattern_mismatch": "has characters that are not allowed",
    "enum": "is not one of the accepted values",
    "less_than_equal": "is too large",
    "greater_than_equal": "is too small",
}


def _problem(error: dict[str, Any]) -> str:
    kind, ctx = str(error.get("type")), error.get("ctx") or {}
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"must be at least {least} characters"
    # Our own validators (PydanticCustomError) write their message as a problem.
    return _PROBLEMS.get(kind, str(error.get("msg", "is invalid")))


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [{"field": _loc_to_field(list(e.get("loc", []))), "problem": _problem(e)}
              for e in exc.errors]
    return api.create_response(
        request, error_body("validation_error", "The request has invalid fields.", errors),
        status=422)


@api.exception_handler(AuthenticationError)
def on_auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = api.create_response(request, error_body(
        "unauthorized",
        "Authentication required: send 'Authorization: Bearer <api key>' or log in."),
        status=401)
    response["WWW-Authenticate"] = 'Bearer realm="brenia"'
    return response


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    message = str(exc)
    if isinstance(exc.__cause__, DomainError):  # the parser's own answer (input limits)
        return on_domain_error(request, exc.__cause__)
    if exc.status_code == 400 and message.startswith("Cannot parse request body"):
        return api.create_response(request, error_body(
            "malformed_json", "The request body is not valid JSON.",
            [{"field": "body", "problem": "is not valid JSON"}]), status=400)
    if exc.status_code == 403 and "CSRF" in message:
        # ninja's session auth checks CSRF before it looks for a session; a request
        # with no session cookie (a bad or missing API key) is simply unauthenticated.
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return on_auth_error(request, AuthenticationError())
        return api.create_response(request, error_body(
            "csrf_failed", "CSRF check failed: send the csrftoken with session requests."),
            status=403)
    return api.create_response(request, error_body(f"http_{exc.status_code}", message),
                               status=exc.status_code)


@api.exception_handler(RequestDataTooBig)
def on_body_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return api.create_response(request, error_body(
        "request_too_large", f"The request body is larger than {limit} bytes.",
        [{"field": "body", "problem": f"must be at most {limit} bytes"}]), status=413)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api.create_response(request, error_body("not_found", "Not found."), status=404)


@api.exception_handler(OperationalError)
@api.exception_handler(InterfaceError)
def on_database_lost(request: HttpRequest, exc: Exception) -> HttpResponse:
    # A restart or failover of the database: nothing was done, and trying again
    # shortly works. Not the client's fault, and not a bug of Brenia's either.
    logger.warning("database unavailable in %s %s: %r", request.method, request.path, exc)
    response = api.create_response(request, error_body(
        "database_unavailable",
        "Brenia's database is briefly unavailable. Try again in a few seconds; a request "
        "sent with an Idempotency-Key is never done twice."), status=503)
    response["Retry-After"] = "5"
    return response


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unhandled error in %s %s", request.method, request.path)
    return api.create_response(request, error_body(
        "internal_error", "Brenia hit an unexpected error. It has been logged."), status=500)


def document_scope_refusals(schema: dict[str, Any]) -> None:
    """Every operation that needs authentication may answer 403 ``insufficient_scope``
    (a key without its scope): said once here rather than on each route, with the error
    body its 401 already documents."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            # ninja keys responses by int status here; the JSON document by string.
            unauthorized = 401 if 401 in responses else "401"
            if operation.get("security") and unauthorized in responses:
                forbidden = 403 if unauthorized == 401 else "403"
                refusal = responses.setdefault(forbidden, {**responses[unauthorized]})
                if refusal.get("description") in (None, "Unauthorized", "Forbidden"):
                    refusal["description"] = (  # an operation's own words stay
                        "Forbidden: the API key lacks the scope this operation needs "
                        "(insufficient_scope), or a session request lacks its CSRF token")


api.add_router("/", keys_router)
api.add_router("/", generation_router)
api.add_router("/", webhooks_router)
api.add_router("/", templates_router)
api.add_router("/", usage_router)
api.openapi_extensions.append(extend_openapi)
api.openapi_extensions.append(document_scope_refusals)
api.openapi_extensions.append(extend_templates_openapi)
