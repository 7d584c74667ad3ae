"""The model registry: every model Brenia can call, as rows admins edit."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class Provider(models.TextChoices):
    FAL = "fal", "fal.ai"
    GEMINI = "gemini", "Google Gemini"


class ModelKind(models.TextChoices):
    TEXT_TO_IMAGE = "text-to-image", "Text to image"
    IMAGE_TO_IMAGE = "image-to-image", "Image to image"
    FACE_SWAP = "face-swap", "Face swap"
    BACKGROUND_REMOVAL = "background-removal", "Background removal"
    TEXT = "text", "Text"


class AIModel(models.Model):
    """One callable model: where it lives, what it accepts and what it costs.

    Admins edit these rows; the API validates requests against ``input_schema``
    (a JSON Schema) as it stands at request time.
    """

    slug = models.SlugField(max_length=80, unique=True)
    display_name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    thumbnail_url = models.URLField(blank=True)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    # Optional dotted path of a provider class, for providers beyond the built-in ones.
    provider_class = models.CharField(max_length=200, blank=True)
    endpoint_id = models.CharField(max_length=200, help_text="e.g. fal-ai/flux/schnell")
    kind = models.CharField(max_length=30, choices=ModelKind.choices)
    input_schema = models.JSONField(default=dict, blank=True)
    output_mapping = models.JSONField(default=dict, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    price_per_image = models.DecimalField(max_digits=10, decimal_places=6, default=Decimal(0))
    price_per_megapixel = models.DecimalField(max_digits=10, decimal_places=6, default=Decimal(0))
    price_per_million_tokens = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal(0)
    )
    supports_lora = models.BooleanField(default=False)
    runner_hint_field = models.CharField(max_length=80, blank=True)
    enabled = models.BooleanField(default=True)
    version_label = models.CharField(max_length=40, default="1")
    fallback = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="fallback_for"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "AI model"

    def __str__(self) -> str:
        return self.slug


class ProviderPolicy(models.Model):
    """Which registry model serves a request that names a kind rather than a model.

    One row per kind, edited in the admin: pointing every text-to-image request at a
    Nano Banana model while fal is down is one change. Jobs routed through it record
    ``routed_by = "policy"``.
    """

    kind = models.CharField(max_length=30, choices=ModelKind.choices, unique=True)
    model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="policies")
    note = models.CharField(max_length=200, blank=True,
                            help_text="Why this model serves the kind now (for the next operator).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind"]
        verbose_name = "provider policy"
        verbose_name_plural = "provider policies"

    def __str__(self) -> str:
        return f"{self.kind} → {self.model.slug}"


class ProviderEndpoint(AIModel):
    """The registry seen by provider endpoint: the admin's read-only circuit-breaker page."""

    class Meta:
        proxy = True
        verbose_name = "provider endpoint (circuit breaker)"
        verbose_name_plural = "provider endpoints (circuit breakers)"
