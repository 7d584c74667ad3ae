"""Plans (what a user may do), their assignment, and the ledger (what was spent).

The ledger is append-only and exact: per job at most one ``hold`` (the quote, at
submit), then at most one ``settle`` (the provider's actual cost, at completion) or
one ``release`` (at failure or cancel). The unique (job, kind) constraint makes each
happen once, whoever finishes the job and however often.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class Plan(models.Model):
    """Limits a user's submissions are checked against. Empty/None means unlimited."""

    name = models.CharField(max_length=80, unique=True)
    is_default = models.BooleanField(
        default=False, help_text="The plan of every user without an assignment")
    daily_high_res_cap = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="High-resolution images a day, from the user's local midnight; "
                  "empty = unlimited")
    high_res_megapixels = models.DecimalField(
        max_digits=6, decimal_places=2, default=Decimal("4"),
        help_text="An image of at least this many output megapixels is high-resolution")
    allowed_models = models.ManyToManyField(
        "generation.AIModel", blank=True, related_name="+",
        help_text="Models the plan may use; none selected = every model")
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Submissions per minute per API key; empty = unlimited")
    concurrent_jobs_per_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="Unfinished jobs (a template run counts once); "
                                         "empty = unlimited")
    concurrent_jobs_per_team = models.PositiveIntegerField(
        null=True, blank=True, help_text="For a team on this plan: its members' unfinished "
                                         "jobs together; empty = unlimited")
    monthly_budget_soft = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True,
        help_text="USD a calendar month (the user's or team's time zone): crossing it warns")
    monthly_budget_hard = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True,
        help_text="USD a calendar month (the user's or team's time zone): beyond it, refused")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(
            fields=["is_default"], condition=models.Q(is_default=True),
            name="plan_one_default")]

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """A user's plan assignment. No row: the default plan."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="billing_account")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")

    class Meta:
        verbose_name = "plan assignment"

    def __str__(self) -> str:
        return f"{self.user} → {self.plan}"


class TeamAccount(models.Model):
    """A team's plan: its budget and concurrency count all its members' work together.

    No row: the team has no limits of its own (each member's plan still applies).
    """

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE,
                                related_name="billing_account")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="team_accounts")

    class Meta:
        verbose_name = "team plan assignment"

    def __str__(self) -> str:
        return f"{self.team} → {self.plan}"


class LedgerKind(models.TextChoices):
    HOLD = "hold", "Hold"
    SETTLE = "settle", "Settle"
    RELEASE = "release", "Release"


CLOSING_KINDS: tuple[str, ...] = (LedgerKind.SETTLE, LedgerKind.RELEASE)


class LedgerEntry(models.Model):
    """One movement of money. It outlives its job, user and team (finance keeps the
    record): their links are cleared on deletion, and what usage groups by is copied."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             related_name="ledger_entries")
    team = models.ForeignKey("accounts.Team", on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="ledger_entries")
    job = models.ForeignKey("generation.Job", on_delete=models.SET_NULL, null=True,
                            related_name="ledger_entries")
    # Copies, for usage reports that survive registry and history edits.
    username = models.CharField(max_length=150, blank=True)
    model_slug = models.CharField(max_length=80, blank=True)
    template_slug = models.CharField(max_length=80, blank=True)
    kind = models.CharField(max_length=10, choices=LedgerKind.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=6)
    currency = models.CharField(max_length=3, default="USD")
    # On a hold: how many high-resolution images the job asked for (the daily cap's unit).
    high_res_images = models.PositiveIntegerField(default=0)
    # A top-level submission (not a template step): what budgets count as open holds.
    top_level = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "ledger entries"
        constraints = [models.UniqueConstraint(fields=["job", "kind"],
                                               name="ledger_once_per_job_and_kind")]
        indexes = [models.Index(fields=["user", "kind", "created_at"]),
                   models.Index(fields=["team", "kind", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency} for {self.job_id}"
