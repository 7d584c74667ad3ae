"""google.rpc.Status errors, in the JSON envelope the Gemini API sends (spec §4).

Handlers raise ``RpcError``; the app turns it into a response whose HTTP status equals
``code`` and whose content type is ``application/json; charset=UTF-8``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

TROUBLESHOOTING = "https://developers.generativeai.google/guide/troubleshooting"
RATE_LIMIT_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"
_TYPE = "type.googleapis.com/google.rpc."


class RpcError(Exception):
    """An API error: becomes ``{"error": {code, message, status, details}}``."""

    def __init__(self, code: int, message: str, *, status: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message,
                                 "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> web.Response:
        return json_response(self.body(), status=self.code)


def json_response(payload: Any, *, status: int = 200) -> web.Response:
    """A JSON response with the exact content type Google sends."""
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": JSON_CONTENT_TYPE, "X-Content-Type-Options": "nosniff",
                 "Vary": "Origin, X-Origin, Referer"},
    )


def bad_request(message: str, *, field: str | None = None) -> RpcError:
    details = None
    if field is not None:
        details = [{"@type": _TYPE + "BadRequest",
                    "fieldViolations": [{"field": field, "description": message}]}]
    return RpcError(400, message, details=details)


def invalid_value(field: str, type_name: str, value: Any) -> RpcError:
    """The proto-JSON parser's message for a value of the wrong type or enum."""
    shown = json.dumps(value) if not isinstance(value, str) else f'"{value}"'
    return bad_request(f"Invalid value at '{field}' ({type_name}), {shown}", field=field)


def api_key_invalid() -> RpcError:
    message = "API key not valid. Please pass a valid API key."
    return RpcError(400, message, details=[
        {"@type": _TYPE + "ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
         "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": _TYPE + "LocalizedMessage", "locale": "en-US", "message": message},
    ])


def unregistered_caller() -> RpcError:
    return RpcError(403, "Method doesn't allow unregistered callers (callers without "
                         "established identity). Please use API Key or other form of API "
                         "consumer identity to call this API.")


def model_not_found(model_id: str, api_version: str, method: str) -> RpcError:
    return RpcError(404, f"models/{model_id} is not found for API version {api_version}, or "
                         f"is not supported for {method}. Call ListModels to see the list "
                         "of available models and their supported methods.")


def not_found(message: str = "Method not found.") -> RpcError:
    return RpcError(404, message)


def quota_exhausted(model_id: str, retry_delay_s: float | None) -> RpcError:
    metric = "generativelanguage.googleapis.com/generate_content_paid_tier_requests"
    message = ("You exceeded your current quota, please check your plan and billing details. "
               f"For more information on this error, head to: {RATE_LIMIT_DOCS}. "
               "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. "
               f"\n* Quota exceeded for metric: {metric}, limit: 10, model: {model_id}")
    details: list[dict[str, Any]] = [
        {"@type": _TYPE + "QuotaFailure", "violations": [{
            "quotaMetric": metric,
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
            "quotaDimensions": {"location": "global", "model": model_id},
            "quotaValue": "10"}]},
        {"@type": _TYPE + "Help", "links": [
            {"description": "Learn more about Gemini API quotas", "url": RATE_LIMIT_DOCS}]},
    ]
    if retry_delay_s is not None:
        message += f"\nPlease retry in {retry_delay_s:g}s."
        details.append({"@type": _TYPE + "RetryInfo", "retryDelay": _duration(retry_delay_s)})
    return RpcError(429, message, details=details)


def internal() -> RpcError:
    return RpcError(500, "An internal error has occurred. Please retry or report in "
                         f"{TROUBLESHOOTING}")


def unavailable() -> RpcError:
    return RpcError(503, "The model is overloaded. Please try again later.")


def deadline_exceeded() -> RpcError:
    return RpcError(504, "Deadline expired before operation could complete.")


def for_code(code: int, *, model_id: str, retry_delay_s: float | None = 1.0) -> RpcError:
    """The canned error the fault injector sends for an HTTP ``code``."""
    if code == 429:
        return quota_exhausted(model_id, retry_delay_s)
    if code == 500:
        return internal()
    if code == 503:
        return unavailable()
    if code in (408, 504):
        return deadline_exceeded() if code == 504 else RpcError(408, "Request timed out.")
    if code == 403:
        return RpcError(403, "Permission denied: Consumer has been suspended.")
    if code == 404:
        return model_not_found(model_id, "v1beta", "generateContent")
    if code == 400:
        return bad_request("Request contains an invalid argument.")
    raise ValueError(f"no canned error for HTTP {code}")


def _duration(seconds: float) -> str:
    """A protobuf Duration in JSON form: "43s", "1.5s"."""
    return f"{seconds:g}s"
