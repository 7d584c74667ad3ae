from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from brenia.accounts.models import ApiKey, User


@admin.register(User)
class BreniaUserAdmin(UserAdmin):
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Time zone", {"fields": ("time_zone",)}))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__username", "name")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
