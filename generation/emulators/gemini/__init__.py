"""An offline emulator of the Google Gemini API, for the stock google-genai SDK.

Follows shared/protocols/gemini.md. Usage::

    app = create_app(GeminiEmulatorConfig(latency="instant", faults=None, api_keys=None))
    state = app[GEMINI_STATE]      # counters per model, set_faults(), reset()
    client = genai.Client(api_key="any", http_options=types.HttpOptions(base_url=URL))

Routes (under any path prefix; the version segment may be v1, v1beta or v1alpha):
    POST /{ver}/models/{id}:generateContent
    POST /{ver}/models/{id}:streamGenerateContent?alt=sse   (SSE, ``data: {...}\\r\\n\\r\\n``)
    POST /{ver}/models/{id}:countTokens                      (``{contents}`` or
                                                              ``{generateContentRequest}``)
    GET  /{ver}/models?pageSize=N&pageToken=T, GET /{ver}/models/{id}
    GET  /_emulator/stats, GET|POST /_emulator/faults, POST /_emulator/reset

Auth: the key comes from ``x-goog-api-key`` or ``?key=``. No key: 403
PERMISSION_DENIED. With ``api_keys=None`` any key without "invalid" in it is good;
otherwise only the listed keys. A bad key: 400 INVALID_ARGUMENT, ErrorInfo
API_KEY_INVALID.

Requests are read the tolerant proto-JSON way: camelCase or snake_case names, standard
or URL-safe base64 with or without padding, numbers as floats or strings, enums in any
case, unknown fields ignored. Checked (400 INVALID_ARGUMENT, google.rpc envelope,
HTTP status == code): aspectRatio and imageSize against the model table ("1k" is
refused, imageSize on 2.5 Flash Image is refused), IMAGE modality on a text model,
googleSearch on 2.5 Flash Image, systemInstruction on 2.5 Flash Image, candidateCount > 1
on image models, thinking budget 0 on always-thinking models, a response schema
without a JSON mime type, undecodable images, and model images in the history of a
Gemini 3 image model that lack their thoughtSignature. Unknown model: 404 "models/x is
not found for API version v1beta, or is not supported for generateContent. ...".

Answers are deterministic (the same request gives the same text, JSON and pixels);
``responseId`` is fresh each time and ``modelVersion`` is the model id.
- Text: marketing-style copy built from the prompt's words. With
  ``responseMimeType: application/json`` and ``responseSchema`` or
  ``responseJsonSchema``: JSON valid against the schema (see ``schema``);
  ``text/x.enum``: one enum value. maxOutputTokens and stopSequences cut the text.
- Images: PNG ``inlineData`` at the §1 pixel size for (model, aspectRatio, imageSize),
  showing the prompt, an "OFFLINE PREVIEW" mark, and the reference images (the first
  fills the picture, the rest are thumbnails). No aspectRatio: the input image's shape
  when editing, else 1:1. Default modalities on image models are TEXT + IMAGE (a caption
  then the image).
- Gemini 3 models put a ``thoughtSignature`` on every non-thought part; thinking models
  report ``thoughtsTokenCount`` and, with ``include_thoughts``, start with a thought
  text part (3 Pro Image also sends one interim thought image).
- usageMetadata: prompt tokens by modality (TEXT about 4 chars/token, IMAGE per input
  image), candidate tokens with the §1 image tokens per size tier, thoughts, and
  ``toolUsePromptTokenCount`` when googleSearch grounding is on (canned
  ``groundingMetadata``; image search on 3.1 Flash Image only).
- Streams: text split over several chunks, an image whole in one chunk, finishReason
  and final usage on the last chunk. Never continuationToken or CONTINUATION.

Latency (config.latency): "instant" none, "fast" tens of ms, "realistic" ~1-3 s images.
Faults: prompt tokens ``[[gemini:429]]``, ``[[gemini:500]]``, ``[[gemini:503]]``,
``[[gemini:block]]``, ``[[gemini:image_safety]]``, ``[[gemini:no_image]]``,
``[[gemini:stream_error]]``, ``[[gemini:slow=2.5]]`` and more, the
``X-Emulator-Fault`` header, or per-model rules in ``config.faults`` /
``state.set_faults`` / ``POST /_emulator/faults`` — see ``faults`` for the vocabulary.
"""

from .app import GEMINI_STATE, create_app
from .catalog import MODELS, ModelSpec, find_model
from .state import GeminiEmulatorConfig, GeminiEmulatorState

__all__ = [
    "GEMINI_STATE",
    "MODELS",
    "GeminiEmulatorConfig",
    "GeminiEmulatorState",
    "ModelSpec",
    "create_app",
    "find_model",
]
