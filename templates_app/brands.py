"""Brand kits: saving them (the logo normalised to an sRGB PNG with alpha), the
snapshot a run keeps of one, and the compose engine's ``Brand`` made from it."""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from brenia.errors import FieldProblem, InvalidInput, NotFound
from brenia.inputs import clean_text
from generation.registry.validation import nul_problems
from templates_app.compose import FONTS, Brand, normalise_logo
from templates_app.models import BrandKit
from templates_app.selectors import brand_kit_editable_ids

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _brand_problems(*, palette: Any, heading_font: str, body_font: str,
                    banned_words: Any) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if not isinstance(palette, list) or len(palette) > 8:
        problems.append(FieldProblem("palette", "must be a list of at most 8 colours"))
    else:
        problems += [FieldProblem(f"palette.{i}", "must be a colour like #1d4ed8")
                     for i, colour in enumerate(palette)
                     if not isinstance(colour, str) or not HEX_COLOUR.match(colour)]
    for name, value in (("heading_font", heading_font), ("body_font", body_font)):
        if value not in FONTS:
            problems.append(FieldProblem(name, "must be one of " + ", ".join(FONTS)))
    if not isinstance(banned_words, list) or not all(
            isinstance(w, str) and 0 < len(w) <= 60 for w in banned_words) \
            or len(banned_words) > 200:
        problems.append(FieldProblem("banned_words",
                                     "must be a list of at most 200 words or phrases"))
    return problems


def brand_logo_store(*, data: bytes) -> str:
    """Normalise an uploaded logo (sRGB PNG with alpha) and store it; its storage name."""
    try:
        png = normalise_logo(data)
    except ValueError as exc:
        raise InvalidInput("The logo is not usable.",
                           errors=[FieldProblem("logo", str(exc))]) from None
    name = f"brand-logos/{hashlib.sha256(png).hexdigest()}.png"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(png))
    return name


def brand_kit_save(*, owner: Any, kit: BrandKit | None = None, name: str,
                   palette: list[str], heading_font: str = "inter", body_font: str = "inter",
                   tone: str = "", banned_words: list[str] | None = None,
                   logo: bytes | None = None, remove_logo: bool = False,
                   team: Any = None) -> BrandKit:
    """Create (no ``kit``) or update a brand kit; a new ``logo`` replaces the old one and
    ``remove_logo`` drops it. A dropped or replaced logo's file stays in storage: names are
    content hashes that other kits and runs' snapshots (``TemplateRun.brand``) may share.

    ``team`` (a Team the caller has checked ``owner`` belongs to) shares a new kit with
    its members; it is read only on creation, so an edit never moves a kit."""
    banned = banned_words or []
    nul = nul_problems(name, "name") + nul_problems(tone, "tone") + \
        nul_problems(banned, "banned_words")
    # Free text (the tone and banned words reach the copy model): no control characters.
    if isinstance(name, str) and isinstance(tone, str):
        name, tone = clean_text(name), clean_text(tone)
    if isinstance(banned, list):
        banned = [clean_text(w) if isinstance(w, str) else w for w in banned]
    problems = _brand_problems(palette=palette, heading_font=heading_font,
                               body_font=body_font, banned_words=banned)
    if logo and remove_logo:
        problems.append(FieldProblem("logo", "give a new logo or remove the logo, not both"))
    if not name.strip():
        problems.append(FieldProblem("name", "must not be empty"))
    problems += nul
    if problems:
        raise InvalidInput("The brand kit has invalid fields.", errors=problems)
    logo_name = brand_logo_store(data=logo) if logo else None
    kit = kit or BrandKit(owner=owner, team=team)
    kit.name, kit.palette, kit.tone = name.strip(), palette, tone
    kit.heading_font, kit.body_font, kit.banned_words = heading_font, body_font, banned
    if logo_name:
        kit.logo.name = logo_name
    elif remove_logo:
        kit.logo.name = ""
    kit.save()
    return kit


def brand_kit_delete(*, owner: Any, kit: BrandKit) -> None:
    """Delete a kit ``owner`` may edit (theirs, or one of a team they own). Runs made with
    it keep what they used: their ``brand_kit`` goes NULL (``on_delete=SET_NULL``) while
    ``TemplateRun.brand`` holds the snapshot, logo by storage name, so the logo file is
    deliberately left in storage."""
    if not brand_kit_editable_ids(user=owner).filter(pk=kit.pk).exists():
        raise NotFound("There is no such brand kit.", code="brand_kit_not_found")
    kit.delete()


def brand_snapshot(kit: BrandKit | None) -> dict[str, Any]:
    if kit is None:
        return {}
    return {"id": kit.pk, "name": kit.name, "palette": list(kit.palette),
            "heading_font": kit.heading_font, "body_font": kit.body_font, "tone": kit.tone,
            "banned_words": list(kit.banned_words), "logo": kit.logo.name or ""}


def brand_for_layout(snapshot: dict[str, Any], *, with_logo: bool = True) -> Brand:
    """The compose engine's Brand from a run's snapshot (the default look without a kit)."""
    kwargs: dict[str, Any] = {}
    if snapshot.get("palette"):
        kwargs["palette"] = tuple(snapshot["palette"])
    for key in ("heading_font", "body_font"):
        if snapshot.get(key):
            kwargs[key] = snapshot[key]
    if with_logo and snapshot.get("logo"):
        with default_storage.open(snapshot["logo"]) as handle:
            logo = PILImage.open(io.BytesIO(handle.read()))
            kwargs["logo"] = logo.convert("RGBA")
    return Brand(**kwargs)
