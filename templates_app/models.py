"""Business templates: AdTemplate and its versions, brand kits, runs and their steps.

A run pins the template version it was made from and a snapshot of the brand kit,
so an old run re-renders identically after both have been edited. Each step of a
run is a generation job (a model call, or a local composition job), so it has its
own status, cost and live events; the run's own stream is a local parent job.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from generation.models import AIModel, Image, Job


class TemplateKind(models.TextChoices):
    BILLBOARD = "billboard", "Billboard"
    DISCOUNT_BANNER = "discount_banner", "Discount banner"
    PRODUCT_SHOT = "product_shot", "Product shot"


class OutputFormat(models.TextChoices):
    PNG = "png", "PNG"
    JPEG = "jpeg", "JPEG"
    WEBP = "webp", "WebP"


def _model_field(help_text: str) -> Any:
    return models.ForeignKey(AIModel, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="+", help_text=help_text)


class AdTemplate(models.Model):
    """What admins edit. Saving through the admin publishes a new version when the
    content changed; runs always start from the latest version."""

    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=30, choices=TemplateKind.choices)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    preview_image = models.ImageField(upload_to="template-previews/", blank=True)
    copy_model = _model_field("Writes the copy when the marketer leaves it out (a text model).")
    background_model = _model_field("Paints the background (billboard, discount banner). "
                                    "Empty: the provider policy for text-to-image.")
    person_model = _model_field("Used instead of the background model when a person or "
                                "mascot LoRA is given (a LoRA text-to-image model).")
    cutout_model = _model_field("Cuts the product out of its photo (background removal). "
                                "Empty: the provider policy for background removal.")
    scene_model = _model_field("Paints the product's scene: a text-to-image model, or an "
                               "image model given the cut-out as a reference. Empty: the "
                               "provider policy for text-to-image.")
    face_swap_model = _model_field("Puts the marketer's face photo on the person in the "
                                   "background (billboard), when one is given.")
    variables = models.JSONField(default=list, blank=True, help_text=(
        "The form: a list of {name, type (string|text|integer|image|url|choice), label, "
        "help, default, required, min, max, choices}."))
    formats = models.JSONField(default=list, blank=True,
                               help_text="Format slugs this template offers, in order.")
    style = models.TextField(blank=True, help_text="Default style words for the imagery.")
    output_format = models.CharField(max_length=10, choices=OutputFormat.choices,
                                     default=OutputFormat.PNG)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "ad template"

    def __str__(self) -> str:
        return self.name


class AdTemplateVersion(models.Model):
    """An immutable snapshot of a template's content (``spec``)."""

    template = models.ForeignKey(AdTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["template", "-number"]
        constraints = [models.UniqueConstraint(fields=["template", "number"],
                                               name="template_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.template.slug} v{self.number}"


class BrandKit(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="brand_kits")
    # Shared with this team's members, who may use it in their runs.
    team = models.ForeignKey("accounts.Team", on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="brand_kits")
    name = models.CharField(max_length=120)
    # Normalised on upload: an sRGB PNG with alpha.
    logo = models.FileField(upload_to="brand-logos/", blank=True, max_length=300)
    palette = models.JSONField(default=list, blank=True,
                               help_text="Hex colours: primary, secondary, then any others.")
    heading_font = models.CharField(max_length=40, default="inter")
    body_font = models.CharField(max_length=40, default="inter")
    tone = models.TextField(blank=True, help_text="Tone of voice, given to the copy model.")
    banned_words = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


RUN_ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


class TemplateRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="template_runs")
    team = models.ForeignKey("accounts.Team", on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="template_runs")
    template = models.ForeignKey(AdTemplate, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(AdTemplateVersion, on_delete=models.PROTECT,
                                related_name="runs")
    brand_kit = models.ForeignKey(BrandKit, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="runs")
    # What the layout used of the kit when the run started (logo by storage name).
    brand = models.JSONField(default=dict, blank=True)
    variables = models.JSONField(default=dict)
    formats = models.JSONField(default=list)
    output_format = models.CharField(max_length=10, choices=OutputFormat.choices)
    seed = models.BigIntegerField()
    status = models.CharField(max_length=20, choices=RunStatus.choices,
                              default=RunStatus.QUEUED, db_index=True)
    # The run's stream: a local job whose events (``step`` among them) clients follow.
    job = models.OneToOneField(Job, on_delete=models.PROTECT, related_name="template_run")
    currency = models.CharField(max_length=3, default="USD")
    estimated_cost = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    error_code = models.CharField(max_length=80, blank=True)
    error_message = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                name="run_unique_idempotency_key_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.template.slug} run {self.id} ({self.status})"


class StepKind(models.TextChoices):
    MODEL = "model", "Model call"
    COMPOSE = "compose", "Composition"


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RunStep(models.Model):
    """One step of a run. ``job`` is its current attempt; earlier attempts stay as jobs
    of their own (``attempts`` counts them), so a retried step never loses history."""

    run = models.ForeignKey(TemplateRun, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=60)  # "copy", "background:wide", "compose:leaderboard"
    role = models.CharField(max_length=20)  # copy, background, cutout, scene, compose
    kind = models.CharField(max_length=10, choices=StepKind.choices)
    label = models.CharField(max_length=120)
    order = models.PositiveIntegerField(default=0)
    model_slug = models.CharField(max_length=80, blank=True)
    # "policy" when the template left the role's model to the provider policy.
    routed_by = models.CharField(max_length=20, default="explicit")
    depends_on = models.JSONField(default=list, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=StepStatus.choices,
                              default=StepStatus.PENDING)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="+")
    attempts = models.PositiveIntegerField(default=0)
    # Copy re-asked because it did not fit (at most two per attempt).
    reasks = models.PositiveIntegerField(default=0)
    output = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=80, blank=True)
    error_message = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "order"]
        constraints = [models.UniqueConstraint(fields=["run", "key"],
                                               name="run_step_unique_key")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.key} ({self.status})"


class RunOutput(models.Model):
    """A finished image of one format, with everything that made it."""

    run = models.ForeignKey(TemplateRun, on_delete=models.CASCADE, related_name="outputs")
    format = models.CharField(max_length=40)
    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="run_output")
    provenance = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "created_at"]
        constraints = [models.UniqueConstraint(fields=["run", "format"],
                                               name="run_output_unique_format")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.format}"
