"""Images people give Brenia come out plain: upright, sRGB, no metadata, in an allowed
format and within limits; anything else is refused by name. The function itself
(``brenia.images.normalise_image``), then the doors it guards: a playground upload, a
template's product photo (page and API) and an image data URI sent to the API."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageCms

from brenia.images import ImageRefused, normalise_image, srgb_icc_bytes
from generation.models import Job
from templates_app.models import TemplateRun
from templates_app.services import ad_template_seed
from tests.conftest import Persona

RED, BLUE = (220, 20, 30), (20, 40, 220)
# D50-adapted sRGB primaries, as an ICC profile holds them.
SRGB_RED, SRGB_GREEN, SRGB_BLUE = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971),
                                   (0.1431, 0.0606, 0.7141))


# --- pictures, made with Pillow -------------------------------------------------------------

def sideways_jpeg() -> bytes:
    """A phone photo stored sideways: 40×20, red left half, blue right half, with EXIF
    orientation 6 (show it turned 90° clockwise), a camera make and a comment."""
    picture = Image.new("RGB", (40, 20), BLUE)
    picture.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8298] = "Someone's secret"  # Copyright
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=95, exif=exif.tobytes(), comment=b"taken at home")
    return buffer.getvalue()


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def icc_profile(red: tuple[float, float, float], green: tuple[float, float, float],
                blue: tuple[float, float, float]) -> bytes:
    """A minimal matrix/TRC RGB display profile (ICC v2) with these primaries."""
    text = b"Test primaries\0"
    desc = (b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 8
            + b"\0" * 3 + b"\0" * 67)
    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", 0x0233) + b"\0\0"
    tags = [(b"desc", desc), (b"wtpt", _xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", _xyz(*red)),
            (b"gXYZ", _xyz(*green)), (b"bXYZ", _xyz(*blue)), (b"rTRC", curve),
            (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"lcms" + struct.pack(">I", 0x02100000)
              + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 24 + b"\0" * 4
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + data


def encoded(picture: Image.Image, kind: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, kind, **params)
    return buffer.getvalue()


def bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG that claims ``width`` × ``height`` pixels in a few dozen bytes."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(
            ">I", zlib.crc32(tag + body))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def decoded(uri: str) -> Image.Image:
    header, _, payload = uri.partition(",")
    picture = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert header == f"data:{Image.MIME[picture.format or '']};base64"
    return picture


def assert_plain(picture: Image.Image) -> None:
    """Upright 20×40 red-over-blue, sRGB, and nothing else carried along."""
    assert picture.size == (20, 40)
    top, bottom = picture.convert("RGB").getpixel((10, 5)), picture.convert("RGB").getpixel(
        (10, 35))
    assert top[0] > 180 and top[2] < 80, top  # red above
    assert bottom[2] > 180 and bottom[0] < 80, bottom  # blue below
    assert picture.info.get("icc_profile") == srgb_icc_bytes()
    assert "exif" not in picture.info and "comment" not in picture.info
    assert not picture.getexif()
    assert all(marker in ("APP0", "APP2") for marker, _ in getattr(picture, "applist", []))


# --- the function ---------------------------------------------------------------------------

def test_an_exif_rotated_photo_comes_out_upright_without_its_metadata() -> None:
    raw = sideways_jpeg()
    with Image.open(io.BytesIO(raw)) as before:  # as stored: sideways, and telling tales
        assert before.size == (40, 20) and before.getexif()[0x010F] == "PhoneMaker"
    image = normalise_image(raw)
    assert (image.mime, image.width, image.height) == ("image/jpeg", 20, 40)
    assert_plain(Image.open(io.BytesIO(image.data)))


def test_a_picture_with_another_profile_comes_out_in_srgb() -> None:
    # Its "red" primary is sRGB's green: a viewer that reads the profile shows green.
    swapped = icc_profile(SRGB_GREEN, SRGB_RED, SRGB_BLUE)
    raw = encoded(Image.new("RGB", (8, 8), (255, 0, 0)), "PNG", icc_profile=swapped)
    out = Image.open(io.BytesIO(normalise_image(raw).data))
    r, g, b = out.convert("RGB").getpixel((4, 4))
    assert g > 200 and r < 60 and b < 60
    assert out.info["icc_profile"] == srgb_icc_bytes()


def test_a_cmyk_photo_comes_out_as_srgb_rgb() -> None:
    raw = encoded(Image.new("CMYK", (30, 20), (0, 255, 255, 0)), "JPEG", quality=95)
    image = normalise_image(raw)
    out = Image.open(io.BytesIO(image.data))
    assert (image.mime, out.mode) == ("image/jpeg", "RGB")
    r, g, b = out.getpixel((15, 10))
    assert r > 200 and g < 60 and b < 60  # red ink reads red
    assert ImageCms.getProfileDescription(
        ImageCms.ImageCmsProfile(io.BytesIO(out.info["icc_profile"]))).strip() == "sRGB built-in"


def test_text_chunks_and_exif_in_a_png_are_stripped_and_alpha_kept() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Someone")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>")
    picture = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    picture.paste((*RED, 255), (0, 0, 5, 10))
    image = normalise_image(encoded(picture, "PNG", pnginfo=info))
    out = Image.open(io.BytesIO(image.data))
    assert (image.mime, out.mode) == ("image/png", "RGBA")
    assert set(out.info) == {"icc_profile"} and not out.text
    assert out.getpixel((8, 5))[3] == 0 and out.getpixel((2, 5)) == (*RED, 255)


@pytest.mark.parametrize(("kind", "mime"), [("GIF", "image/png"), ("WEBP", "image/jpeg")])
def test_a_gif_becomes_a_png_and_a_lossy_webp_a_jpeg(kind: str, mime: str) -> None:
    image = normalise_image(encoded(Image.new("RGB", (12, 8), RED), kind))
    assert (image.mime, image.width, image.height) == (mime, 12, 8)


def test_a_plain_image_is_kept_as_it_is_so_normalising_twice_loses_nothing() -> None:
    once = normalise_image(sideways_jpeg())
    assert normalise_image(once.data).data == once.data
    plain_png = encoded(Image.new("RGB", (6, 6), BLUE), "PNG")
    assert normalise_image(plain_png).data == plain_png


@pytest.mark.parametrize(("data", "reason"), [
    (bomb(), "too_many_pixels"),           # past Pillow's own bomb limit
    (bomb(8_000, 8_000), "too_many_pixels"),  # 64 MP: past Brenia's 40
    (b"just some text, not a picture", "not_an_image"),
    (encoded(Image.new("RGB", (4, 4)), "BMP"), "not_an_image"),  # not on the allow-list
    (encoded(Image.new("RGB", (4, 4)), "PNG")[:40], "not_an_image"),
    (b"", "empty"),
])
def test_what_is_not_a_safe_image_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRefused) as refused:
        normalise_image(data)
    assert refused.value.reason == reason


def test_a_bomb_costs_nothing_to_refuse() -> None:
    # 10 gigapixels declared in a few dozen bytes: refused from the header, never decoded.
    assert len(bomb()) < 100
    with pytest.raises(ImageRefused, match="40 megapixels"):
        normalise_image(bomb())


# --- the doors ------------------------------------------------------------------------------

def browser_for(persona: Persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def upload(data: bytes, name: str = "photo.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


@pytest.mark.django_db
def test_a_playground_upload_is_sent_plain(owner: Persona, fal_emulator: Any) -> None:
    response = browser_for(owner).post("/playground/background-removal/", {
        "image_url__upload": upload(sideways_jpeg())})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get(user=owner.user)
    assert_plain(decoded(job.inputs["image_url"]))
    assert job.provider_arguments["image_url"] == job.inputs["image_url"]


@pytest.mark.django_db
@pytest.mark.parametrize(("data", "message"), [
    (bomb(), "The image has more than 40 megapixels; upload a smaller one."),
    (b"%PDF-1.4 not an image", "Upload a PNG, JPEG, WebP or GIF image; this file is not one "
                               "or is damaged."),
])
def test_a_bad_upload_is_an_inline_error_not_a_500(owner: Persona, fal_emulator: Any,
                                                   data: bytes, message: str) -> None:
    response = browser_for(owner).post("/playground/background-removal/", {
        "image_url__upload": upload(data)})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Job.objects.exists()


@pytest.fixture
def templates(seeded: None, fal_emulator: Any, gemini_emulator: Any) -> None:
    ad_template_seed()


@pytest.mark.django_db
def test_a_product_photo_uploaded_on_the_template_page_is_kept_plain(
        owner: Persona, templates: None) -> None:
    response = browser_for(owner).post("/templates/product-shot/", {
        "product_photo__upload": upload(sideways_jpeg()), "product_name": "Lemonade",
        "run-formats": ["square"], "run-output_format": "png"})
    assert response.status_code == 302, response.content.decode()[:3000]
    run = TemplateRun.objects.get(user=owner.user)
    assert_plain(decoded(run.variables["product_photo"]))
    cutout = run.steps.get(key="cutout")
    assert cutout.inputs["image_url"] == run.variables["product_photo"]


@pytest.mark.django_db
def test_a_product_photo_sent_to_the_api_is_kept_plain(owner: Persona,
                                                       templates: None) -> None:
    response = owner.api().post_json("/api/templates/product-shot/runs", {
        "variables": {"product_photo": data_uri(sideways_jpeg()), "product_name": "Lemonade"},
        "formats": ["square"]})
    assert response.status_code == 202, response.json()
    run = TemplateRun.objects.get(user=owner.user)
    assert_plain(decoded(run.variables["product_photo"]))


@pytest.mark.django_db
def test_an_image_data_uri_sent_to_the_api_is_stored_and_forwarded_plain(
        owner: Persona, fal_emulator: Any) -> None:
    response = owner.api().post_json("/api/images/generate", {
        "model": "image-to-image",
        "inputs": {"prompt": "Make it autumn", "image_url": data_uri(sideways_jpeg())}})
    assert response.status_code == 202, response.json()
    job = Job.objects.get(user=owner.user)
    assert_plain(decoded(job.inputs["image_url"]))
    assert job.provider_arguments["image_url"] == job.inputs["image_url"]


@pytest.mark.django_db
def test_a_bomb_sent_to_the_api_is_422_naming_the_field(owner: Persona) -> None:
    response = owner.api().post_json("/api/images/generate", {
        "model": "image-to-image",
        "inputs": {"prompt": "x", "image_url": data_uri(bomb(), "image/png")}})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "inputs.image_url",
                                          "problem": "is an image of more than 40 megapixels"}]
    assert not Job.objects.exists()
