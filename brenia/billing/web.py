"""The usage page (``/usage/``) and its CSV export (``/usage/export.csv``).

Both read the same query (from, to, group_by, whose) and go through the selectors in
``brenia.billing.usage`` that ``GET /api/usage`` uses, so the page, the file and the API
show the same figures. "Whose" offers only what the viewer may read: their own usage,
each team they own, and everyone's for staff; anything else is an invalid choice.
"""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe

from brenia.billing import usage
from brenia.billing.chart import usage_chart
from brenia.errors import InvalidInput

GROUP_BY_CHOICES = [("model", "Model"), ("template", "Template"), ("day", "Day"),
                    ("user", "User"), ("team", "Team")]
GROUP_BY_LABELS = dict(GROUP_BY_CHOICES)
ME, EVERYONE, TEAM_PREFIX = "me", "all", "team:"
# Spreadsheets run a cell that starts with one of these as a formula; usernames may.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class UsageForm(forms.Form):
    """The query, as the page's filter form. The dates are text checked by the selector
    (real dates, in order, at most a year), so the page and the API say the same; the
    browser shows a date picker. Fields are named as in the query: ``from`` too."""

    to = forms.CharField(label="To", required=False,
                         widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(label="Group by", choices=GROUP_BY_CHOICES, required=False)
    whose = forms.ChoiceField(label="Whose usage", required=False)

    def __init__(self, data: Any, *, user: Any) -> None:
        super().__init__(data, label_suffix="")
        # "from" is a Python keyword, so it cannot be declared above; first in the form.
        self.fields = {"from": forms.CharField(
            label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})),
            **self.fields}
        choices = [(ME, "Mine")]
        choices += [(f"{TEAM_PREFIX}{team.slug}", f"Team {team.name}")
                    for team in usage.owned_teams(user=user)]
        if user.is_staff:
            choices.append((EVERYONE, "Everyone (staff)"))
        self.fields["whose"].choices = choices  # type: ignore[attr-defined]

    def add_problems(self, exc: InvalidInput) -> None:
        names = {"from": "from", "to": "to", "group_by": "group_by", "all": "whose",
                 "team": "whose"}
        for problem in exc.errors:
            field = names.get(problem.field)
            self.add_error(field, f"{problem.field.capitalize()} {problem.problem}.")


def _report(request: HttpRequest) -> tuple[UsageForm, usage.UsageReport | None]:
    """The form bound to the query, and its report (None if the query is invalid)."""
    user: Any = request.user  # login_required: a User, with a time zone
    form = UsageForm(request.GET, user=user)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    whose = data["whose"] or ME
    try:
        scope = usage.usage_scope_for_user(
            user=user, everyone=whose == EVERYONE,
            team=whose.removeprefix(TEAM_PREFIX) if whose.startswith(TEAM_PREFIX) else None)
        period = usage.usage_period(zone=user.zone, first=data["from"],
                                    last=data["to"], now=timezone.now())
        report = usage.usage_report(entries_scope=scope, period=period,
                                    group_by=data["group_by"] or "model")
    except InvalidInput as exc:  # its 403 kind (staff only) too: a choice not offered
        form.add_problems(exc)
        return form, None
    return form, report


@login_required
@require_safe
def usage_page(request: HttpRequest) -> HttpResponse:
    form, report = _report(request)
    context: dict[str, Any] = {"form": form, "report": report, "chart": None}
    if report is not None:
        # The form shows the period actually used (by default, this month so far).
        effective = {"from": report.period.first.isoformat(),
                     "to": report.period.last.isoformat(), "group_by": report.group_by,
                     "whose": form.cleaned_data["whose"] or ME}
        form = UsageForm(effective, user=request.user)
        form.is_valid()
        context.update(form=form, chart=usage_chart(report),
                       group_label=GROUP_BY_LABELS[report.group_by],
                       export_url=f"{reverse('usage_export')}?{urlencode(effective)}")
    return render(request, "billing/usage.html", context, status=200 if report else 422)


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@login_required
@require_safe
def usage_export(request: HttpRequest) -> HttpResponse:
    """The grouped rows as CSV: a header, then one row per group and currency, amounts
    as plain decimals (the ledger's six places), for a spreadsheet or finance."""
    form, report = _report(request)
    if report is None:
        problems = "; ".join(f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in
                             form.errors.items())
        return HttpResponse(f"The usage query is invalid. {problems}\n", status=422,
                            content_type="text/plain; charset=utf-8")
    period = report.period
    name = (f"brenia-usage-{period.first.isoformat()}-to-{period.last.isoformat()}"
            f"-by-{report.group_by}.csv")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow([report.group_by, "currency", "spend", "jobs", "images"])
    for row in report.rows:
        writer.writerow([_cell(row.key), row.currency, str(row.spend), row.jobs, row.images])
    return response
