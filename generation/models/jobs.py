"""Jobs, their attempts, events and images.

The Job row is the truth about a generation. Its status only moves forward, and
only through :meth:`Job.transition` / :meth:`Job.atransition`, each one conditional
UPDATE that names the states it may come from; a lost race changes nothing.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from generation.models.registry import AIModel


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTED = "submitted", "Submitted"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    ERRORED = "errored", "Errored"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES: tuple[str, ...] = (
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.ERRORED,
    JobStatus.CANCELLED,
)
ACTIVE_STATUSES: tuple[str, ...] = (JobStatus.QUEUED, JobStatus.SUBMITTED, JobStatus.IN_PROGRESS)

# For each target status, the statuses a job may move to it from.
ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    JobStatus.QUEUED: (),
    JobStatus.SUBMITTED: (JobStatus.QUEUED,),
    JobStatus.IN_PROGRESS: (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS),
    JobStatus.COMPLETED: (JobStatus.SUBMITTED, JobStatus.IN_PROGRESS),
    JobStatus.FAILED: ACTIVE_STATUSES,
    JobStatus.ERRORED: ACTIVE_STATUSES,
    JobStatus.CANCELLED: ACTIVE_STATUSES,
}


class RoutedBy(models.TextChoices):
    EXPLICIT = "explicit", "Named by the request"
    POLICY = "policy", "Provider policy for its kind"
    FALLBACK = "fallback", "Fallback from another model"


class IllegalTransition(Exception):
    """The job was not in a state it may leave for the requested one."""


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="jobs")
    # Shared with this team's members (a template run's steps share their run's team).
    team = models.ForeignKey("accounts.Team", on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="jobs")
    # The result cache (generation.routing.cache): what identifies a seeded request,
    # and the earlier job whose result this one was given at no cost.
    cache_key = models.CharField(max_length=64, blank=True, db_index=True)
    cached_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    # The canary that chose this job's model, and which arm served it.
    canary = models.ForeignKey("generation.Canary", on_delete=models.SET_NULL, null=True,
                               blank=True, related_name="jobs")
    canary_arm = models.CharField(max_length=10, blank=True)
    # None for a local job: a template run's parent (its event stream) or a step that
    # Brenia does itself (composition). Only jobs with a model ever reach the runner.
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="jobs",
                              null=True, blank=True)
    # Snapshot of what was called, so history survives registry edits.
    model_slug = models.CharField(max_length=80)
    model_version = models.CharField(max_length=40)
    status = models.CharField(max_length=20, choices=JobStatus.choices,
                              default=JobStatus.QUEUED, db_index=True)
    inputs = models.JSONField(default=dict)
    options = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The exact arguments sent to the provider, fixed at creation so a resumed job
    # sends the same thing.
    provider_arguments = models.JSONField(default=dict, blank=True)
    provider_request_id = models.CharField(max_length=200, blank=True, db_index=True)
    # Non-image output (copy from a text model), and provider usage for billing.
    result = models.JSONField(default=dict, blank=True)
    queue_position = models.IntegerField(null=True, blank=True)
    progress = models.FloatField(null=True, blank=True)
    error_code = models.CharField(max_length=80, blank=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)
    currency = models.CharField(max_length=3, default="USD")
    estimated_cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    # Where to POST the finished job (an integration's endpoint), if anywhere.
    webhook_url = models.URLField(max_length=2000, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="steps")
    # How the model that ran was chosen: named by the request, by the kind's provider
    # policy, or reached by falling back from another model (generation/routing/).
    routed_by = models.CharField(max_length=20, choices=RoutedBy.choices,
                                 default=RoutedBy.EXPLICIT)
    last_event_seq = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    TERMINAL: ClassVar[tuple[str, ...]] = TERMINAL_STATUSES

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="job_unique_idempotency_key_per_user",
            ),
        ]
        indexes = [models.Index(fields=["user", "-created_at"])]
        # Checked when a job is submitted (generation.jobs.services): without it, a
        # request may not send a model enable_safety_checker: false. Plans may grant it.
        permissions = [("disable_safety_checker", "Can turn a model's safety checker off")]

    def __str__(self) -> str:
        return f"{self.model_slug} {self.id} ({self.status})"

    @property
    def called_model(self) -> AIModel:
        """The registry model a provider job calls. Local jobs have none and never
        reach the runner or a provider, so asking one for it is a bug."""
        if self.model is None:
            raise ValueError(f"job {self.pk} is a local job: it calls no model")
        return self.model

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def _transition_update(self, to: str, fields: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        allowed = ALLOWED_FROM[to]
        values = {"status": to, "updated_at": timezone.now(), **fields}
        if to in TERMINAL_STATUSES:
            values.setdefault("finished_at", timezone.now())
            values.setdefault("queue_position", None)
        return Job.objects.filter(pk=self.pk, status__in=allowed), values

    def _apply(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def transition(self, to: str, **fields: Any) -> None:
        """Move to ``to`` with one conditional UPDATE; raise if the job was elsewhere."""
        query, values = self._transition_update(to, fields)
        if query.update(**values) != 1:
            raise IllegalTransition(f"job {self.pk}: cannot move to {to}")
        self._apply(values)

    async def atransition(self, to: str, **fields: Any) -> None:
        query, values = self._transition_update(to, fields)
        if await query.aupdate(**values) != 1:
            raise IllegalTransition(f"job {self.pk}: cannot move to {to}")
        self._apply(values)


class AttemptOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PERMANENT_ERROR = "permanent_error", "Permanent error"
    TRANSIENT_ERROR = "transient_error", "Transient error"
    INTERRUPTED = "interrupted", "Interrupted"


class JobAttempt(models.Model):
    """One try against a provider: kept for admins and for billing disputes."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    provider = models.CharField(max_length=20)
    endpoint_id = models.CharField(max_length=200)
    provider_request_id = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=20, choices=AttemptOutcome.choices,
                               default=AttemptOutcome.RUNNING)
    error_class = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    # The registry model this attempt called (a fallback changes it within one job), the
    # routing class of its error (quota, server, timeout, unreachable, breaker_open,
    # invalid_input, safety, ...) and what the runner did next and why.
    model_slug = models.CharField(max_length=80, blank=True)
    error_kind = models.CharField(max_length=30, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="attempt_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.number} ({self.outcome})"


class JobEvent(models.Model):
    """Every event sent about a job, numbered per job, so a client can catch up."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=30)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["job", "seq"], name="event_unique_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.seq} {self.type}"


def image_upload_to(instance: Image, filename: str) -> str:
    return filename


class Image(models.Model):
    """A finished image, stored under its content hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveIntegerField()
    file = models.FileField(upload_to=image_upload_to, max_length=300)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    bytes = models.PositiveIntegerField()
    seed = models.BigIntegerField(null=True, blank=True)
    # This image's share of what made it: its job's cost over the job's images (a
    # template's output: its run's cost over the run's formats, once the run ends).
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    model_slug = models.CharField(max_length=80)
    model_version = models.CharField(max_length=40)
    prompt = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            # Finalizing a job twice must not duplicate its images.
            models.UniqueConstraint(fields=["job", "index"], name="image_unique_index_per_job"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.index}"

    @property
    def content_type(self) -> str:
        return {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp",
                "GIF": "image/gif"}.get(self.format.upper(), "application/octet-stream")



RATING_MIN, RATING_MAX = 1, 5
RATING_COMMENT_MAX = 2000


class ImageRating(models.Model):
    """One user's score (1-5) of one image, with an optional comment.

    ``model_slug`` and ``model_version`` are copied from the image when it is rated,
    so ratings aggregate per model version with no join (and survive registry edits).
    A template's output is rated like any image; its template and version are reached
    through the run that made it, which pins both.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="ratings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="image_ratings")
    score = models.PositiveSmallIntegerField()
    # At most RATING_COMMENT_MAX characters, checked by the service (and the API).
    comment = models.TextField(blank=True)
    model_slug = models.CharField(max_length=80)
    model_version = models.CharField(max_length=40)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["image", "user"], name="rating_unique_per_user"),
            models.CheckConstraint(
                condition=models.Q(score__gte=RATING_MIN, score__lte=RATING_MAX),
                name="rating_score_1_to_5"),
        ]
        indexes = [models.Index(fields=["model_slug", "model_version"])]

    def __str__(self) -> str:
        return f"{self.image_id} rated {self.score} by {self.user_id}"
