"""Turning a parsed request (and a fault plan) into GenerateContentResponse JSON.

``build_outcome`` does the work once; ``Outcome.response()`` is the unary body and
``Outcome.chunks()`` the streamed bodies (text split across chunks, an image whole in
one chunk, finishReason and the final usageMetadata on the last chunk).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from .errors import RpcError, bad_request, for_code
from .faults import Fault, FaultPlan
from .grounding import grounding_metadata, tool_use_tokens
from .images import ImageJob, render_png
from .request import GenerateRequest
from .schema import default_json, fake_json
from .text import Copywriter, apply_limits, split_for_stream
from .wire import InputImage, text_tokens

FINISH_MESSAGES = {
    "IMAGE_SAFETY": "Unable to show the generated image. The image was filtered out because "
                    "it violated Google's Generative AI Prohibited Use policy. You will not "
                    "be charged for blocked images. Try rephrasing the prompt.",
    "IMAGE_PROHIBITED_CONTENT": "Unable to show the generated image. The image was filtered "
                                "out because it contained prohibited content. You will not be "
                                "charged for blocked images.",
    "IMAGE_OTHER": "Unable to show the generated image. The model could not generate the "
                   "image based on the prompt provided. You will not be charged for blocked "
                   "images. Try rephrasing the prompt.",
    "NO_IMAGE": "The model did not produce an image for this request. Try rephrasing the "
                "prompt.",
}


@dataclass
class Candidate:
    index: int
    parts: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "STOP"
    finish_message: str | None = None
    grounding: dict[str, Any] | None = None
    safety_ratings: list[dict[str, Any]] | None = None

    def body(self, parts: list[dict[str, Any]] | None = None, *, final: bool = True
             ) -> dict[str, Any]:
        parts = self.parts if parts is None else parts
        out: dict[str, Any] = {}
        if parts:
            out["content"] = {"parts": parts, "role": "model"}
        if final:
            out["finishReason"] = self.finish_reason
            if self.finish_message:
                out["finishMessage"] = self.finish_message
            if self.safety_ratings:
                out["safetyRatings"] = self.safety_ratings
            if self.grounding:
                out["groundingMetadata"] = self.grounding
        out["index"] = self.index
        return out


@dataclass
class Outcome:
    model_version: str
    usage: dict[str, Any]
    prompt_usage: dict[str, Any]
    candidates: list[Candidate] = field(default_factory=list)
    prompt_feedback: dict[str, Any] | None = None
    stream_error: RpcError | None = None
    response_id: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def image_count(self) -> int:
        return sum(1 for c in self.candidates for p in c.parts
                   if "inlineData" in p and not p.get("thought"))

    def _envelope(self, body: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
        body["usageMetadata"] = usage
        body["modelVersion"] = self.model_version
        body["responseId"] = self.response_id
        return body

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.prompt_feedback is not None:
            body["promptFeedback"] = self.prompt_feedback
        else:
            body["candidates"] = [c.body() for c in self.candidates]
        return self._envelope(body, self.usage)

    def chunks(self) -> list[dict[str, Any]]:
        if self.prompt_feedback is not None:
            return [self.response()]
        pieces: list[tuple[Candidate, list[dict[str, Any]]]] = []
        for cand in self.candidates:
            cand_pieces = []
            for part in cand.parts:
                if "text" in part and not part.get("thought"):
                    # The signature (Gemini 3) travels with the first piece only.
                    for n, text in enumerate(split_for_stream(part["text"])):
                        piece = {**part, "text": text}
                        if n:
                            piece.pop("thoughtSignature", None)
                        cand_pieces.append([piece])
                else:
                    cand_pieces.append([part])
            pieces.extend((cand, p) for p in (cand_pieces or [[]]))
        out = []
        for i, (cand, parts) in enumerate(pieces):
            last_of_candidate = i + 1 == len(pieces) or pieces[i + 1][0] is not cand
            body = {"candidates": [cand.body(parts, final=last_of_candidate)]}
            usage = self.usage if i + 1 == len(pieces) else self.prompt_usage
            out.append(self._envelope(body, usage))
        return out


def _signature(digest: str, *salt: object) -> str:
    raw = hashlib.sha256("|".join([digest, *map(str, salt)]).encode()).digest() * 2
    return base64.b64encode(raw).decode("ascii")


def _details(entries: list[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"modality": m, "tokenCount": n} for m, n in entries if n > 0]


def _thought_tokens(req: GenerateRequest, copy: Copywriter) -> int:
    if not req.thinks():
        return 0
    level = req.thinking_level or ("HIGH" if req.model.thinking == "always" else "")
    low, spread = {"MINIMAL": (30, 80), "LOW": (90, 150), "MEDIUM": (160, 240),
                   "HIGH": (260, 400)}.get(level, (120, 480))
    if req.model.kind == "image" and not req.thinking_level and req.model.thinking != "always":
        low, spread = 30, 80  # 3.1 Flash Image defaults to MINIMAL
    tokens = low + copy.number(spread, "thoughts")
    if req.thinking_budget and req.thinking_budget > 0:
        tokens = min(tokens, req.thinking_budget)
    return tokens


def _closest_ratio(req: GenerateRequest, image: InputImage | None) -> str:
    if req.aspect_ratio:
        return req.aspect_ratio
    if image is None or image.size is None:
        return "1:1"
    target = math.log(image.size[0] / max(1, image.size[1]))

    def distance(ratio: str) -> float:
        w, h = (int(x) for x in ratio.split(":"))
        return abs(math.log(w / h) - target)

    return min(req.model.aspect_ratios, key=distance)


def _fault_candidate(fault: Fault, req: GenerateRequest, copy: Copywriter) -> Candidate:
    cand = Candidate(index=0, finish_reason=fault.reason,
                     finish_message=FINISH_MESSAGES.get(fault.reason))
    if fault.reason in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"):
        cand.safety_ratings = [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
             "blocked": True},
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
    return cand


async def build_outcome(req: GenerateRequest, plan: FaultPlan) -> Outcome:
    """Answer ``req`` under ``plan``; raises RpcError for an injected error status."""
    fault = plan.outcome
    model = req.model
    if fault is not None and fault.kind == "error":
        raise for_code(fault.code, model_id=model.id, retry_delay_s=fault.retry_delay_s)
    conv = req.conversation
    prompt_details = _details([("TEXT", req.prompt_text_tokens),
                               ("IMAGE", conv.image_tokens)])
    prompt_usage = {"promptTokenCount": req.prompt_tokens,
                    "totalTokenCount": req.prompt_tokens,
                    "promptTokensDetails": prompt_details}
    outcome = Outcome(model_version=model.id, usage=prompt_usage, prompt_usage=prompt_usage)
    if fault is not None and fault.kind == "stream_error":
        outcome.stream_error = for_code(fault.code, model_id=model.id)
    if fault is not None and fault.kind == "block":
        outcome.prompt_feedback = {"blockReason": fault.reason}
        return outcome

    copy = Copywriter(req.prompt, req.digest)
    thoughts = _thought_tokens(req, copy)
    tool_use = tool_use_tokens(copy) if req.search else 0
    text_out = image_out = 0
    for index in range(req.candidate_count):
        cand_copy = Copywriter(req.prompt, f"{req.digest}:{index}") if index else copy
        if fault is not None and fault.kind == "finish":
            cand = _fault_candidate(fault, req, cand_copy)
        else:
            cand, n_text, n_image = await _answer(req, cand_copy, index,
                                                  text_only=fault is not None
                                                  and fault.kind == "text_only",
                                                  verbose=fault is not None
                                                  and fault.kind == "verbose")
            text_out += n_text
            image_out += n_image
        cand.index = index
        if req.search and fault is None:
            answer_text = next((p["text"] for p in cand.parts
                                if "text" in p and not p.get("thought")), None)
            cand.grounding = grounding_metadata(cand_copy, image_search=req.image_search,
                                                answer_text=answer_text)
        outcome.candidates.append(cand)

    usage: dict[str, Any] = {"promptTokenCount": req.prompt_tokens}
    if text_out or image_out:
        usage["candidatesTokenCount"] = text_out + image_out
    usage["totalTokenCount"] = req.prompt_tokens + text_out + image_out + thoughts + tool_use
    usage["promptTokensDetails"] = prompt_details
    if text_out or image_out:
        usage["candidatesTokensDetails"] = _details([("IMAGE", image_out), ("TEXT", text_out)])
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if tool_use:
        usage["toolUsePromptTokenCount"] = tool_use
        usage["toolUsePromptTokensDetails"] = _details([("TEXT", tool_use)])
    outcome.usage = usage
    return outcome


async def _answer(req: GenerateRequest, copy: Copywriter, index: int, *,
                  text_only: bool, verbose: bool = False) -> tuple[Candidate, int, int]:
    """One successful candidate: thought parts, text, image. Returns token counts too."""
    model = req.model
    cand = Candidate(index=index)
    parts: list[dict[str, Any]] = []
    conv = req.conversation
    base = conv.images[0] if conv.images else (
        conv.history_images[-1] if conv.history_images else None)
    references = [img for img in ([base] if base and not conv.images else conv.images)
                  if img.size is not None]
    ratio = _closest_ratio(req, base)
    size = req.image_size or model.default_size
    make_image = req.wants_image and model.kind == "image" and not text_only
    if req.include_thoughts and req.thinks():
        parts.append({"text": copy.thought(ratio), "thought": True})
        if make_image and model.thinking == "always":
            # 3 Pro may show an interim "thought" image; the last image is the final one.
            draft = await _render(req, ratio, "1K", references, draft=True)
            parts.append({"inlineData": {"mimeType": "image/png", "data": draft},
                          "thought": True})
    text_tokens_out = 0
    image_tokens_out = 0
    text: str | None = None
    finish = "STOP"
    if text_only:
        text = copy.refusal() if model.kind == "image" else copy.answer(index)
    elif "TEXT" in req.modalities:
        text, finish = _text_answer(req, copy, index, ratio, size, with_image=make_image,
                                    verbose=verbose)
    if text:
        parts.append({"text": text})
        text_tokens_out = text_tokens(text)
    if make_image and finish == "STOP":
        data = await _render(req, ratio, size, references)
        parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
        image_tokens_out = model.image_tokens[size]
    if model.gemini3:
        for i, part in enumerate(parts):
            if not part.get("thought"):
                part["thoughtSignature"] = _signature(req.digest, index, i)
    cand.parts = parts
    cand.finish_reason = finish
    return cand, text_tokens_out, image_tokens_out


def _text_answer(req: GenerateRequest, copy: Copywriter, index: int, ratio: str, size: str,
                 *, with_image: bool, verbose: bool = False) -> tuple[str, str]:
    if req.response_mime_type == "text/x.enum" and req.schema is not None:
        values = req.schema.get("enum")
        if not isinstance(values, list) or not values:
            values = [copy.phrase(index)]
        return str(values[copy.number(len(values), "enum", index)]), "STOP"
    if req.response_mime_type == "application/json":
        try:
            value = fake_json(req.schema, copy) if req.schema is not None else default_json(copy)
            if verbose:
                value = _overwritten(value, copy)
        except (TypeError, ValueError, KeyError, AttributeError, RecursionError):
            raise bad_request("* GenerateContentRequest.generation_config.response_schema: "
                              "the schema is malformed.\n") from None
        text = json.dumps(value, ensure_ascii=False, indent=2)
    elif with_image:
        text = copy.caption(ratio, size)
    else:
        text = copy.answer(index)
    return apply_limits(text, max_tokens=req.max_output_tokens,
                        stop_sequences=req.stop_sequences)


def _overwritten(value: Any, copy: Copywriter) -> Any:
    """The ``verbose`` fault: every string grown to several sentences, limits ignored."""
    if isinstance(value, str):
        return " ".join([value] + [copy.sentence("verbose", value, n) for n in range(3)])
    if isinstance(value, dict):
        return {key: _overwritten(item, copy) for key, item in value.items()}
    if isinstance(value, list):
        return [_overwritten(item, copy) for item in value]
    return value


async def _render(req: GenerateRequest, ratio: str, size: str, refs: list[InputImage], *,
                  draft: bool = False) -> str:
    width, height = req.model.pixel_size(ratio, size)
    job = ImageJob(model_id=req.model.id, prompt=req.prompt, width=width, height=height,
                   ratio=ratio, size=size, references=tuple(r.data for r in refs),
                   draft=draft)
    png = await asyncio.get_running_loop().run_in_executor(None, render_png, job)
    return base64.b64encode(png).decode("ascii")
