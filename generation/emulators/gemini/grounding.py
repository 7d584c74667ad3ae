"""Canned Google Search grounding metadata (spec §5, §7.7)."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from .text import Copywriter

REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "brand"


def _token(*parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode("utf-8")).digest() * 3
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def tool_use_tokens(copy: Copywriter) -> int:
    return 60 + copy.number(100, "tool-use")


def grounding_metadata(copy: Copywriter, *, image_search: bool,
                       answer_text: str | None) -> dict[str, Any]:
    query = " ".join(copy.words[:4]).lower()
    domain = f"{_slug(copy.words[0])}.example.com"
    chunks: list[dict[str, Any]] = [{"web": {
        "uri": REDIRECT + _token(copy.digest, "web"), "title": domain, "domain": domain}}]
    metadata: dict[str, Any] = {"webSearchQueries": [query]}
    if image_search:
        metadata["imageSearchQueries"] = [f"{query} photo"]
        chunks.append({"image": {
            "sourceUri": f"https://{domain}/gallery/{_slug(query)}",
            "imageUri": f"https://images.{domain}/{_slug(query)}.jpg",
            "title": f"{copy.phrase('image-title')} - {domain}", "domain": domain}})
    metadata["searchEntryPoint"] = {"renderedContent": _chip_html(query)}
    metadata["groundingChunks"] = chunks
    if answer_text:
        first = answer_text.split("\n")[0] or answer_text
        end = len(first.encode("utf-8"))
        metadata["groundingSupports"] = [{
            "segment": {"startIndex": 0, "endIndex": end, "text": first},
            "groundingChunkIndices": [0]}]
    return metadata


def _chip_html(query: str) -> str:
    href = "https://www.google.com/search?q=" + query.replace(" ", "+")
    return (
        "<style>\n.container { align-items: center; border-radius: 8px; display: flex; "
        "font-family: Google Sans, Roboto, sans-serif; font-size: 14px; line-height: 20px; "
        "padding: 8px 12px; }\n.chip { display: inline-block; border: solid 1px; "
        "border-radius: 16px; min-width: 14px; padding: 5px 16px; text-align: center; "
        "user-select: none; margin: 0 8px; }\n.carousel { overflow: auto; "
        "scrollbar-width: none; white-space: nowrap; margin-right: -12px; }\n</style>\n"
        "<div class=\"container\">\n  <div class=\"headline\">Suggestions</div>\n"
        f"  <div class=\"carousel\">\n    <a class=\"chip\" href=\"{href}\">{query}</a>\n"
        "  </div>\n</div>\n"
    )
