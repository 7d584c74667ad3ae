"""The routing console: provider policies (editable) and circuit breakers (read-only).

Breakers live in the shared cache, not in rows: the endpoints page lists the registry's
models with their endpoint's breaker as every process sees it, and its one action closes
a breaker by hand (after a fix, say, rather than waiting for the probe).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from generation.models import ProviderEndpoint, ProviderPolicy
from generation.routing.breaker import CircuitBreaker, breaker_for, endpoint_of


@admin.register(ProviderPolicy)
class ProviderPolicyAdmin(admin.ModelAdmin):
    list_display = ("kind", "model", "model_provider", "breaker", "note", "updated_at")
    list_select_related = ("model",)
    autocomplete_fields = ("model",)
    readonly_fields = ("updated_at",)

    @admin.display(description="Provider")
    def model_provider(self, obj: ProviderPolicy) -> str:
        return obj.model.provider

    @admin.display(description="Circuit breaker")
    def breaker(self, obj: ProviderPolicy) -> str:
        return _describe(breaker_for(obj.model))


def _describe(breaker: CircuitBreaker) -> str:
    state = breaker.state()
    text = state.state.replace("_", "-")
    if state.retry_after is not None:
        text += f" (probe in {int(state.retry_after) + 1} s)"
    if state.failures:
        text += f", {state.failures} failure{'s' if state.failures != 1 else ''} in a row"
    return text


@admin.register(ProviderEndpoint)
class ProviderEndpointAdmin(admin.ModelAdmin):
    list_display = ("slug", "provider", "endpoint_id", "breaker", "fallback", "enabled")
    list_filter = ("provider", "enabled")
    search_fields = ("slug", "endpoint_id")
    actions = ["close_breakers"]

    @admin.display(description="Circuit breaker")
    def breaker(self, obj: ProviderEndpoint) -> str:
        return _describe(breaker_for(obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The list and its action only: models are edited on the AI models page.
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(description="Close the selected endpoints' circuit breakers")
    def close_breakers(self, request: HttpRequest, queryset: QuerySet[ProviderEndpoint]) -> None:
        endpoints = sorted({endpoint_of(model) for model in queryset})
        for endpoint in endpoints:
            CircuitBreaker(endpoint).reset()
        self.message_user(request, f"Closed {len(endpoints)} circuit breaker(s).",
                          messages.SUCCESS)
