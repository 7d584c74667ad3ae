"""The template admin as an operator uses it: saving publishes a version, bad edits are
refused on the form, brand kit logos are normalised on upload."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image as PILImage

from generation.models import AIModel
from templates_app.models import AdTemplate, BrandKit
from templates_app.services import ad_template_seed
from tests.conftest import Persona, make_persona

CHANGELIST = "/admin/templates_app/adtemplate/"


class FormValues(HTMLParser):
    """What a browser would post back for the page's form, unchanged."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.values: dict[str, Any] = {}
        self._textarea: str | None = None
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "file", "checkbox"):
            self.values[name] = a.get("value") or ""
        elif tag == "input" and name and a.get("type") == "checkbox" and "checked" in a:
            self.values[name] = "on"
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data


@pytest.fixture
def console(db: Any, seeded: None) -> Client:
    ad_template_seed()
    staff = make_persona("operator", staff=True)
    client = Client()
    client.force_login(staff.user)
    return client


def edit(console: Client, template: AdTemplate, **changes: Any) -> Any:
    url = f"{CHANGELIST}{template.pk}/change/"
    page = console.get(url)
    assert page.status_code == 200
    data = FormValues(page.content.decode()).values
    data = {k: v.strip() if k in ("variables", "formats") else v for k, v in data.items()}
    data.update({k: json.dumps(v) if isinstance(v, list | dict) else str(v)
                 for k, v in changes.items()})
    data["_save"] = "Save"
    return console.post(url, data)


def test_saving_a_changed_template_publishes_a_new_version(console: Client) -> None:
    template = AdTemplate.objects.get(slug="discount-banner")
    flux_dev = AIModel.objects.get(slug="flux-dev")
    response = edit(console, template, background_model=flux_dev.pk)
    assert response.status_code == 302, response.content.decode()[:3000]
    versions = list(template.versions.order_by("number"))
    assert [v.number for v in versions] == [1, 2]
    assert versions[1].spec["models"]["background"]["slug"] == "flux-dev"
    assert versions[0].spec["models"]["background"]["slug"] == "flux-schnell"
    # Saving again without a change makes no version.
    assert edit(console, template).status_code == 302
    assert template.versions.count() == 2


@pytest.mark.parametrize(("changes", "message"), [
    ({"formats": ["48-sheet"]}, "is not a format of a discount_banner"),
    ({"variables": [{"name": "two words"}]}, "needs a name made of letters"),
    ({"background_model": "CUTOUT"}, "must be a text-to-image model"),
])
def test_a_bad_edit_is_refused_on_the_form(console: Client, changes: dict[str, Any],
                                           message: str) -> None:
    template = AdTemplate.objects.get(slug="discount-banner")
    if changes.get("background_model") == "CUTOUT":
        changes = {"background_model": AIModel.objects.get(slug="background-removal").pk}
    response = edit(console, template, **changes)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert template.versions.count() == 1


def test_a_logo_uploaded_in_the_admin_is_stored_as_srgb_png(console: Client,
                                                            owner: Persona) -> None:
    buffer = io.BytesIO()
    PILImage.new("CMYK", (200, 100), (0, 80, 160, 0)).save(buffer, "JPEG")
    response = console.post("/admin/templates_app/brandkit/add/", {
        "owner": owner.user.pk, "name": "Lemon Co", "palette": '["#0b6e4f"]',
        "heading_font": "inter", "body_font": "lato", "tone": "", "banned_words": "[]",
        "upload": SimpleUploadedFile("logo.jpg", buffer.getvalue(), "image/jpeg"),
        "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:2000]
    kit = BrandKit.objects.get()
    with kit.logo.open("rb") as handle:
        stored = PILImage.open(io.BytesIO(handle.read()))
        assert (stored.format, stored.mode) == ("PNG", "RGBA")


def test_the_run_and_template_lists_render(console: Client) -> None:
    for url in (CHANGELIST, "/admin/templates_app/templaterun/",
                "/admin/templates_app/brandkit/"):
        assert console.get(url).status_code == 200
