"""Webhook secrets (one per user) and the log of every delivery and attempt."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class WebhookSecret(models.Model):
    """The key a user's deliveries are signed with (HMAC-SHA256). Never logged."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="webhook_secret")
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"webhook secret of {self.user_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event of one job, to be POSTed to the job's webhook URL until a 2xx.

    One row per job and event type, so a terminal event published twice is
    delivered once. ``payload`` is fixed from the database when the row is made;
    each attempt adds ``delivery_id`` and ``attempt`` to it. While pending,
    ``next_attempt_at`` says when the next attempt is due; an attempt in flight
    pushes it past its own timeout, so a crashed sender's attempt is retried.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey("generation.Job", on_delete=models.CASCADE,
                            related_name="webhook_deliveries")
    url = models.URLField(max_length=2000)
    event_type = models.CharField(max_length=30)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices,
                              default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["job", "event_type"],
                                    name="webhook_delivery_unique_event_per_job"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"],
                                name="webhook_delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} of {self.job_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what the receiver answered, or why there was no answer."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE,
                                 related_name="attempt_log")
    number = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["delivery", "created_at"]

    def __str__(self) -> str:
        return f"{self.delivery_id} attempt {self.number}"
