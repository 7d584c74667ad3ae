"""Usage reports: what was spent, read off the ledger's ``settle`` entries.

Reads only (selectors). The API (``/api/usage``), the page (``/usage/``) and its CSV
export all go through the three steps here, so they always agree to the cent:

1. ``usage_scope_for_user``: whose entries the viewer may read (their own, a team they
   own, or, for staff, everyone's). A team they do not own is not found, never
   forbidden; ``everyone`` for a non-staff user is a 403 naming the field.
2. ``usage_period``: the viewer's days (``from``/``to``, inclusive, in their time zone)
   as an aware [start, end) window, checked: real dates, in order, at most a year.
3. ``usage_report``: rows grouped by model, template, day, user or team, per currency,
   with totals and the day-by-model series the page's chart draws.

Spend is the sum of settled amounts: the provider's actual cost of each completed job.
Holds and releases are never spend. Names come from the entries' own copies (username,
model and template slugs), so a report outlives registry edits and deleted users.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from brenia.accounts.models import Team, TeamRole
from brenia.accounts.selectors import team_get_for_user, team_list_for_user
from brenia.billing.models import LedgerEntry, LedgerKind
from brenia.errors import FieldProblem, InvalidInput, NotFound, NotPermitted
from generation.models import Image

GroupBy = Literal["model", "template", "day", "user", "team"]
GROUP_BYS: tuple[GroupBy, ...] = ("model", "template", "day", "user", "team")
# A year, leap day included: long enough for any annual report, short enough that the
# chart and the day grouping stay a few hundred rows.
MAX_DAYS = 366
CENT_PLACES = Decimal("0.000001")  # the ledger's own precision: nothing is rounded away
DEFAULT_CURRENCY = "USD"

_GROUP_FIELDS: dict[str, str] = {
    "model": "model_slug", "template": "template_slug", "user": "username",
    "team": "team__slug",
}


def owned_teams(*, user: Any) -> QuerySet[Team]:
    """The teams whose usage ``user`` may read: the ones they own."""
    return team_list_for_user(user=user).filter(
        memberships__user=user, memberships__role=TeamRole.OWNER)


def usage_scope_for_user(*, user: Any, team: str | None = None,
                         everyone: bool = False) -> QuerySet[LedgerEntry]:
    """The ledger entries ``user`` may report on.

    By default their own (what they submitted, under any team). ``team``: that team's
    entries, whoever submitted them, for an owner only: any other team (one they are a
    plain member of, or not in at all) is not found, as everywhere else. ``everyone``:
    every entry, for staff only (a 403 ``staff_only`` naming ``all``, since what is
    refused is the question, not a row); with ``team``, any one team's.
    """
    if everyone:
        if not getattr(user, "is_staff", False):
            raise NotPermitted("Only staff may read everyone's usage.", code="staff_only",
                               errors=[FieldProblem("all", "is for staff only")])
        if team is None:
            return LedgerEntry.objects.all()
        found = Team.objects.filter(slug=team).first()
        if found is None:
            raise NotFound("There is no such team.", code="team_not_found")
        return LedgerEntry.objects.filter(team=found)
    if team is not None:
        found = team_get_for_user(user=user, team_id=team, role=TeamRole.OWNER)
        return LedgerEntry.objects.filter(team=found)
    return LedgerEntry.objects.filter(user=user)


def _day(text: str | None, name: str) -> date | None:
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:  # 2027-02-30: the pattern's shape, not a date
        raise InvalidInput("The usage period is invalid.", errors=[
            FieldProblem(name, "is not a real date (YYYY-MM-DD)")]) from None


@dataclass(frozen=True)
class Period:
    """Days ``first``..``last`` (inclusive) in ``zone``; ``start``/``end`` the aware
    [start, end) window the ledger is filtered by."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        # Local midnight after the last day: wall-clock, so a 23- or 25-hour day of a
        # summer-time change is still exactly one day.
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=self.zone)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def usage_period(*, zone: ZoneInfo, first: str | None, last: str | None,
                 now: datetime) -> Period:
    """The viewer's days ``first``..``last`` (ISO dates, both inclusive), checked.

    Missing ``last``: today (the viewer's, in ``zone``), or ``first`` if that is later;
    missing ``first``: the first of ``last``'s month. So no parameters mean "this month
    so far". Problems name the request's fields, ``from`` and ``to``.
    """
    today = now.astimezone(zone).date()
    start_day = _day(first, "from")
    end_day = _day(last, "to")
    if end_day is None:
        end_day = max(today, start_day) if start_day else today
    if start_day is None:
        start_day = min(end_day.replace(day=1), end_day)
    if start_day > end_day:
        raise InvalidInput("The usage period is invalid.", errors=[
            FieldProblem("from", "must not be after to")])
    if (end_day - start_day).days + 1 > MAX_DAYS:
        raise InvalidInput("The usage period is invalid.", errors=[
            FieldProblem("to", f"must be at most {MAX_DAYS} days after from")])
    return Period(first=start_day, last=end_day, zone=zone)


@dataclass
class UsageRow:
    key: str
    currency: str
    spend: Decimal
    jobs: int
    images: int


@dataclass
class UsageReport:
    period: Period
    group_by: str
    rows: list[UsageRow]
    totals: list[UsageRow]  # one per currency, ``key`` empty
    # (day, model slug, spend) in ``currency`` only: what the chart stacks.
    series: list[tuple[date, str, Decimal]] = field(default_factory=list)

    @property
    def currency(self) -> str:
        """The report's currency: its largest spend's, USD when there is none."""
        return self.totals[0].currency if self.totals else DEFAULT_CURRENCY

    @property
    def total(self) -> UsageRow:
        if self.totals:
            return self.totals[0]
        return UsageRow(key="", currency=DEFAULT_CURRENCY, spend=Decimal(0).quantize(
            CENT_PLACES), jobs=0, images=0)


def _images_of_job() -> Subquery:
    return Subquery(Image.objects.filter(job=OuterRef("job_id")).order_by()
                    .values("job").annotate(n=Count("pk")).values("n"),
                    output_field=IntegerField())


def _spend(value: Decimal | None) -> Decimal:
    return (value or Decimal(0)).quantize(CENT_PLACES)


def usage_report(*, entries_scope: QuerySet[LedgerEntry], period: Period,
                 group_by: str) -> UsageReport:
    """Settled spend in ``period``, grouped by ``group_by``, per currency.

    ``jobs`` counts settled jobs (one ``settle`` per job, by the ledger's constraint);
    ``images`` the images those jobs made (a job deleted since counts none). Rows are
    biggest spend first; ``day`` rows are in date order instead. Totals are sums over
    the same entries, never over the rounded rows.
    """
    if group_by not in GROUP_BYS:
        raise InvalidInput("The usage report is invalid.", errors=[
            FieldProblem("group_by", "is not one of the accepted values")])
    settled = (entries_scope.filter(kind=LedgerKind.SETTLE, created_at__gte=period.start,
                                    created_at__lt=period.end)
               .annotate(images=Coalesce(_images_of_job(), Value(0)),
                         day=TruncDate("created_at", tzinfo=period.zone))
               .order_by())
    key = F("day") if group_by == "day" else Coalesce(F(_GROUP_FIELDS[group_by]), Value(""))
    grouped = (settled.annotate(key=key).values("key", "currency")
               .annotate(spend=Sum("amount"), jobs=Count("pk"), image_count=Sum("images")))
    rows = [UsageRow(key=_key_text(r["key"]), currency=r["currency"], spend=_spend(r["spend"]),
                     jobs=r["jobs"], images=r["image_count"] or 0) for r in grouped]
    if group_by == "day":
        rows.sort(key=lambda r: (r.key, r.currency))
    else:
        rows.sort(key=lambda r: (-r.spend, r.key, r.currency))
    totals = [UsageRow(key="", currency=t["currency"], spend=_spend(t["spend"]),
                       jobs=t["jobs"], images=t["image_count"] or 0)
              for t in settled.values("currency").annotate(
                  spend=Sum("amount"), jobs=Count("pk"), image_count=Sum("images"))]
    totals.sort(key=lambda t: (-t.spend, t.currency))
    report = UsageReport(period=period, group_by=group_by, rows=rows, totals=totals)
    # Typed loosely: the stubs cannot see the ``day`` annotation the series groups by.
    report.series = _series(settled, report.currency)
    return report


def _key_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value or "")


def _series(settled: QuerySet[Any], currency: str) -> list[tuple[date, str, Decimal]]:
    per: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
    for r in (settled.filter(currency=currency).values("day", "model_slug")
              .annotate(spend=Sum("amount"))):
        per[(r["day"], r["model_slug"])] += r["spend"] or Decimal(0)
    return sorted(((day, model, _spend(spend)) for (day, model), spend in per.items()
                   if spend > 0), key=lambda s: (s[0], s[1]))
