"""A GenerateContentRequest, parsed and checked against the model table (spec §3, §7.3).

The wording of the 400 messages for aspect ratio, image size, modality, search and
candidate count is UNCONFIRMED (spec §4); the rules are the emulator's, from §1 and §7.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelSpec
from .errors import bad_request, invalid_value
from .wire import (
    Conversation,
    ensure_object,
    enum_value,
    get,
    number,
    read_contents,
    system_text,
    text_tokens,
)

MODALITIES = ("TEXT", "IMAGE", "AUDIO", "MODALITY_UNSPECIFIED")
THINKING_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "THINKING_LEVEL_UNSPECIFIED")
HARM_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY", "HARM_CATEGORY_UNSPECIFIED",
)
HARM_THRESHOLDS = ("BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_ONLY_HIGH",
                   "BLOCK_NONE", "OFF", "HARM_BLOCK_THRESHOLD_UNSPECIFIED")
TEXT_MIME_TYPES = ("text/plain", "application/json", "text/x.enum", "application/xml",
                   "application/yaml")


@dataclass
class GenerateRequest:
    model: ModelSpec
    api_version: str
    conversation: Conversation
    system: str = ""
    modalities: tuple[str, ...] = ("TEXT",)
    aspect_ratio: str | None = None
    image_size: str | None = None
    candidate_count: int = 1
    max_output_tokens: int | None = None
    stop_sequences: list[str] = field(default_factory=list)
    seed: int | None = None
    response_mime_type: str = "text/plain"
    schema: dict[str, Any] | None = None
    schema_is_json_schema: bool = False
    include_thoughts: bool = False
    thinking_level: str | None = None
    thinking_budget: int | None = None
    search: bool = False
    image_search: bool = False
    digest: str = ""

    @property
    def prompt(self) -> str:
        return self.conversation.prompt

    @property
    def wants_image(self) -> bool:
        return "IMAGE" in self.modalities

    @property
    def prompt_text_tokens(self) -> int:
        conv = self.conversation
        return conv.text_tokens + text_tokens(self.system) + conv.other_tokens

    @property
    def prompt_tokens(self) -> int:
        return self.prompt_text_tokens + self.conversation.image_tokens

    def thinks(self) -> bool:
        mode = self.model.thinking
        if mode == "never":
            return False
        if mode == "always":
            return True
        if mode == "optional":
            return bool(self.thinking_budget) and self.thinking_budget != 0
        return self.thinking_budget != 0


def parse_count_request(body: dict[str, Any], model: ModelSpec) -> Conversation:
    """countTokens takes ``{contents}`` or ``{generateContentRequest: {...}}``."""
    inner = get(body, "generateContentRequest")
    if isinstance(inner, dict):
        conv = read_contents(get(inner, "contents"), model, image_model=False)
        conv.text_tokens += text_tokens(system_text(get(inner, "systemInstruction")))
        return conv
    return read_contents(get(body, "contents"), model, image_model=False)


def parse_generate_request(body: Any, model: ModelSpec, api_version: str) -> GenerateRequest:
    if not isinstance(body, dict):
        raise bad_request("Invalid JSON payload received. Expected an object.")
    image_model = model.kind == "image"
    conv = read_contents(get(body, "contents"), model, image_model=image_model)
    req = GenerateRequest(model=model, api_version=api_version, conversation=conv)
    req.system = system_text(get(body, "systemInstruction"))
    if req.system and not model.accepts_system_instruction:
        raise bad_request(f"Developer instruction is not enabled for {model.name}")
    _read_generation_config(req, ensure_object(get(body, "generationConfig"),
                                               "generation_config"))
    _read_tools(req, get(body, "tools"))
    _read_safety_settings(get(body, "safetySettings"))
    req.digest = _digest(req, body)
    return req


def _read_generation_config(req: GenerateRequest, config: dict[str, Any]) -> None:
    model = req.model
    modalities = get(config, "responseModalities") or []
    if not isinstance(modalities, list):
        raise invalid_value("generation_config.response_modalities", "TYPE_ENUM", modalities)
    type_name = (f"type.googleapis.com/google.ai.generativelanguage.{req.api_version}."
                 "GenerationConfig.Modality")
    picked = tuple(enum_value(m, MODALITIES, type_name=type_name,
                              field_path=f"generation_config.response_modalities[{i}]")
                   for i, m in enumerate(modalities))
    picked = tuple(m for m in picked if m != "MODALITY_UNSPECIFIED")
    if not picked:
        picked = ("TEXT", "IMAGE") if model.kind == "image" else ("TEXT",)
    allowed = {"TEXT", "IMAGE"} if model.kind == "image" else {"TEXT"}
    if not set(picked) <= allowed:
        listed = ",".join(m.lower() for m in picked)
        raise bad_request(f"Model does not support the requested response modalities: {listed}")
    req.modalities = picked

    _read_image_config(req, ensure_object(get(config, "imageConfig"),
                                          "generation_config.image_config"))
    for name in ("temperature", "topP", "topK", "presencePenalty", "frequencyPenalty"):
        number(get(config, name), field_path=f"generation_config.{_snake(name)}")
    temperature = get(config, "temperature")
    if temperature is not None and not 0.0 <= float(temperature) <= 2.0:
        raise bad_request("* GenerateContentRequest.generation_config.temperature: "
                          "temperature must be in the range [0.0, 2.0]\n")
    count = number(get(config, "candidateCount"), field_path="generation_config.candidate_count",
                   integer=True)
    if count is not None:
        if not 1 <= count <= 8:
            raise bad_request("* GenerateContentRequest.generation_config.candidate_count: "
                              "candidate_count must be in the range [1, 8]\n")
        if count > 1 and not model.multiple_candidates:
            raise bad_request(f"Multiple candidates is not enabled for {model.name}")
        req.candidate_count = int(count)
    max_tokens = number(get(config, "maxOutputTokens"),
                        field_path="generation_config.max_output_tokens", integer=True)
    req.max_output_tokens = int(max_tokens) if max_tokens is not None and max_tokens > 0 else None
    seed = number(get(config, "seed"), field_path="generation_config.seed", integer=True)
    req.seed = int(seed) if seed is not None else None
    stops = get(config, "stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid_value("generation_config.stop_sequences", "TYPE_STRING", stops)
    req.stop_sequences = [s for s in stops if s]

    mime = str(get(config, "responseMimeType") or "text/plain").strip().lower()
    if mime not in TEXT_MIME_TYPES:
        raise bad_request("* GenerateContentRequest.generation_config.response_mime_type: "
                          "allowed mimetypes are `text/plain`, `application/json`, "
                          "`application/xml`, `application/yaml` and `text/x.enum`.\n")
    req.response_mime_type = mime
    schema = get(config, "responseSchema")
    json_schema = get(config, "responseJsonSchema", get(config, "_responseJsonSchema"))
    if schema is not None and json_schema is not None:
        raise bad_request("* GenerateContentRequest.generation_config.response_schema: only "
                          "one of response_schema and response_json_schema may be set.\n")
    chosen = schema if schema is not None else json_schema
    if chosen is not None:
        if not isinstance(chosen, dict):
            raise invalid_value("generation_config.response_schema", "TYPE_MESSAGE", chosen)
        if mime not in ("application/json", "text/x.enum"):
            raise bad_request("* GenerateContentRequest.generation_config.response_mime_type: "
                              "response_mime_type must be application/json or text/x.enum "
                              "when a response schema is set.\n")
        req.schema = chosen
        req.schema_is_json_schema = schema is None
    _read_thinking(req, ensure_object(get(config, "thinkingConfig"),
                                      "generation_config.thinking_config"))


def _read_image_config(req: GenerateRequest, image_config: dict[str, Any]) -> None:
    model = req.model
    if model.kind != "image":
        return  # text models ignore imageConfig; an IMAGE modality was refused above
    ratio = get(image_config, "aspectRatio")
    if ratio not in (None, ""):
        if not isinstance(ratio, str) or ratio.strip() not in model.aspect_ratios:
            raise bad_request(
                f"Unsupported aspect ratio \"{ratio}\" for {model.name}. Supported aspect "
                f"ratios: {', '.join(model.aspect_ratios)}.",
                field="generation_config.image_config.aspect_ratio")
        req.aspect_ratio = ratio.strip()
    size = get(image_config, "imageSize")
    if size not in (None, ""):
        if not model.image_sizes:
            raise bad_request(f"Image size is not supported for {model.name}; it always "
                              "produces 1K images.",
                              field="generation_config.image_config.image_size")
        if not isinstance(size, str) or size.strip() not in model.image_sizes:
            raise bad_request(
                f"Unsupported image size \"{size}\" for {model.name}. Supported image sizes "
                f"(upper-case K): {', '.join(model.image_sizes)}.",
                field="generation_config.image_config.image_size")
        req.image_size = size.strip()


def _read_thinking(req: GenerateRequest, thinking: dict[str, Any]) -> None:
    req.include_thoughts = bool(get(thinking, "includeThoughts", False))
    budget = number(get(thinking, "thinkingBudget"),
                    field_path="generation_config.thinking_config.thinking_budget", integer=True)
    req.thinking_budget = int(budget) if budget is not None else None
    level = get(thinking, "thinkingLevel")
    if level is not None:
        req.thinking_level = enum_value(
            level, THINKING_LEVELS, field_path="generation_config.thinking_config.thinking_level",
            type_name="type.googleapis.com/google.ai.generativelanguage."
                      f"{req.api_version}.ThinkingConfig.ThinkingLevel")
    if req.thinking_budget == 0 and req.model.thinking == "always":
        raise bad_request("Budget 0 is invalid. This model only works in thinking mode.")


def _read_tools(req: GenerateRequest, tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid_value("tools", "TYPE_MESSAGE", tools)
    for i, tool in enumerate(tools):
        tool = ensure_object(tool, f"tools[{i}]")
        if get(tool, "googleSearchRetrieval") is not None:
            raise bad_request("google_search_retrieval is not supported; please use "
                              "google_search tool instead.")
        search = get(tool, "googleSearch")
        if search is None:
            continue  # function declarations, code execution, url context: accepted, unused
        if not req.model.supports_search:
            raise bad_request(f"Search Grounding is not supported for {req.model.name}.")
        req.search = True
        types = get(ensure_object(search, f"tools[{i}].google_search"), "searchTypes")
        if isinstance(types, dict) and get(types, "imageSearch") is not None:
            # 3 Pro does web search only; it ignores the image-search request (guess).
            req.image_search = req.model.supports_image_search


def _read_safety_settings(settings: Any) -> None:
    if settings is None:
        return
    if not isinstance(settings, list):
        raise invalid_value("safety_settings", "TYPE_MESSAGE", settings)
    for i, setting in enumerate(settings):
        setting = ensure_object(setting, f"safety_settings[{i}]")
        category = get(setting, "category")
        if category is not None and not str(category).upper().startswith("HARM_CATEGORY_IMAGE"):
            enum_value(category, HARM_CATEGORIES, field_path=f"safety_settings[{i}].category",
                       type_name="type.googleapis.com/google.ai.generativelanguage.HarmCategory")
        threshold = get(setting, "threshold")
        if threshold is not None:
            enum_value(threshold, HARM_THRESHOLDS, field_path=f"safety_settings[{i}].threshold",
                       type_name="type.googleapis.com/google.ai.generativelanguage."
                                 "SafetySetting.HarmBlockThreshold")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _digest(req: GenerateRequest, body: dict[str, Any]) -> str:
    """A hash of everything that shapes the answer, so equal requests answer alike."""
    canonical = {
        "model": req.model.id, "contents": req.conversation.canonical, "system": req.system,
        "modalities": req.modalities, "ratio": req.aspect_ratio, "size": req.image_size,
        "seed": req.seed, "mime": req.response_mime_type, "schema": req.schema,
        "search": req.search, "max": req.max_output_tokens, "stops": req.stop_sequences,
    }
    text = json.dumps(canonical, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
