"""Operator console for webhook deliveries: read-only log, filters, "Redeliver"."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from generation.outbound.models import WebhookAttempt, WebhookDelivery
from generation.outbound.services import webhook_delivery_redeliver


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ("number", "status_code", "error", "duration_ms", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "event_type", "status", "attempts", "last_status_code",
                    "next_attempt_at", "delivered_at", "created_at")
    list_filter = ("status", "event_type")
    search_fields = ("id", "job__id", "url", "job__user__username")
    date_hierarchy = "created_at"
    inlines = [WebhookAttemptInline]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["redeliver"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("outbound.change_webhookdelivery")

    @admin.action(description="Redeliver (send again from a first attempt)",
                  permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = 0
        for delivery in queryset:
            webhook_delivery_redeliver(delivery=delivery)
            count += 1
        self.message_user(request, f"Scheduled {count} delivery(ies) again.", messages.SUCCESS)
