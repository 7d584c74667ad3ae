"""The monthly-budget banner every page shows once a soft budget is crossed."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from brenia.billing.services import budget_warnings_for_user


def budget_warnings(request: HttpRequest) -> dict[str, Any]:
    """``budget_warnings``: the user's and their teams' budgets past the soft threshold.

    Lazy: counted only when a page renders the banner (base.html), never for the API.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"budget_warnings": []}
    return {"budget_warnings": SimpleLazyObject(lambda: budget_warnings_for_user(user))}
