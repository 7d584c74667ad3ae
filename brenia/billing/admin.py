"""Plans and assignments are edited here; the ledger is read-only (it is the record)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from brenia.billing.models import Account, LedgerEntry, Plan, TeamAccount


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "is_default", "daily_high_res_cap", "high_res_megapixels",
                    "requests_per_minute", "concurrent_jobs_per_user", "concurrent_jobs_per_team",
                    "monthly_budget_soft", "monthly_budget_hard")
    filter_horizontal = ("allowed_models",)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("user", "plan")
    list_filter = ("plan",)
    search_fields = ("user__username", "user__email")
    raw_id_fields = ("user",)


@admin.register(TeamAccount)
class TeamAccountAdmin(admin.ModelAdmin):
    list_display = ("team", "plan")
    list_filter = ("plan",)
    search_fields = ("team__name", "team__slug")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "username", "team", "kind", "amount", "currency",
                    "model_slug", "template_slug", "high_res_images", "job")
    list_filter = ("kind", "team")
    search_fields = ("username", "model_slug", "template_slug", "job__id")
    date_hierarchy = "created_at"
    list_select_related = ("team", "job")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
