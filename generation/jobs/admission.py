"""A job's admission: the seam where plug-ins (billing) accept or refuse a new job.

``job_create`` (and a template run's start) calls ``job_admit`` inside the very
transaction that inserts the Job row, right after the insert. Each hook registered
with ``@job_admission_hook`` may lock rows, check limits against what is already
committed and write (a cost hold): a refusal is an exception, which rolls the Job
row back with everything else, so a refused request leaves nothing behind.

Hooks are registered in ``AppConfig.ready()``, like the job-finished hooks: the
engine never imports the apps that enforce plans and budgets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from brenia.errors import DomainError, FieldProblem, NotPermitted
from generation.models import Job


@dataclass(frozen=True)
class Admission:
    """What a hook is told: the new job (already inserted, uncommitted) and who sent it.

    ``client`` names the credential the request came with (an API key's digest, or
    ``user:<id>`` for a browser session); empty when Brenia itself made the job (a
    template run's step), which no per-key rate applies to.
    """

    job: Job
    client: str = ""


class LimitReached(NotPermitted):
    """A plan's limit refuses the job (403): which limit, its value, when it resets.

    A kind of NotPermitted, named by field, so every page and the template-run engine
    that already show or record a refusal show this one too.
    """

    def __init__(self, message: str, *, code: str, limit: str, value: object,
                 resets_at: datetime | None = None, retry_after: int | None = None,
                 field: str = "model") -> None:
        super().__init__(message, errors=[FieldProblem(field, message)], code=code)
        self.limit, self.value, self.resets_at = limit, value, resets_at
        self.headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "limit": {
            "name": self.limit, "value": str(self.value),
            "resets_at": self.resets_at.isoformat() if self.resets_at else None}}


class RateLimited(DomainError):
    """Too many requests from one key in the current window (429, Retry-After)."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


AdmissionHook = Callable[[Admission], None]
_hooks: list[AdmissionHook] = []


def job_admission_hook(hook: AdmissionHook) -> AdmissionHook:
    """Register ``hook`` to run in every new job's creating transaction."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def job_admission_hook_remove(hook: AdmissionHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def job_admit(*, job: Job, client: str = "") -> None:
    """Run every admission hook on ``job``. Precondition: inside the transaction that
    inserted it, so a refusal (the hook's exception, passed on) undoes the insert."""
    admission = Admission(job=job, client=client)
    for hook in list(_hooks):
        hook(admission)
