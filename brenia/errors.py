"""Domain errors shared by every app, mapped to HTTP in one place (brenia.api).

Each carries a stable machine-readable ``code``, a human ``message`` and, where
the problem is with the request, the offending fields.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


class DomainError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, errors: list[FieldProblem] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        if code:
            self.code = code

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message,
                "errors": [e.as_dict() for e in self.errors]}


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Forbidden(DomainError):
    """The caller may see the thing but not do this to it (a team member who is not its
    owner). Only where existence is no secret: for other people's rows, NotFound."""

    status_code = 403
    code = "forbidden"


class InvalidInput(DomainError):
    status_code = 422
    code = "validation_error"


class NotPermitted(InvalidInput):
    """A value the request may not send without a permission it lacks (403). Named by
    field like any invalid input, so every page and handler that shows those shows it."""

    status_code = 403
    code = "not_permitted"


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "unavailable"
