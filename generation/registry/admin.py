"""The operator console: registry editing, read-only job inspection."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
)
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString

from brenia.errors import DomainError, FieldProblem
from generation.models import AIModel, ModelKind
from generation.providers import allowed_provider_classes, provider_class_path
from generation.providers.base import PermanentProviderError
from generation.registry.forms import SchemaForm
from generation.registry.openapi_import import (
    ImportedSchema,
    OpenAPIImportError,
    import_input_schema,
    parse_document,
)
from generation.registry.ratings import ratings_by_model_version, ratings_summary_line
from generation.registry.services import (
    aimodel_duplicate_version,
    aimodel_import_openapi,
    change_summary,
)
from generation.registry.validation import check_schema

MAX_UPLOAD_BYTES = 2 * 1024 * 1024


def schema_preview(schema: Any) -> SafeString:
    """The form ``schema`` generates, as users get it, for the operator to look at.

    Its ids are prefixed so they never clash with the change form it may sit in.
    """
    form = SchemaForm(schema, auto_id="pv-%s")
    if not form.fields:
        return format_html('<p class="help">{}</p>', "The schema declares no properties.")
    return form.as_div()


class AIModelForm(forms.ModelForm):
    class Meta:
        model = AIModel
        exclude: list[str] = []

    def clean_input_schema(self) -> Any:
        schema = self.cleaned_data["input_schema"]
        problems = check_schema(schema)
        if problems:
            raise forms.ValidationError(problems)
        return schema

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "provider" not in cleaned:
            return cleaned  # not a valid choice; the field already says so
        provider_class = cleaned.get("provider_class") or ""
        field = "provider_class" if provider_class else "provider"
        try:
            # Checked against the allow-list only, never imported as typed: importing
            # a module runs its code.
            path = provider_class_path(provider=cleaned["provider"],
                                       provider_class=provider_class)
        except PermanentProviderError:
            allowed = allowed_provider_classes()
            if provider_class:
                self.add_error(field, f"{provider_class!r} is not an allowed provider class. "
                                      "Leave it blank to use the provider's own class, or use "
                                      f"one of: {', '.join([*allowed, *allowed.values()])} "
                                      "(BRENIA_PROVIDER_CLASSES).")
            else:
                self.add_error(field, f"Provider {cleaned['provider']!r} has no class in "
                                      f"BRENIA_PROVIDER_CLASSES (it has: {', '.join(allowed)}).")
            return cleaned
        try:
            import_string(path)  # allow-listed, so safe to import: is the list right?
        except ImportError:
            self.add_error(field, f"Provider class {path!r} is in BRENIA_PROVIDER_CLASSES "
                                  "but cannot be imported.")
        return cleaned


class OpenAPIImportForm(forms.Form):
    """A fal queue OpenAPI document, and the model it is for (an existing one, or new)."""

    document = forms.CharField(
        label="OpenAPI document (JSON)", required=False,
        widget=forms.Textarea(attrs={"rows": 14, "cols": 100, "spellcheck": "false"}),
        help_text="The model's queue OpenAPI document, e.g. from https://fal.ai/api/openapi/"
                  "queue/openapi.json?endpoint_id=fal-ai/flux/dev")
    upload = forms.FileField(label="…or upload the file", required=False)
    target = forms.ModelChoiceField(
        AIModel.objects.all(), required=False, label="Target model",
        empty_label="— create a new model —",
        help_text="Its input schema, endpoint id and kind are replaced.")
    slug = forms.SlugField(max_length=80, required=False, help_text="For a new model only.")
    display_name = forms.CharField(max_length=120, required=False,
                                   help_text="For a new model only; defaults to the endpoint id.")
    kind = forms.ChoiceField(
        choices=[("", "— the document's category —"), *ModelKind.choices], required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        text = self._document_text(cleaned)
        if text is None:
            return cleaned
        where = "upload" if cleaned.get("upload") else "document"
        try:
            imported = import_input_schema(parse_document(text))
        except OpenAPIImportError as exc:
            self.add_error(where, str(exc))
            return cleaned
        cleaned["imported"] = imported
        if cleaned.get("target") is None:
            slug = cleaned.get("slug")
            if not slug and "slug" not in self.errors:
                self.add_error("slug", "Give the new model a slug, or pick a target model.")
            elif slug and AIModel.objects.filter(slug=slug).exists():
                self.add_error("slug", f"A model with slug {slug!r} already exists; pick it "
                                       "as the target to update it.")
            if not (cleaned.get("kind") or imported.kind):
                self.add_error("kind", f"The document's category {imported.category!r} is not "
                                       "a Brenia kind; choose one.")
        return cleaned

    def _document_text(self, cleaned: dict[str, Any]) -> str | None:
        upload = cleaned.get("upload")
        if upload is not None:
            if upload.size > MAX_UPLOAD_BYTES:
                self.add_error("upload", "The file is larger than 2 MB.")
                return None
            try:
                return str(upload.read().decode("utf-8"))
            except UnicodeDecodeError:
                self.add_error("upload", "The file is not UTF-8 text.")
                return None
        text = str(cleaned.get("document") or "")
        if not text.strip():
            self.add_error("document", "Paste the OpenAPI document or upload its file.")
            return None
        return text


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    form = AIModelForm
    list_display = ("slug", "display_name", "provider", "kind", "endpoint_id", "version_label",
                    "enabled", "price_per_image", "price_per_megapixel", "rating")
    list_filter = ("provider", "kind", "enabled")
    search_fields = ("slug", "display_name", "endpoint_id", "description")
    readonly_fields = ("form_preview", "created_at", "updated_at")
    actions = ["duplicate_as_new_version"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        # The preview sits right under the schema it previews, whatever fields the
        # model grows; listing fieldsets by hand would silently drop new ones.
        fields = [f for f in super().get_fields(request, obj) if f != "form_preview"]
        at = fields.index("input_schema") + 1 if "input_schema" in fields else len(fields)
        return [*fields[:at], "form_preview", *fields[at:]]

    @admin.display(description="Rating (this version)")
    def rating(self, obj: AIModel) -> str:
        rows = [row for row in ratings_by_model_version(model_slug=obj.slug)
                if row["model_version"] == obj.version_label]
        return ratings_summary_line(rows)

    @admin.display(description="Form preview")
    def form_preview(self, obj: AIModel) -> str:
        if obj.pk is None:
            return "Save the model to preview the form its input schema generates."
        url = reverse("admin:generation_aimodel_preview", args=[obj.pk])
        # A disabled fieldset: its controls sit inside the change form, and disabled
        # controls are never submitted with it.
        return format_html(
            '<fieldset disabled class="schema-preview">{}</fieldset>'
            '<p><a href="{}">Open the form preview on its own page</a></p>',
            schema_preview(obj.input_schema), url)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("import-openapi/", wrap(self.import_openapi_view),
                 name="generation_aimodel_import_openapi"),
            path("<path:object_id>/preview/", wrap(self.preview_view),
                 name="generation_aimodel_preview"),
            path("<path:object_id>/duplicate/", wrap(self.duplicate_view),
                 name="generation_aimodel_duplicate"),
            *super().get_urls(),
        ]

    def construct_change_message(self, request: HttpRequest, form: forms.Form,
                                 formsets: Any, add: bool = False) -> Any:
        message = super().construct_change_message(request, form, formsets, add)
        if add:
            return message
        summary = change_summary(old=form.initial, new=form.cleaned_data)
        if not summary:
            return message
        # Django's structured message says only which fields changed; a plain string
        # is stored and shown as is, so it can also say what changed inside them.
        listed = LogEntry(change_message=json.dumps(message)).get_change_message()
        return f"{listed} {summary}".strip()

    # --- duplicate as new version -----------------------------------------------------

    @admin.action(description="Duplicate as new version (disabled)", permissions=["add"])
    def duplicate_as_new_version(self, request: HttpRequest,
                                 queryset: QuerySet[AIModel]) -> HttpResponse | None:
        copies = [self._duplicate(request, model) for model in queryset]
        if len(copies) == 1:
            return redirect("admin:generation_aimodel_change", copies[0].pk)
        return None

    def duplicate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            raise PermissionDenied
        source = self._get_or_404(request, object_id)
        copy = self._duplicate(request, source)
        return redirect("admin:generation_aimodel_change", copy.pk)

    def _duplicate(self, request: HttpRequest, source: AIModel) -> AIModel:
        copy = aimodel_duplicate_version(model=source)
        self.log_addition(request, copy, f"Duplicated from {source.slug} "
                                         f"(version {source.version_label}).")
        url = reverse("admin:generation_aimodel_change", args=[copy.pk])
        self.message_user(request, format_html(
            'Created <a href="{}">{}</a> (version {}) from {}. It is disabled: enable it '
            "when it is ready for users.", url, copy.slug, copy.version_label, source.slug),
            messages.SUCCESS)
        return copy

    # --- form preview -----------------------------------------------------------------

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        model = self._get_or_404(request, object_id)
        if not self.has_view_permission(request, model):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts, "original": model, "title": f"Form preview: {model.slug}",
            "preview": schema_preview(model.input_schema),
        }
        return TemplateResponse(request, "admin/generation/aimodel/preview_form.html", context)

    # --- import from fal OpenAPI ------------------------------------------------------

    def import_openapi_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        if request.method == "POST":
            form = OpenAPIImportForm(request.POST, request.FILES)
            if form.is_valid():
                model = self._import(request, form)
                if model is not None:
                    return redirect("admin:generation_aimodel_change", model.pk)
        else:
            form = OpenAPIImportForm(initial={"target": request.GET.get("target")})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts, "title": "Import an input schema from a fal OpenAPI document",
            "form": form,
        }
        return TemplateResponse(request, "admin/generation/aimodel/import_openapi.html",
                                context)

    def _import(self, request: HttpRequest, form: OpenAPIImportForm) -> AIModel | None:
        imported: ImportedSchema = form.cleaned_data["imported"]
        target: AIModel | None = form.cleaned_data["target"]
        before = ({"input_schema": target.input_schema, "endpoint_id": target.endpoint_id,
                   "kind": target.kind} if target else {})
        try:
            model = aimodel_import_openapi(
                imported=imported, model=target, slug=form.cleaned_data["slug"],
                display_name=form.cleaned_data["display_name"], kind=form.cleaned_data["kind"])
        except DomainError as exc:
            # What the form could not see coming (a slug taken meanwhile) is shown on it.
            for problem in exc.errors or [FieldProblem("", exc.message)]:
                known = problem.field in form.fields
                form.add_error(problem.field if known else None,
                               problem.problem if known else exc.message)
            return None
        message = [f"Imported the input schema from the fal OpenAPI document of "
                   f"{imported.endpoint_id}."]
        if target is None:
            self.log_addition(request, model, message[0])
        else:
            message.append(change_summary(old=before, new={"input_schema": model.input_schema}))
            moved = [f"{name} {before[name]} → {getattr(model, name)}"
                     for name in ("endpoint_id", "kind") if before[name] != getattr(model, name)]
            if moved:
                message.append(f"Changed {'; '.join(moved)}.")
            self.log_change(request, model, " ".join(m for m in message if m))
        count = len(model.input_schema.get("properties") or {})
        self.message_user(request, f"Imported {count} input properties into {model.slug}."
                          + ("" if model.enabled else " The model is disabled: set its prices, "
                             "then enable it."), messages.SUCCESS)
        return model

    def _get_or_404(self, request: HttpRequest, object_id: str) -> AIModel:
        model = self.get_object(request, unquote(object_id))
        if model is None:
            raise Http404(f"No AI model with id {object_id!r}.")
        return model
