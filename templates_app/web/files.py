"""Files the pages show that are not generated images: brand logos, template previews.

They live in Django storage under names nobody should guess, and are served through
views that check who asks (a brand kit's logo only to its owner), never from a public
media folder. Remote storage answers with a short-lived signed link instead.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import reverse

from brenia.errors import NotFound
from templates_app import selectors


def stored_file(name: str) -> HttpResponseBase:
    try:
        default_storage.path(name)
    except NotImplementedError:
        return HttpResponseRedirect(default_storage.url(name))
    if not default_storage.exists(name):
        raise Http404("The file is gone.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
def brand_kit_logo(request: HttpRequest, kit_id: int) -> HttpResponseBase:
    try:
        kit = selectors.brand_kit_get_for_user(user=request.user, kit_id=kit_id)
    except NotFound:
        raise Http404("There is no such brand kit.") from None
    if not kit.logo:
        raise Http404("This brand kit has no logo.")
    return stored_file(kit.logo.name)


@login_required
def template_preview(request: HttpRequest, slug: str) -> HttpResponseBase:
    try:
        template = selectors.ad_template_get_enabled(slug=slug)
    except NotFound:
        raise Http404("There is no such template.") from None
    if not template.preview_image:
        raise Http404("This template has no preview.")
    return stored_file(template.preview_image.name)


def logo_url(kit: Any) -> str | None:
    """The page link to a kit's logo; its name changes with the logo, so caches stay right."""
    if not kit.logo:
        return None
    return f"{reverse('brand_kit_logo', args=[kit.pk])}?v={kit.logo.name.rsplit('/', 1)[-1]}"
