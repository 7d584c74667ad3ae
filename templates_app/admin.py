"""Operator console: templates (saving publishes a version), brand kits, runs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from generation.registry.ratings import ratings_by_template
from templates_app.brands import brand_logo_store
from templates_app.models import (
    AdTemplate,
    AdTemplateVersion,
    BrandKit,
    RunOutput,
    RunStep,
    TemplateRun,
)
from templates_app.services import ad_template_check, ad_template_publish


class AdTemplateForm(forms.ModelForm):
    class Meta:
        model = AdTemplate
        fields = ("name", "slug", "kind", "description", "preview_image", "enabled",
                  "copy_model", "background_model", "person_model", "cutout_model",
                  "scene_model", "face_swap_model", "variables", "formats", "style",
                  "output_format")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        candidate = self.instance
        for name, value in cleaned.items():
            setattr(candidate, name, value)
        for problem in ad_template_check(template=candidate):
            field = problem.field if problem.field in self.fields else None
            self.add_error(field, problem.problem)
        return cleaned


class VersionInline(admin.TabularInline):
    model = AdTemplateVersion
    extra = 0
    can_delete = False
    fields = ("number", "created_at", "created_by", "models")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Models")
    def models(self, version: AdTemplateVersion) -> str:
        entries = [(role, entry["slug"]) for role, entry in
                   (version.spec.get("models") or {}).items() if entry]
        return format_html_join(", ", "{}: {}", entries)


@admin.register(AdTemplate)
class AdTemplateAdmin(admin.ModelAdmin):
    form = AdTemplateForm
    list_display = ("name", "slug", "kind", "latest_version", "background_model",
                    "enabled", "rating", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "slug", "description")
    inlines = [VersionInline]
    fieldsets = (
        (None, {"fields": ("name", "slug", "kind", "description", "preview_image",
                           "enabled")}),
        ("Models of each step", {"fields": ("copy_model", "background_model",
                                            "person_model", "face_swap_model",
                                            "cutout_model", "scene_model")}),
        ("Form and formats", {"fields": ("variables", "formats", "style", "output_format")}),
    )

    @admin.display(description="Rating by version")
    def rating(self, template: AdTemplate) -> str:
        rows = ratings_by_template(template_slug=template.slug)
        return "; ".join(f"v{row['version']}: {row['mean']} ({row['ratings']})"
                         for row in rows) or "—"

    @admin.display(description="Version")
    def latest_version(self, template: AdTemplate) -> str:
        version = template.versions.order_by("-number").first()
        return f"v{version.number}" if version else "—"

    def save_related(self, request: HttpRequest, form: Any, formsets: Any,
                     change: bool) -> None:
        super().save_related(request, form, formsets, change)
        version = ad_template_publish(template=form.instance, user=request.user)
        self.message_user(request, f"New runs use version {version.number}.")


class BrandKitForm(forms.ModelForm):
    upload = forms.FileField(required=False, label="Logo",
                             help_text="PNG, JPEG, WebP or GIF; stored as an sRGB PNG.")

    class Meta:
        model = BrandKit
        fields = ("owner", "name", "palette", "heading_font", "body_font", "tone",
                  "banned_words")

    def clean_upload(self) -> Any:
        upload = self.cleaned_data.get("upload")
        if upload:
            from brenia.errors import InvalidInput
            try:
                self.instance.logo.name = brand_logo_store(data=upload.read())
            except InvalidInput as exc:
                raise forms.ValidationError(exc.errors[0].problem) from None
        return upload


@admin.register(BrandKit)
class BrandKitAdmin(admin.ModelAdmin):
    form = BrandKitForm
    list_display = ("name", "owner", "heading_font", "body_font", "logo_thumbnail")
    search_fields = ("name", "owner__username")

    @admin.display(description="Logo")
    def logo_thumbnail(self, kit: BrandKit) -> str:
        if not kit.logo:
            return "—"
        return format_html('<img src="{}" alt="" height="32">', kit.logo.url)


class RunStepInline(admin.TabularInline):
    model = RunStep
    extra = 0
    can_delete = False
    fields = ("key", "status", "model_slug", "job", "attempts", "reasks", "error_message")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RunOutputInline(admin.TabularInline):
    model = RunOutput
    extra = 0
    can_delete = False
    fields = ("format", "thumbnail", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Image")
    def thumbnail(self, output: RunOutput) -> str:
        return format_html('<img src="{}" alt="{}" height="80">',
                           output.image.file.url, output.format)


@admin.register(TemplateRun)
class TemplateRunAdmin(admin.ModelAdmin):
    list_display = ("id", "template", "version", "user", "status", "estimated_cost",
                    "created_at")
    list_filter = ("status", "template")
    search_fields = ("id", "user__username")
    date_hierarchy = "created_at"
    inlines = [RunStepInline, RunOutputInline]
    readonly_fields = [f.name for f in TemplateRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
