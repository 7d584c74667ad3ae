"""Brand kits in the browser: list, create, edit and delete, without the admin.

The pages go through the same service (``brands.brand_kit_save``) and selectors as the
JSON API, so a kit made here is exactly a kit the API would make. The form only shapes
the browser's input (palette slots, a textarea of banned words, an uploaded file) into
the service's arguments; the service's own problems are shown on the fields they name.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.datastructures import MultiValueDict
from django.views.decorators.http import require_http_methods, require_POST

from brenia.accounts.forms import add_team_field, team_chosen
from brenia.errors import FieldProblem, InvalidInput, NotFound
from templates_app import brands, selectors
from templates_app.compose import FONTS, Brand
from templates_app.models import BrandKit
from templates_app.web.files import logo_url

PALETTE_SLOTS = 6
# The service takes up to 8 colours (so can the API): a kit with more than the page's six
# slots gets a slot per colour, so editing it here never drops one.
PALETTE_MAX = 8
# An unused slot's picker starts on the house palette (what a run without a kit looks
# like), so ticking one starts from a sensible colour; a picker cannot be empty.
HOUSE_PALETTE = Brand().palette
UNUSED_COLOURS = (*HOUSE_PALETTE, "#6b7280", "#0d9488", "#7c3aed", "#db2777")
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

LOGO_MAX_BYTES = 8 * 1024 * 1024
LOGO_ACCEPT = "image/png,image/jpeg,image/webp,image/gif"
BANNED_MAX = 200
BANNED_WORD_MAX = 60
FONT_CHOICES = list(FONTS.items())


def slot_label(index: int) -> str:
    return ("Primary", "Secondary")[index] if index < 2 else f"Colour {index + 1}"


def _logo_type(data: bytes) -> str | None:
    """The upload's type by its signature. Only the header is looked at: decoding (and
    refusing what is corrupt or too large to decode safely) is the service's job."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _sentence(problem: str) -> str:
    """A service problem ("must be a colour like #1d4ed8") as a line shown under a field."""
    text = problem.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class ColourInput(forms.TextInput):
    input_type = "color"


class BrandKitForm(forms.Form):
    """A brand kit as the browser sends it. ``palette_<n>`` is slot n's colour and
    ``palette_<n>_use`` whether the kit uses it: a colour picker always has a value, so
    only the ticked slots make the palette, in slot order."""

    name = forms.CharField(max_length=120)
    logo = forms.FileField(
        required=False, widget=forms.FileInput(attrs={"accept": LOGO_ACCEPT}),
        help_text="A PNG, JPEG, WebP or GIF up to 8 MB; transparency is kept. "
                  "Leave empty to keep the current logo.")
    remove_logo = forms.BooleanField(required=False, label="Remove the current logo")
    heading_font = forms.ChoiceField(choices=FONT_CHOICES, initial="inter")
    body_font = forms.ChoiceField(choices=FONT_CHOICES, initial="inter")
    tone = forms.CharField(
        required=False, max_length=2000, label="Tone of voice",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="How the copy should sound, e.g. “warm, playful, never pushy”. "
                  "Given to the copy model.")
    banned_words = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Words or phrases the copy must never use: one per line, or separated "
                  "by commas.")

    def __init__(self, data: Any = None, files: MultiValueDict[str, UploadedFile] | None = None,
                 *, kit: BrandKit | None = None, user: Any = None) -> None:
        super().__init__(data, files, initial=self._initial(kit), label_suffix="")
        self.kit = kit
        if kit is None and user is not None:  # a kit's team is chosen when it is made
            add_team_field(self, user)
        palette = list(kit.palette) if kit else []
        self.slot_count = min(PALETTE_MAX, max(PALETTE_SLOTS, len(palette)))
        for index in range(self.slot_count):
            label = slot_label(index)
            used = index < len(palette)
            self.fields[f"palette_{index}"] = forms.CharField(
                label=label, required=False, widget=ColourInput,
                initial=palette[index] if used else UNUSED_COLOURS[index])
            self.fields[f"palette_{index}_use"] = forms.BooleanField(
                label=f"Use {label.lower()}", required=False, initial=used)
        if kit is None or not kit.logo:
            del self.fields["remove_logo"]
        # Slots of the palette the service is given, in order: its "palette.<i>" is slot
        # used_slots[i]. Problems with the palette as a whole go to palette_errors.
        self.used_slots: list[int] = []
        self.palette_errors: list[str] = []

    @staticmethod
    def _initial(kit: BrandKit | None) -> dict[str, Any]:
        if kit is None:
            return {}
        return {"name": kit.name, "heading_font": kit.heading_font,
                "body_font": kit.body_font, "tone": kit.tone,
                "banned_words": "\n".join(kit.banned_words)}

    def clean_logo(self) -> bytes | None:
        upload = self.cleaned_data.get("logo")
        if not upload:
            return None
        if upload.size is not None and upload.size > LOGO_MAX_BYTES:
            raise forms.ValidationError(
                "The logo file is %(size)s MB; please upload one of at most 8 MB.",
                code="too_large", params={"size": f"{upload.size / 1024 / 1024:.1f}"})
        data: bytes = upload.read()
        if _logo_type(data) is None:
            raise forms.ValidationError("Please upload a PNG, JPEG, WebP or GIF image.",
                                        code="type")
        return data

    def clean_banned_words(self) -> list[str]:
        words: list[str] = []
        for part in re.split(r"[\n,]", self.cleaned_data.get("banned_words") or ""):
            word = part.strip()
            if word and word.casefold() not in {w.casefold() for w in words}:
                words.append(word)
        too_long = [w for w in words if len(w) > BANNED_WORD_MAX]
        if too_long:
            raise forms.ValidationError(
                "“%(word)s” is longer than %(max)s characters.", code="too_long",
                params={"word": too_long[0][:BANNED_WORD_MAX] + "…", "max": BANNED_WORD_MAX})
        if len(words) > BANNED_MAX:
            raise forms.ValidationError("At most %(max)s words or phrases, please.",
                                        code="too_many", params={"max": BANNED_MAX})
        return words

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        used = [i for i in range(self.slot_count) if cleaned.get(f"palette_{i}_use")]
        for index in used:
            colour = (cleaned.get(f"palette_{index}") or "").strip()
            if not HEX_COLOUR.match(colour):
                self.add_error(f"palette_{index}",
                               "Choose a colour like #1d4ed8 (or untick this one).")
            else:
                cleaned[f"palette_{index}"] = colour.lower()
        # The first colour is the primary, the second the secondary: a gap there would
        # silently move a colour into a role its slot does not show.
        if used and 0 not in used:
            self.add_error("palette_0_use",
                           "Tick Primary too: a kit's first colour is always its primary.")
        if any(i >= 2 for i in used) and 1 not in used:
            self.add_error("palette_1_use",
                           "Tick Secondary too: further colours come after the secondary.")
        self.used_slots = used
        if cleaned.get("logo") and cleaned.get("remove_logo"):
            self.add_error("remove_logo",
                           "Either upload a new logo or remove the current one, not both.")
        return cleaned

    def service_arguments(self) -> dict[str, Any]:
        """``brands.brand_kit_save``'s arguments (all but owner and kit); after is_valid."""
        data = self.cleaned_data
        return {"name": data["name"],
                "palette": [data[f"palette_{i}"] for i in self.used_slots],
                "heading_font": data["heading_font"], "body_font": data["body_font"],
                "tone": data["tone"], "banned_words": data["banned_words"],
                "logo": data.get("logo"), "remove_logo": bool(data.get("remove_logo"))}

    def add_problems(self, problems: list[FieldProblem]) -> None:
        """Show the service's problems on the fields they name ("palette.2" on the slot the
        third colour came from, "banned_words.3" on banned words); the rest above the form."""
        for problem in problems:
            message = _sentence(problem.problem)
            head, _, rest = problem.field.partition(".")
            if head == "palette" and rest.isdigit() and int(rest) < len(self.used_slots):
                self.add_error(f"palette_{self.used_slots[int(rest)]}", message)
            elif head == "palette":
                self.palette_errors.append(message)
            elif head in self.fields:
                self.add_error(head, message)
            else:
                self.add_error(None, f"{problem.field}: {problem.problem}")

    def error_summary(self) -> list[tuple[str, str, str]]:
        """(control id, label, message) per field error, for the links above the form."""
        summary = []
        for name, errors in self.errors.items():
            if name in self.fields:
                field = self[name]
                summary += [(field.id_for_label, str(field.label), str(e)) for e in errors]
        return summary

    def slots(self) -> list[dict[str, Any]]:
        """The palette slots as the template draws them: picker, tick box, whether used."""
        slots = []
        for index in range(self.slot_count):
            colour, use = self[f"palette_{index}"], self[f"palette_{index}_use"]
            used = bool(use.value())
            # An unused picker is dimmed by the stylesheet (no inline style: the CSP).
            slots.append({"index": index, "label": slot_label(index), "colour": colour,
                          "colour_input": colour.as_widget(),
                          "use": use, "used": used, "value": colour.value() or "",
                          "errors": [*colour.errors, *use.errors]})
        return slots


class DeleteKitForm(forms.Form):
    confirm = forms.BooleanField(
        error_messages={"required": "Tick the box to confirm you want to delete this kit."})


def _kit_or_404(user: Any, kit_id: int) -> BrandKit:
    """A kit the user may change: a team kit they may only use is not found here."""
    try:
        return selectors.brand_kit_get_editable_for_user(user=user, kit_id=kit_id)
    except NotFound:
        raise Http404("There is no such brand kit.") from None


def _tile(kit: BrandKit, editable: bool = True) -> dict[str, Any]:
    return {"kit": kit, "logo_url": logo_url(kit), "editable": editable,
            # Checked again although the service only stores hex: it goes into a style.
            "swatches": [(slot_label(i), colour) for i, colour in enumerate(kit.palette)
                         if isinstance(colour, str) and HEX_COLOUR.match(colour)],
            "heading_font": FONTS.get(kit.heading_font, kit.heading_font),
            "body_font": FONTS.get(kit.body_font, kit.body_font)}


@login_required
@require_http_methods(["GET", "HEAD"])
def kit_list(request: HttpRequest) -> HttpResponse:
    kits = selectors.brand_kit_list_for_user(user=request.user)
    editable = set(selectors.brand_kit_editable_ids(user=request.user)
                   .values_list("pk", flat=True))
    return render(request, "templates_app/brand_kits/list.html",
                  {"tiles": [_tile(kit, kit.pk in editable) for kit in kits]})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def kit_create(request: HttpRequest) -> HttpResponse:
    return _form_page(request, kit=None)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def kit_edit(request: HttpRequest, kit_id: int) -> HttpResponse:
    return _form_page(request, kit=_kit_or_404(request.user, kit_id))


@login_required
@require_POST
def kit_delete(request: HttpRequest, kit_id: int) -> HttpResponse:
    kit = _kit_or_404(request.user, kit_id)
    confirm = DeleteKitForm(request.POST, prefix="delete")
    if not confirm.is_valid():
        return _render_form(request, kit=kit, form=BrandKitForm(kit=kit),
                            delete_form=confirm, status=422)
    name = kit.name
    brands.brand_kit_delete(owner=request.user, kit=kit)
    messages.success(request, f"Brand kit “{name}” deleted.")
    return redirect("brand_kit_list")


def _form_page(request: HttpRequest, *, kit: BrandKit | None) -> HttpResponse:
    if request.method != "POST":
        return _render_form(request, kit=kit, form=BrandKitForm(kit=kit, user=request.user))
    form = BrandKitForm(request.POST, request.FILES, kit=kit, user=request.user)
    if form.is_valid():
        try:
            # The service validates everything before it touches ``kit``, so a refused
            # save leaves the instance (and the page drawn from it) as it was.
            team = team_chosen(form, request.user) if kit is None else None
            saved = brands.brand_kit_save(owner=request.user, kit=kit, team=team,
                                          **form.service_arguments())
        except InvalidInput as exc:
            form.add_problems(exc.errors)
        else:
            messages.success(request, f"Brand kit “{saved.name}” "
                                      f"{'saved' if kit else 'created'}.")
            return redirect("brand_kit_list")
    return _render_form(request, kit=kit, form=form, status=422)


def _render_form(request: HttpRequest, *, kit: BrandKit | None, form: BrandKitForm,
                 delete_form: DeleteKitForm | None = None, status: int = 200) -> HttpResponse:
    return render(request, "templates_app/brand_kits/form.html", {
        "kit": kit, "form": form, "logo_url": logo_url(kit) if kit else None,
        "delete_form": delete_form or DeleteKitForm(prefix="delete"),
    }, status=status)
