"""Canaries: a share of a registry model's traffic tried on a candidate version.

A request names a model (the *control*, e.g. ``flux-dev``); while a canary runs, a
fixed share of users — the same users every time (sticky) — are served by the
*candidate*, another registry row (e.g. ``flux-dev-v2``). Jobs record which arm served
them, so latency, failures, cost and ratings compare per arm. A guard rolls the canary
back by itself when the candidate fails too often or is rated too low over enough
jobs; promoting it is one admin action. Every decision is kept, with its figures.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from generation.models.registry import AIModel


class CanaryStatus(models.TextChoices):
    RUNNING = "running", "Running"
    ROLLED_BACK = "rolled_back", "Rolled back"
    PROMOTED = "promoted", "Promoted"
    STOPPED = "stopped", "Stopped"


class CanaryArm(models.TextChoices):
    CONTROL = "control", "Control"
    CANDIDATE = "candidate", "Candidate"


class Canary(models.Model):
    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="canaries",
                              help_text="The model requests name (the control)")
    candidate = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="+",
                                  help_text="The version tried on a share of its traffic")
    share = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.100"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        help_text="Share of users (0-1) the candidate serves; a user stays in their arm")
    status = models.CharField(max_length=20, choices=CanaryStatus.choices,
                              default=CanaryStatus.RUNNING, db_index=True)
    max_failure_rate = models.DecimalField(
        max_digits=4, decimal_places=3, default=Decimal("0.200"),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        help_text="Roll back when more of the candidate's finished jobs than this fail")
    min_rating = models.DecimalField(
        max_digits=3, decimal_places=2, null=True, blank=True,
        validators=[MinValueValidator(Decimal(1)), MaxValueValidator(Decimal(5))],
        help_text="Roll back when the candidate's images average below this (1-5); "
                  "empty: ratings do not roll back")
    min_samples = models.PositiveIntegerField(
        default=20, validators=[MinValueValidator(1)],
        help_text="Finished jobs (and, for the rating, ratings) the candidate needs "
                  "before the guard judges it")
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name_plural = "canaries"
        constraints = [models.UniqueConstraint(
            fields=["model"], condition=models.Q(status__in=["running", "promoted"]),
            name="canary_one_live_per_model")]

    def __str__(self) -> str:
        return f"{self.model.slug} → {self.candidate.slug} ({self.share:.0%}, {self.status})"


class CanaryDecision(models.Model):
    """What the guard or an admin decided about a canary, and the figures it saw."""

    canary = models.ForeignKey(Canary, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=20)  # started, rolled_back, promoted, stopped
    reason = models.CharField(max_length=300)
    figures = models.JSONField(default=dict)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                           blank=True, related_name="+", help_text="Empty: the guard")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.action}: {self.reason}"
