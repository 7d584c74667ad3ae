from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from brenia.accounts.models import ApiKey, Membership, Team, User
from brenia.accounts.services import api_key_revoke


@admin.register(User)
class BreniaUserAdmin(UserAdmin):
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Time zone", {"fields": ("time_zone",)}))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "scopes", "created_at", "expires_at",
                    "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__username", "name")
    # Revoked through the action, which also closes the key's sockets.
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    @admin.action(description="Revoke the selected keys (their sockets close)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    raw_id_fields = ("user",)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "time_zone", "created_at")
    search_fields = ("name", "slug", "members__username")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]
