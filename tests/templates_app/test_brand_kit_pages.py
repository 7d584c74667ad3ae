"""The brand kit pages: a marketer lists, creates, edits and deletes kits in the browser.

Django's test client against the real database and storage; logos are real images made
with Pillow and read back from storage after the service has normalised them.
"""

from __future__ import annotations

import io
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image as PILImage
from PIL import ImageDraw

from brenia.errors import FieldProblem
from templates_app.brands import brand_kit_save
from templates_app.models import BrandKit, TemplateRun
from templates_app.services import ad_template_seed, template_run_start
from templates_app.web.brand_kits import BrandKitForm
from tests.conftest import Persona
from tests.templates_app.test_runs import variables_for

NEW = "/brand-kits/"
CREATE = "/brand-kits/new"
UNUSED = {f"palette_{i}": "#000000" for i in range(6)}


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


def logged_in(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def image_bytes(kind: str = "PNG", size: tuple[int, int] = (1600, 800)) -> bytes:
    """A logo: a red disc on a transparent (or, for JPEG, white) ground."""
    mode = "RGB" if kind == "JPEG" else "RGBA"
    picture = PILImage.new(mode, size, (255, 255, 255) if mode == "RGB" else (0, 0, 0, 0))
    ImageDraw.Draw(picture).ellipse((size[0] // 4, 0, size[0] * 3 // 4, size[1] - 1),
                                    fill=(200, 30, 40) if mode == "RGB" else (200, 30, 40, 255))
    buffer = io.BytesIO()
    picture.save(buffer, kind)
    return buffer.getvalue()


def upload(data: bytes, name: str = "logo.png", content_type: str = "image/png") -> Any:
    return SimpleUploadedFile(name, data, content_type=content_type)


def kit_form(**fields: Any) -> dict[str, Any]:
    """What the browser posts: two ticked colours and four unused slots by default."""
    data: dict[str, Any] = {
        **UNUSED, "name": "Limonaia", "heading_font": "league-spartan", "body_font": "lato",
        "tone": "Sunny and warm, never pushy.", "banned_words": "cheap\nfree, guaranteed",
        "palette_0": "#0b6e4f", "palette_0_use": "on",
        "palette_1": "#f5c518", "palette_1_use": "on",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def stored(name: str) -> PILImage.Image:
    with default_storage.open(name, "rb") as handle:
        picture = PILImage.open(io.BytesIO(handle.read()))
        picture.load()
    return picture


def make_kit(persona: Persona, name: str = "Limonaia", *, logo: bool = True) -> BrandKit:
    return brand_kit_save(owner=persona.user, name=name, palette=["#0b6e4f", "#f5c518"],
                          heading_font="bebas-neue", body_font="open-sans", tone="Warm",
                          banned_words=["cheap"], logo=image_bytes() if logo else None)


class Page(HTMLParser):
    """The form controls, labels and images of a page, to check each is named."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.labels: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.images: list[dict[str, str | None]] = []
        self.ids: set[str] = set()
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "label" and found.get("for"):
            self.labels.add(str(found["for"]))
        elif tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.controls.append(found)
        elif tag == "img":
            self.images.append(found)

    def control(self, control_id: str) -> dict[str, str | None]:
        return next(c for c in self.controls if c.get("id") == control_id)

    def check_accessible(self) -> None:
        unlabelled = [c for c in self.controls if c.get("id") not in self.labels]
        assert not unlabelled, unlabelled
        assert all(img.get("alt") is not None for img in self.images), self.images
        for control in self.controls:  # every description a control points at exists
            for ref in (control.get("aria-describedby") or "").split():
                assert ref in self.ids, (control, ref)


def page(response: Any) -> Page:
    return Page(response.content.decode())


# --- creating ---------------------------------------------------------------------------

def test_new_kit_page_labels_every_control_and_offers_six_unused_colours(
        owner: Persona) -> None:
    response = logged_in(owner).get(CREATE)
    assert response.status_code == 200
    html = page(response)
    html.check_accessible()
    pickers = [c for c in html.controls if c.get("type") == "color"]
    assert len(pickers) == 6
    ticks = [html.control(f"id_palette_{i}_use") for i in range(6)]
    assert all("checked" not in tick for tick in ticks)
    body = response.content.decode()
    assert ">Primary</label>" in body and ">Secondary</label>" in body
    assert ">Colour 3</label>" in body and "Not used" in body
    assert '<option value="league-spartan">League Spartan</option>' in body
    assert html.control("id_logo")["accept"] == "image/png,image/jpeg,image/webp,image/gif"
    assert "remove_logo" not in body  # nothing to remove yet


def test_creating_a_kit_stores_the_logo_as_a_normalised_png(owner: Persona) -> None:
    client = logged_in(owner)
    response = client.post(CREATE, kit_form(logo=upload(image_bytes())))
    assert response.status_code == 302
    assert response["Location"] == NEW
    kit = BrandKit.objects.get(owner=owner.user)
    assert kit.name == "Limonaia"
    assert kit.palette == ["#0b6e4f", "#f5c518"]
    assert (kit.heading_font, kit.body_font) == ("league-spartan", "lato")
    assert kit.tone == "Sunny and warm, never pushy."
    assert kit.banned_words == ["cheap", "free", "guaranteed"]
    assert kit.logo.name.startswith("brand-logos/") and kit.logo.name.endswith(".png")
    logo = stored(kit.logo.name)
    assert logo.format == "PNG" and logo.mode == "RGBA"
    assert max(logo.size) == 1024  # 1600 wide, brought down to the engine's limit
    assert logo.info.get("icc_profile")  # tagged sRGB
    assert logo.getchannel("A").getpixel((0, 0)) == 0  # transparency kept
    listing = client.get(response["Location"]).content.decode()
    assert "Brand kit “Limonaia” created." in listing


@pytest.mark.parametrize(("kind", "name", "content_type"), [
    ("JPEG", "logo.jpg", "image/jpeg"), ("WEBP", "logo.webp", "image/webp"),
    ("GIF", "logo.gif", "image/gif")])
def test_every_accepted_logo_type_becomes_a_png(owner: Persona, kind: str, name: str,
                                                content_type: str) -> None:
    data = image_bytes(kind, (300, 200))
    response = logged_in(owner).post(CREATE, kit_form(logo=upload(data, name, content_type)))
    assert response.status_code == 302
    logo = stored(BrandKit.objects.get(owner=owner.user).logo.name)
    assert (logo.format, logo.mode, logo.size) == ("PNG", "RGBA", (300, 200))


def test_a_created_kit_is_served_by_the_api(owner: Persona) -> None:
    logged_in(owner).post(CREATE, kit_form(logo=upload(image_bytes())))
    response = owner.api().get_json("/api/brand-kits")
    assert response.status_code == 200
    [kit] = response.json()
    assert kit["name"] == "Limonaia"
    assert kit["palette"] == ["#0b6e4f", "#f5c518"]
    assert (kit["heading_font"], kit["body_font"]) == ("league-spartan", "lato")
    assert kit["banned_words"] == ["cheap", "free", "guaranteed"]
    assert kit["logo_url"] and kit["logo_url"].endswith(".png")


def test_only_ticked_colours_are_saved_in_slot_order(owner: Persona) -> None:
    response = logged_in(owner).post(CREATE, kit_form(
        palette_3="#123456", palette_3_use="on", palette_4="#abcdef",
        palette_5="#FEDCBA", palette_5_use="on"))
    assert response.status_code == 302
    kit = BrandKit.objects.get(owner=owner.user)
    assert kit.palette == ["#0b6e4f", "#f5c518", "#123456", "#fedcba"]
    assert not kit.logo


def test_a_kit_without_colours_or_logo_is_allowed(owner: Persona) -> None:
    response = logged_in(owner).post(CREATE, kit_form(
        palette_0_use=None, palette_1_use=None, banned_words="", tone=""))
    assert response.status_code == 302
    kit = BrandKit.objects.get(owner=owner.user)
    assert (kit.palette, kit.banned_words, kit.logo.name) == ([], [], "")


# --- errors -----------------------------------------------------------------------------

def test_a_bad_colour_is_shown_on_its_picker_and_nothing_is_saved(owner: Persona) -> None:
    response = logged_in(owner).post(CREATE, kit_form(palette_1="#12345g"))
    assert response.status_code == 422
    html = page(response)
    html.check_accessible()
    picker = html.control("id_palette_1")
    assert picker["aria-invalid"] == "true"
    assert "id_palette_1_error" in (picker["aria-describedby"] or "")
    assert 'id="id_palette_1_error"' in response.content.decode()
    assert "Choose a colour like #1d4ed8" in response.content.decode()
    assert "aria-invalid" not in html.control("id_palette_0")
    assert not BrandKit.objects.exists()


def test_a_colour_after_an_unticked_primary_is_refused(owner: Persona) -> None:
    response = logged_in(owner).post(CREATE, kit_form(palette_0_use=None))
    assert response.status_code == 422
    assert page(response).control("id_palette_0_use")["aria-invalid"] == "true"
    assert "Tick Primary too" in response.content.decode()
    assert not BrandKit.objects.exists()


def test_an_unknown_font_is_shown_on_its_select_and_nothing_is_saved(owner: Persona) -> None:
    response = logged_in(owner).post(CREATE, kit_form(heading_font="comic-sans"))
    assert response.status_code == 422
    html = page(response)
    html.check_accessible()
    assert html.control("id_heading_font")["aria-invalid"] == "true"
    assert "aria-invalid" not in html.control("id_body_font")
    assert 'id="id_heading_font_error"' in response.content.decode()
    assert not BrandKit.objects.exists()


def test_a_missing_name_is_shown_on_the_name_field(owner: Persona) -> None:
    response = logged_in(owner).post(CREATE, kit_form(name="   "))
    assert response.status_code == 422
    assert page(response).control("id_name")["aria-invalid"] == "true"
    assert not BrandKit.objects.exists()


def test_a_corrupt_logo_is_refused_inline_and_nothing_is_saved(owner: Persona,
                                                               settings: Any) -> None:
    broken = image_bytes()[:200]  # a PNG header, then the file stops
    response = logged_in(owner).post(CREATE, kit_form(logo=upload(broken)))
    assert response.status_code == 422
    html = page(response)
    html.check_accessible()
    assert html.control("id_logo")["aria-invalid"] == "true"
    assert "could not be read as an image" in response.content.decode()
    assert not BrandKit.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / "brand-logos").exists()


def test_a_file_that_is_not_an_image_is_refused(owner: Persona) -> None:
    response = logged_in(owner).post(CREATE, kit_form(
        logo=upload(b"%PDF-1.7 not a logo", "logo.png", "image/png")))
    assert response.status_code == 422
    assert "Please upload a PNG, JPEG, WebP or GIF image." in response.content.decode()
    assert not BrandKit.objects.exists()


def test_an_oversized_logo_is_refused_before_it_is_decoded(owner: Persona) -> None:
    huge = b"\x89PNG\r\n\x1a\n" + b"\0" * (8 * 1024 * 1024)
    response = logged_in(owner).post(CREATE, kit_form(logo=upload(huge)))
    assert response.status_code == 422
    assert "please upload one of at most 8 MB" in response.content.decode()
    assert page(response).control("id_logo")["aria-invalid"] == "true"
    assert not BrandKit.objects.exists()


def test_a_too_long_banned_word_is_shown_on_banned_words(owner: Persona) -> None:
    response = logged_in(owner).post(CREATE, kit_form(banned_words="ok\n" + "x" * 61))
    assert response.status_code == 422
    assert page(response).control("id_banned_words")["aria-invalid"] == "true"
    assert not BrandKit.objects.exists()


def test_service_problems_are_put_on_the_fields_they_name() -> None:
    # Colour 3 unticked: the service's third colour ("palette.2") came from Colour 4.
    form = BrandKitForm(kit_form(palette_3="#333333", palette_3_use="on"))
    assert form.is_valid(), form.errors
    form.add_problems([
        FieldProblem("palette.2", "must be a colour like #1d4ed8"),
        FieldProblem("palette", "must be a list of at most 8 colours"),
        FieldProblem("heading_font", "must be one of inter, lato"),
        FieldProblem("banned_words.3", "must not contain NUL characters"),
        FieldProblem("logo", "The logo could not be read as an image."),
        FieldProblem("owner", "is not allowed"),
    ])
    assert form.errors["palette_3"] == ["Must be a colour like #1d4ed8."]
    assert form.palette_errors == ["Must be a list of at most 8 colours."]
    assert form.errors["heading_font"] == ["Must be one of inter, lato."]
    assert form.errors["banned_words"] == ["Must not contain NUL characters."]
    assert form.errors["logo"] == ["The logo could not be read as an image."]
    assert form.non_field_errors() == ["owner: is not allowed"]


# --- editing ----------------------------------------------------------------------------

def test_the_edit_page_shows_the_kit_and_its_current_logo(owner: Persona,
                                                          outsider: Persona) -> None:
    kit = make_kit(owner)
    response = logged_in(owner).get(f"/brand-kits/{kit.pk}/")
    assert response.status_code == 200
    html = page(response)
    html.check_accessible()
    body = response.content.decode()
    assert f'alt="Current logo of {kit.name}"' in body
    logo = body.split('alt="Current logo of', 1)[0].rsplit('src="', 1)[1].split('"', 1)[0]
    assert logo.startswith(f"/brand-kits/{kit.pk}/logo?v=")
    served = logged_in(owner).get(logo.replace("&amp;", "&"))
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert b"".join(served.streaming_content).startswith(b"\x89PNG")  # type: ignore[arg-type]
    assert logged_in(outsider).get(logo).status_code == 404  # a logo is its owner's only
    assert html.control("id_name")["value"] == "Limonaia"
    assert html.control("id_palette_0")["value"] == "#0b6e4f"
    assert "checked" in html.control("id_palette_1_use")
    assert "checked" not in html.control("id_palette_2_use")
    assert "id_remove_logo" in {c.get("id") for c in html.controls}
    assert '<option value="bebas-neue" selected>Bebas Neue</option>' in body
    assert "Yes, delete “Limonaia”" in body


def test_editing_a_kit_keeps_its_logo_unless_a_new_one_is_given(owner: Persona) -> None:
    kit = make_kit(owner)
    logo = kit.logo.name
    client = logged_in(owner)
    response = client.post(f"/brand-kits/{kit.pk}/", kit_form(
        name="Limonaia Estate", palette_0="#111111", palette_1_use=None,
        heading_font="inter", banned_words=""))
    assert response.status_code == 302
    kit.refresh_from_db()
    assert (kit.name, kit.palette, kit.heading_font) == ("Limonaia Estate", ["#111111"], "inter")
    assert kit.banned_words == [] and kit.logo.name == logo
    assert "Brand kit “Limonaia Estate” saved." in client.get(NEW).content.decode()

    response = client.post(f"/brand-kits/{kit.pk}/", kit_form(
        logo=upload(image_bytes("JPEG", (200, 100)), "new.jpg", "image/jpeg")))
    assert response.status_code == 302
    kit.refresh_from_db()
    assert kit.logo.name != logo and stored(kit.logo.name).size == (200, 100)


def test_removing_the_logo_clears_it_and_keeps_the_file_for_runs(owner: Persona) -> None:
    kit = make_kit(owner)
    logo = kit.logo.name
    response = logged_in(owner).post(f"/brand-kits/{kit.pk}/", kit_form(remove_logo="on"))
    assert response.status_code == 302
    kit.refresh_from_db()
    assert not kit.logo
    assert default_storage.exists(logo)  # other kits and runs' snapshots may name it


def test_removing_and_uploading_a_logo_at_once_is_refused(owner: Persona) -> None:
    kit = make_kit(owner)
    logo = kit.logo.name
    response = logged_in(owner).post(f"/brand-kits/{kit.pk}/", kit_form(
        remove_logo="on", logo=upload(image_bytes("PNG", (64, 64)))))
    assert response.status_code == 422
    assert page(response).control("id_remove_logo")["aria-invalid"] == "true"
    kit.refresh_from_db()
    assert kit.logo.name == logo


def test_a_refused_edit_changes_nothing(owner: Persona) -> None:
    kit = make_kit(owner)
    before = (kit.name, kit.palette, kit.logo.name, kit.heading_font)
    response = logged_in(owner).post(f"/brand-kits/{kit.pk}/", kit_form(
        name="Renamed", logo=upload(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)))
    assert response.status_code == 422
    assert f'alt="Current logo of {kit.name}"' in response.content.decode()
    kit.refresh_from_db()
    assert (kit.name, kit.palette, kit.logo.name, kit.heading_font) == before


# --- other people's kits ----------------------------------------------------------------

def test_another_users_kit_is_not_found_and_stays_unchanged(owner: Persona,
                                                            outsider: Persona) -> None:
    kit = make_kit(owner)
    client = logged_in(outsider)
    assert client.get(f"/brand-kits/{kit.pk}/").status_code == 404
    assert client.post(f"/brand-kits/{kit.pk}/", kit_form(name="Mine now")).status_code == 404
    delete = client.post(reverse("brand_kit_delete", args=[kit.pk]), {"delete-confirm": "on"})
    assert delete.status_code == 404
    kit.refresh_from_db()
    assert kit.name == "Limonaia" and kit.owner == owner.user
    assert client.get("/brand-kits/999999/").status_code == 404


def test_the_list_shows_only_your_own_kits(owner: Persona, outsider: Persona) -> None:
    make_kit(owner, "Limonaia")
    make_kit(owner, "Oliveto", logo=False)
    make_kit(outsider, "Someone Else's")
    response = logged_in(owner).get(NEW)
    assert response.status_code == 200
    html = page(response)
    html.check_accessible()
    body = response.content.decode()
    assert "Limonaia" in body and "Oliveto" in body and "Someone Else" not in body
    assert 'alt="Logo of Limonaia"' in body
    assert "No logo" in body  # Oliveto's placeholder
    assert 'aria-label="Primary #0b6e4f"' in body and "<title>Secondary #f5c518</title>" in body
    assert "Headings: Bebas Neue · Body: Open Sans" in body
    assert body.count('aria-label="Edit ') == 2
    assert 'href="/brand-kits/new"' in body and ">New brand kit</a>" in body


def test_an_empty_list_says_so_and_offers_a_first_kit(owner: Persona,
                                                      outsider: Persona) -> None:
    make_kit(outsider)
    response = logged_in(owner).get(NEW)
    body = response.content.decode()
    assert "You have no brand kits yet." in body
    assert "Create your first brand kit" in body


# --- deleting ---------------------------------------------------------------------------

def test_deleting_needs_the_confirmation_ticked(owner: Persona) -> None:
    kit = make_kit(owner)
    response = logged_in(owner).post(reverse("brand_kit_delete", args=[kit.pk]))
    assert response.status_code == 422
    html = page(response)
    html.check_accessible()
    assert html.control("id_delete-confirm")["aria-invalid"] == "true"
    assert "Tick the box to confirm" in response.content.decode()
    assert BrandKit.objects.filter(pk=kit.pk).exists()


def test_deleting_is_post_only(owner: Persona) -> None:
    kit = make_kit(owner)
    assert logged_in(owner).get(reverse("brand_kit_delete", args=[kit.pk])).status_code == 405
    assert BrandKit.objects.filter(pk=kit.pk).exists()


def test_deleting_a_kit_leaves_its_runs_their_snapshot(owner: Persona) -> None:
    ad_template_seed()
    kit = make_kit(owner)
    run, _ = template_run_start(user=owner.user, slug="discount-banner",
                                variables=variables_for("discount-banner"),
                                formats=["social-square"], brand_kit=kit.pk)
    snapshot = dict(run.brand)
    assert snapshot["logo"] == kit.logo.name
    client = logged_in(owner)
    response = client.post(reverse("brand_kit_delete", args=[kit.pk]), {"delete-confirm": "on"})
    assert response.status_code == 302 and response["Location"] == NEW
    assert not BrandKit.objects.filter(pk=kit.pk).exists()
    run = TemplateRun.objects.get(pk=run.pk)
    assert run.brand_kit is None and run.brand == snapshot
    assert default_storage.exists(snapshot["logo"])
    listing = client.get(NEW).content.decode()
    assert "Brand kit “Limonaia” deleted." in listing
    assert "You have no brand kits yet." in listing


def test_the_pages_need_a_login(owner: Persona) -> None:
    kit = make_kit(owner)
    client = Client()
    for url in (NEW, CREATE, f"/brand-kits/{kit.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(
            "/accounts/login/"), url
    assert client.post(reverse("brand_kit_delete", args=[kit.pk]),
                       {"delete-confirm": "on"}).status_code == 302
    assert BrandKit.objects.filter(pk=kit.pk).exists()
