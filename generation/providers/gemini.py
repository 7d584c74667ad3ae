"""Google Gemini through the stock google-genai SDK (``client.aio``).

Image models ("Nano Banana") return images inline; text models write copy, plain
or as JSON of a given schema. The model id and prices come from the registry row;
the same code talks to Google and to the built-in emulator (``GEMINI_BASE_URL``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import weakref
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from brenia.safe_http import FetchStopped, SafeClient
from brenia.urlguard import BlockedURL
from generation.providers.base import (
    MalformedResponse,
    OnSubmitted,
    OnUpdate,
    OutputImage,
    PermanentProviderError,
    Provider,
    ProviderError,
    ProviderResult,
    Running,
    TransientProviderError,
    decode_data_uri,
    log_provider_call,
)
from generation.providers.reference_cache import fetched as fetched_recently
from generation.providers.reference_cache import remember_fetch

if TYPE_CHECKING:
    from generation.models import AIModel, Job

MAX_REFERENCE_BYTES = 7 * 1024 * 1024
TRANSIENT_CODES = frozenset({408, 429, 500, 502, 503, 504})

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, genai.Client] = (
    weakref.WeakKeyDictionary()
)


def _client() -> genai.Client:
    if not settings.GEMINI_API_KEY:
        raise PermanentProviderError("GEMINI_API_KEY is not set: Brenia cannot call Gemini.",
                                     code="provider_not_configured")
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = genai.Client(api_key=settings.GEMINI_API_KEY, http_options=types.HttpOptions(
            base_url=settings.GEMINI_BASE_URL, timeout=120_000))
        _clients[loop] = client
    return client


def classify_api_error(exc: genai_errors.APIError) -> ProviderError:
    code = int(exc.code or 0)
    message = exc.message or str(exc)
    status = (exc.status or "").lower() or f"http_{code}"
    if code in TRANSIENT_CODES:
        return TransientProviderError(message, code=status, detail=exc.details)
    return PermanentProviderError(message, code=status, detail=exc.details)


def _classify_call_error(exc: Exception) -> ProviderError | None:
    """What a failed ``generate_content`` means for the job; None for a bug of ours."""
    if isinstance(exc, genai_errors.APIError):
        return classify_api_error(exc)
    if isinstance(exc, genai_errors.UnknownApiResponseError):
        return MalformedResponse("Gemini returned a response that is not JSON.",
                                 code="malformed_response")
    # google-genai uses its own httpx fork; its transport errors are matched by name.
    if isinstance(exc, (httpx.TimeoutException, httpx.TransportError)) or \
            exc.__class__.__name__ in ("ConnectError", "ReadTimeout", "ConnectTimeout",
                                       "RemoteProtocolError", "ReadError"):
        return TransientProviderError("Gemini could not be reached.",
                                      code="provider_unreachable")
    return None


# Gemini's image size tiers, as a factor on each side of the 1K tier.
GEMINI_SIZE_SCALE: dict[str, float] = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}


class GeminiProvider(Provider):
    name = "gemini"

    def build_arguments(self, *, model: AIModel, inputs: dict[str, Any],
                        options: dict[str, Any]) -> dict[str, Any]:
        arguments = dict(inputs)
        if "seed" in options:
            arguments["seed"] = options["seed"]
        if "width" in options and "height" in options and "aspect_ratio" not in arguments:
            arguments["aspect_ratio"] = nearest_aspect_ratio(options["width"], options["height"])
        return arguments

    def estimate_images(self, arguments: dict[str, Any],
                        model: AIModel | None = None) -> list[tuple[int, int]]:
        """One image of about a megapixel at the 1K tier in the asked aspect ratio; each
        tier up doubles both sides ("2K" is about 4 MP, "4K" about 16 MP), "512" halves
        them. Close to Gemini's own pixel tables, which move by a few percent."""
        if model is None or model.kind == "text":
            return []
        size = arguments.get("image_size") or (model.output_mapping or {}).get("default", "1K")
        scale = GEMINI_SIZE_SCALE.get(str(size), 1.0)
        try:
            across, down = (float(part) for part in
                            str(arguments.get("aspect_ratio") or "1:1").split(":", 1))
            ratio = across / down
        except (TypeError, ValueError, ZeroDivisionError):
            ratio = 1.0
        if not 0.01 < ratio < 100:  # not a ratio Gemini serves (the schema refuses it)
            ratio = 1.0
        width = math.sqrt(1024 * 1024 * ratio) * scale
        height = math.sqrt(1024 * 1024 / ratio) * scale
        return [(round(width), round(height))]

    def estimate(self, model: AIModel, arguments: dict[str, Any]) -> Decimal:
        """Tokens the registry row says a result of this size costs, at its token price.

        ``output_mapping`` holds ``image_tokens`` per size tier (and the ``default`` tier)
        for image models, ``expected_output_tokens`` for text models.
        """
        mapping = model.output_mapping or {}
        if model.kind == "text":
            tokens = int(arguments.get("max_output_tokens")
                         or mapping.get("expected_output_tokens", 1024))
        else:
            tiers = mapping.get("image_tokens") or {}
            size = arguments.get("image_size") or mapping.get("default", "1K")
            tokens = int(tiers.get(size) or max(tiers.values(), default=0))
        return self.price_tokens(model, tokens)

    async def execute(self, *, job: Job, on_submitted: OnSubmitted,
                      on_update: OnUpdate) -> ProviderResult:
        model = job.called_model
        arguments = job.provider_arguments
        # A Gemini call is one request with no remote queue: there is no request id to
        # re-attach to, so the job is marked submitted just before the call.
        await on_submitted("")
        await on_update(Running(new_logs=[f"Calling {model.endpoint_id}"]))
        is_text = model.kind == "text"
        contents: list[Any] = [str(arguments.get("prompt", ""))]
        for url in arguments.get("reference_image_urls", []) or []:
            contents.append(await _reference_part(url))
        config = self._config(arguments, is_text=is_text)
        started = time.monotonic()
        try:
            response = await _client().aio.models.generate_content(
                model=model.endpoint_id, contents=contents, config=config)
        except Exception as exc:
            error = _classify_call_error(exc)
            log_provider_call(provider=self.name, call="generate_content",
                              endpoint=model.endpoint_id, started=started,
                              outcome=error.code if error else exc.__class__.__name__)
            if error is None:
                raise
            raise error from exc
        log_provider_call(provider=self.name, call="generate_content",
                          endpoint=model.endpoint_id, started=started)
        return self._parse(response, is_text=is_text, arguments=arguments)

    def _config(self, arguments: dict[str, Any], *, is_text: bool) -> types.GenerateContentConfig:
        if is_text:
            schema = arguments.get("response_schema")
            return types.GenerateContentConfig(
                system_instruction=arguments.get("system") or None,
                temperature=arguments.get("temperature"),
                max_output_tokens=arguments.get("max_output_tokens"),
                seed=arguments.get("seed"),
                response_mime_type="application/json" if schema else None,
                response_json_schema=schema or None,
            )
        image_config = types.ImageConfig(aspect_ratio=arguments.get("aspect_ratio"),
                                         image_size=arguments.get("image_size"))
        return types.GenerateContentConfig(response_modalities=["IMAGE"],
                                           image_config=image_config, seed=arguments.get("seed"))

    def _parse(self, response: types.GenerateContentResponse, *, is_text: bool,
               arguments: dict[str, Any]) -> ProviderResult:
        usage = response.usage_metadata
        usage_dict = usage.model_dump(mode="json", exclude_none=True) if usage else {}
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            reason = str(feedback.block_reason.value if hasattr(feedback.block_reason, "value")
                         else feedback.block_reason)
            raise PermanentProviderError(
                "The prompt was blocked by the provider's safety filter "
                f"({reason}). Rephrase the brief and try again.", code="prompt_blocked")
        candidate = response.candidates[0] if response.candidates else None
        finish = ""
        if candidate is not None and candidate.finish_reason is not None:
            finish = str(getattr(candidate.finish_reason, "value", candidate.finish_reason))
        text = "".join(part.text or "" for part in (response.parts or [])
                       if not part.thought and part.text)
        if is_text:
            if not text:
                raise PermanentProviderError(f"The model returned no text ({finish or 'empty'}).",
                                             code="no_text")
            if arguments.get("response_schema"):
                try:
                    json.loads(text)
                except ValueError as exc:
                    raise MalformedResponse("The model's JSON answer is not valid JSON.",
                                            code="malformed_response") from exc
            return ProviderResult(images=[], text=text, usage=usage_dict,
                                  billed_tokens=_total_output_tokens(usage))
        images = [
            OutputImage(data=part.inline_data.data, content_type=part.inline_data.mime_type or "")
            for part in (response.parts or [])
            if not part.thought and part.inline_data is not None and part.inline_data.data
        ]
        if not images:
            code = finish.lower() if finish and finish != "STOP" else "no_image"
            message = "The image was withheld by the provider's safety filter." \
                if "SAFETY" in finish or "PROHIBITED" in finish \
                else "The model answered without an image."
            if text:
                message += f" It said: {text[:300]}"
            raise PermanentProviderError(message, code=code)
        return ProviderResult(images=images, text=text, usage=usage_dict,
                              billed_tokens=_image_tokens(usage))

    def price_tokens(self, model: AIModel, tokens: int) -> Decimal:
        return model.price_per_million_tokens * Decimal(tokens) / Decimal(1_000_000)


def _image_tokens(usage: types.GenerateContentResponseUsageMetadata | None) -> int | None:
    if usage is None:
        return None
    details = usage.candidates_tokens_details or []
    tokens = sum(d.token_count or 0 for d in details
                 if str(getattr(d.modality, "value", d.modality)) == "IMAGE")
    return tokens or usage.candidates_token_count


def _total_output_tokens(usage: types.GenerateContentResponseUsageMetadata | None) -> int | None:
    if usage is None:
        return None
    return (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)


_reference_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SafeClient] = (
    weakref.WeakKeyDictionary()
)


def _reference_client() -> SafeClient:
    """Reference images are the user's URLs: no host is trusted, every address checked."""
    loop = asyncio.get_running_loop()
    client = _reference_clients.get(loop)
    if client is None:
        client = _reference_clients[loop] = SafeClient(timeout=30)
    return client


async def _reference_part(url: str) -> types.Part:
    """Fetch a user-supplied reference image through the pinned client, capped in bytes
    and in time; a URL fetched a moment ago is served from the reference cache."""
    if url.startswith("data:"):
        mime = url[5:url.index(";")] if ";" in url else "image/png"
        return types.Part.from_bytes(data=decode_data_uri(url), mime_type=mime)
    held = fetched_recently(url)
    if held is not None:
        return types.Part.from_bytes(data=held[0], mime_type=held[1])
    try:
        fetched = await _reference_client().fetch(
            "GET", url, field="inputs.reference_image_urls", max_bytes=MAX_REFERENCE_BYTES,
            deadline=settings.BRENIA_DOWNLOAD_TIMEOUT)
    except BlockedURL as exc:
        raise PermanentProviderError("A reference image URL points to an internal address.",
                                     code="url_not_allowed") from exc
    except (FetchStopped, httpx.HTTPError) as exc:
        raise PermanentProviderError(f"A reference image could not be fetched: {exc}",
                                     code="reference_image_unavailable") from exc
    if fetched.status_code != 200:  # a redirect too: Brenia does not follow them
        raise PermanentProviderError("A reference image could not be fetched.",
                                     code="reference_image_unavailable")
    mime = fetched.headers.get("content-type", "image/png").split(";")[0]
    remember_fetch(url, fetched.body, mime)
    return types.Part.from_bytes(data=fetched.body, mime_type=mime)


ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


def nearest_aspect_ratio(width: int, height: int) -> str:
    target = width / height

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(int(w) / int(h) - target)

    return min(ASPECT_RATIOS, key=distance)
