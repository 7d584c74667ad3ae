"""Canaries in the admin: start one, watch both arms side by side, promote or stop it.

The arms' figures are read live from the jobs and ratings (``canary_figures``); every
decision — the start, the guard's rollback, a promotion — is listed with what it saw.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from generation.models import Canary, CanaryArm, CanaryDecision, CanaryStatus
from generation.routing.canary import canary_end, canary_figures

FIGURES = (("finished", "Finished jobs"), ("failure_rate", "Failure rate"),
           ("mean_seconds", "Mean run (s)"), ("mean_cost", "Mean cost"),
           ("ratings", "Ratings"), ("mean_rating", "Mean rating"))


class CanaryForm(forms.ModelForm):
    class Meta:
        model = Canary
        fields = ("model", "candidate", "share", "max_failure_rate", "min_rating",
                  "min_samples")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        model, candidate = cleaned.get("model"), cleaned.get("candidate")
        if model and candidate:
            if model == candidate:
                self.add_error("candidate", "The candidate must be another registry model.")
            elif model.kind != candidate.kind:
                self.add_error("candidate", f"The candidate must do what {model.slug} does "
                                            f"({model.get_kind_display()}).")
        if model and not self.instance.pk and Canary.objects.filter(
                model=model, status__in=(CanaryStatus.RUNNING, CanaryStatus.PROMOTED)).exists():
            self.add_error("model", f"{model.slug} already has a live canary: stop it first.")
        return cleaned


class DecisionInline(admin.TabularInline):
    model = CanaryDecision
    extra = 0
    can_delete = False
    fields = ("created_at", "action", "reason", "figures", "by")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Canary)
class CanaryAdmin(admin.ModelAdmin):
    form = CanaryForm
    list_display = ("model", "candidate", "share", "status", "candidate_failures",
                    "candidate_rating", "started_at")
    list_filter = ("status",)
    list_select_related = ("model", "candidate")
    autocomplete_fields = ("model", "candidate")
    readonly_fields = ("status", "started_at", "ended_at", "arms")
    inlines = [DecisionInline]
    actions = ["promote", "stop"]

    @admin.display(description="Candidate failures")
    def candidate_failures(self, obj: Canary) -> str:
        arm = canary_figures(obj)[CanaryArm.CANDIDATE]
        return f"{arm['failed']} / {arm['finished']}"

    @admin.display(description="Candidate rating")
    def candidate_rating(self, obj: Canary) -> str:
        arm = canary_figures(obj)[CanaryArm.CANDIDATE]
        return "—" if arm["mean_rating"] is None else f"{arm['mean_rating']} ({arm['ratings']})"

    @admin.display(description="Arms")
    def arms(self, obj: Canary) -> str:
        if not obj.pk:
            return "—"
        figures = canary_figures(obj)
        rows = format_html_join(
            "", "<tr><th scope='row'>{}</th><td>{}</td><td>{}</td></tr>",
            ((label, _shown(key, figures[CanaryArm.CONTROL][key]),
              _shown(key, figures[CanaryArm.CANDIDATE][key])) for key, label in FIGURES))
        return format_html("<table><thead><tr><th></th><th scope='col'>Control ({})</th>"
                           "<th scope='col'>Candidate ({})</th></tr></thead><tbody>{}"
                           "</tbody></table>", obj.model.slug, obj.candidate.slug, rows)

    def save_model(self, request: HttpRequest, obj: Canary, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            CanaryDecision.objects.create(
                canary=obj, action="started", by_id=request.user.pk,
                reason=f"{obj.share:.1%} of {obj.model.slug}'s users to {obj.candidate.slug}",
                figures={})

    @admin.action(description="Promote: every request for the model goes to the candidate")
    def promote(self, request: HttpRequest, queryset: QuerySet[Canary]) -> None:
        done = sum(canary_end(canary, status=CanaryStatus.PROMOTED, by=request.user,
                              reason="promoted by an admin")
                   for canary in queryset.filter(status=CanaryStatus.RUNNING))
        self.message_user(request, f"{done} canary promoted.", messages.SUCCESS)

    @admin.action(description="Stop: every request goes back to the model itself")
    def stop(self, request: HttpRequest, queryset: QuerySet[Canary]) -> None:
        done = sum(canary_end(canary, status=CanaryStatus.STOPPED, by=request.user,
                              reason="stopped by an admin")
                   for canary in queryset.filter(
                       status__in=(CanaryStatus.RUNNING, CanaryStatus.PROMOTED)))
        self.message_user(request, f"{done} canary stopped.", messages.SUCCESS)


def _shown(key: str, value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if key == "failure_rate" else str(value)
