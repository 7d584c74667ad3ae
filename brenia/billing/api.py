"""``GET /api/usage``: settled spend over the viewer's days, grouped, with totals.

Thin: the query is parsed here; who may read what, the period and the sums are
``brenia.billing.usage``'s, shared with the usage page and its CSV export. Every query
parameter has an exact schema (an enum, a date pattern, a slug pattern) so the document
and the API agree on what is refused before any of it is read.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema

from brenia.billing import usage
from brenia.billing.usage import GroupBy
from brenia.schemas import ErrorOut, auth_user

router = Router(tags=["usage"])

# The shape of an ISO date; whether it is a real one (2027-02-30 is not) is for the
# selector to say, a 422 naming the field.
DATE_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
TEAM_SLUG_PATTERN = r"^[-a-zA-Z0-9_]+$"


class UsageRowOut(Schema):
    key: str = Field(..., description="The group: a model or template slug, a day "
                     "(YYYY-MM-DD), a username or a team slug; empty when there is none "
                     "(work outside any template or team)")
    currency: str
    spend: str = Field(..., description="Settled spend, a decimal string")
    jobs: int = Field(..., description="Settled (completed) jobs")
    images: int = Field(..., description="Images those jobs made")


class UsageTotalOut(Schema):
    currency: str
    spend: str
    jobs: int
    images: int


class UsageOut(Schema):
    from_: str = Field(..., alias="from", description="First day, in the viewer's time zone")
    to: str = Field(..., description="Last day (inclusive)")
    time_zone: str = Field(..., description="The viewer's time zone the days are in")
    group_by: str
    currency: str = Field(..., description="The currency of ``total``")
    rows: list[UsageRowOut]
    total: UsageTotalOut
    totals: list[UsageTotalOut] = Field(..., description="One per currency spent in")


def usage_body(report: usage.UsageReport) -> dict[str, Any]:
    def total(row: usage.UsageRow) -> dict[str, Any]:
        return {"currency": row.currency, "spend": str(row.spend), "jobs": row.jobs,
                "images": row.images}

    return {
        "from": report.period.first.isoformat(), "to": report.period.last.isoformat(),
        "time_zone": str(report.period.zone), "group_by": report.group_by,
        "currency": report.currency,
        "rows": [{"key": r.key, **total(r)} for r in report.rows],
        "total": total(report.total), "totals": [total(t) for t in report.totals],
    }


@router.get("/usage", response={200: UsageOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut,
                                422: ErrorOut, 500: ErrorOut},
            by_alias=True,
            summary="Settled spend over your days, grouped by model, template, day, user "
                    "or team",
            description="Days are in your time zone, `from` and `to` inclusive (by default "
                        "this month so far), at most 366 of them. Your own usage by default; "
                        "`team`: a team you own (404 for any other); `all=true`: everyone's, "
                        "for staff only (403 `staff_only`), or with `team` any one team's.")
def get_usage(
    request: HttpRequest,
    from_: str | None = Query(None, alias="from", max_length=10, pattern=DATE_PATTERN,
                              description="First day, YYYY-MM-DD"),
    to: str | None = Query(None, max_length=10, pattern=DATE_PATTERN,
                           description="Last day (inclusive), YYYY-MM-DD"),
    group_by: GroupBy = "model",
    team: str | None = Query(None, min_length=1, max_length=60, pattern=TEAM_SLUG_PATTERN,
                             description="A team you own, by slug"),
    everyone: bool = Query(False, alias="all", description="Everyone's usage (staff only)"),
) -> Any:
    user = auth_user(request)
    scope = usage.usage_scope_for_user(user=user, team=team, everyone=everyone)
    period = usage.usage_period(zone=user.zone, first=from_, last=to, now=timezone.now())
    return usage_body(usage.usage_report(entries_scope=scope, period=period,
                                         group_by=group_by))
