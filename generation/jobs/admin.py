"""Operator console for jobs: read-only status, attempts, events and images."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from generation.models import Image, Job, JobAttempt, JobEvent


class ImageInline(admin.TabularInline):
    model = Image
    extra = 0
    can_delete = False
    fields = ("index", "thumb", "width", "height", "format", "bytes", "sha256")
    readonly_fields = fields

    @admin.display(description="Image")
    def thumb(self, obj: Image) -> str:
        url = reverse("admin:generation_job_image", args=[obj.job_id, obj.id])
        return format_html('<a href="{}"><img src="{}" style="max-height:80px"></a>', url, url)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AttemptInline(admin.TabularInline):
    model = JobAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "model_slug", "provider", "endpoint_id", "provider_request_id",
                       "outcome", "error_kind", "reason", "error_class", "error_message",
                       "started_at", "ended_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "model_slug", "routed_by", "status", "cost", "created_at",
                    "finished_at")
    list_filter = ("status", "routed_by", "model_slug")
    search_fields = ("id", "user__username", "provider_request_id", "request_id")
    date_hierarchy = "created_at"
    inlines = [AttemptInline, ImageInline]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.image_view)
        return [path("<path:object_id>/image/<uuid:image_id>/", view,
                     name="generation_job_image"), *super().get_urls()]

    def image_view(self, request: HttpRequest, object_id: str, image_id: Any) -> FileResponse:
        """Operators may look at any job's images; the public API serves only owners."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        image = Image.objects.filter(pk=image_id, job_id=unquote(object_id)).first()
        if image is None:
            raise Http404("No such image.")
        return FileResponse(image.file.open("rb"), content_type=image.content_type)


@admin.register(JobEvent)
class JobEventAdmin(admin.ModelAdmin):
    list_display = ("job", "seq", "type", "created_at")
    list_filter = ("type",)
    readonly_fields = ("job", "seq", "type", "payload", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

