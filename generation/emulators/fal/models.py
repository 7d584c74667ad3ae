"""The emulated models: input schemas (spec §6), cache keys, and outputs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from . import render
from .faults import Fault
from .records import Outcome, malformed, model_error, success
from .validation import (
    Field,
    Invalid,
    Loc,
    bool_field,
    check_image_size,
    check_loras,
    error,
    float_field,
    int_field,
    literal_field,
    text_field,
    validate,
)

Kind = Literal["text_to_image", "image_to_image", "face_swap", "background_removal"]
ImageFile = dict[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    endpoint: str
    kind: Kind
    fields: tuple[Field, ...]


_FORMAT = literal_field("output_format", ("jpeg", "png"), default="jpeg")
_COMMON = (
    text_field("prompt", required=True),
    int_field("num_images", default=1, ge=1, le=4),
    int_field("seed", default=None, nullable=True),
    bool_field("sync_mode", default=False),
    bool_field("enable_safety_checker", default=True),
    _FORMAT,
)
_SIZE = Field("image_size", check_image_size, default=(1024, 768))  # landscape_4_3
_ACCEL3 = literal_field("acceleration", ("none", "regular", "high"), default="none")

MODELS: dict[str, ModelSpec] = {spec.endpoint: spec for spec in (
    ModelSpec("fal-ai/flux/schnell", "text_to_image", (
        *_COMMON, _SIZE, _ACCEL3,
        int_field("num_inference_steps", default=4, ge=1, le=12),
        float_field("guidance_scale", default=3.5, ge=1, le=20))),
    ModelSpec("fal-ai/flux/dev", "text_to_image", (
        *_COMMON, _SIZE, _ACCEL3,
        int_field("num_inference_steps", default=28, ge=1, le=50),
        float_field("guidance_scale", default=3.5, ge=1, le=20))),
    ModelSpec("fal-ai/flux-lora", "text_to_image", (
        *_COMMON, _SIZE,
        literal_field("acceleration", ("none", "regular"), default="none"),
        int_field("num_inference_steps", default=28, ge=1, le=50),
        float_field("guidance_scale", default=3.5, ge=0, le=35),
        Field("loras", check_loras, default=[]))),
    ModelSpec("fal-ai/flux/dev/image-to-image", "image_to_image", (
        *_COMMON, _ACCEL3,
        text_field("image_url", required=True),
        float_field("strength", default=0.95, ge=0.01, le=1),
        int_field("num_inference_steps", default=40, ge=1, le=50),
        float_field("guidance_scale", default=3.5, ge=1, le=20))),
    ModelSpec("fal-ai/flux-pro/v1.1", "text_to_image", (
        *_COMMON, _SIZE,
        literal_field("safety_tolerance", ("1", "2", "3", "4", "5", "6"), default="2"),
        bool_field("enhance_prompt", default=False))),
    ModelSpec("fal-ai/face-swap", "face_swap", (
        text_field("base_image_url", required=True),
        text_field("swap_image_url", required=True),
        bool_field("sync_mode", default=False))),
    ModelSpec("fal-ai/birefnet/v2", "background_removal", (
        text_field("image_url", required=True),
        literal_field("model", ("General Use (Light)", "General Use (Light 2K)",
                                "General Use (Heavy)", "Matting", "Portrait",
                                "General Use (Dynamic)"), default="General Use (Light)"),
        literal_field("operating_resolution", ("1024x1024", "2048x2048", "2304x2304"),
                      default="1024x1024"),
        bool_field("output_mask", default=False),
        bool_field("refine_foreground", default=True),
        literal_field("output_format", ("webp", "png", "gif"), default="png"),
        bool_field("sync_mode", default=False))),
)}

APPS = frozenset(endpoint.split("/")[0] + "/" + endpoint.split("/")[1] for endpoint in MODELS)


def cache_keys(endpoint: str, body: Any) -> tuple[str, ...]:
    """What a runner must hold for this request: its LoRA paths, else the model itself."""
    if isinstance(body, dict) and isinstance(body.get("loras"), list):
        paths = [item["path"] for item in body["loras"]
                 if isinstance(item, dict) and isinstance(item.get("path"), str)]
        if paths:
            return tuple(dict.fromkeys(paths))
    return (endpoint,)


def check_input(endpoint: str, body: Any, body_error: str | None) -> dict[str, Any]:
    """Validate a request body as the runner would; raises ``Invalid``."""
    if body_error is not None:
        raise Invalid([{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                        "input": {}, "ctx": {"error": body_error}}])
    return validate(MODELS[endpoint].fields, body)


def content_policy_error(spec: ModelSpec, params: dict[str, Any]) -> Outcome:
    name = "prompt" if "prompt" in params else spec.fields[0].name
    return model_error(422, [error(
        "content_policy_violation", (name,),
        "The content could not be processed because it contained material flagged by a "
        "content checker.", params.get(name), {"reason": "emulated safety refusal"})])


Fetch = Callable[[str, Loc], Awaitable[Image.Image]]
Publish = Callable[[bytes, str, int, int], ImageFile]


@dataclass
class Job:
    """One model invocation: validated params plus what the runner provides."""

    endpoint: str
    params: dict[str, Any]
    fault: Fault
    seed: int  # used when the input carries none
    inference_s: float
    fetch: Fetch  # input image URL → decoded image (raises Invalid)
    publish: Publish  # (bytes, format, width, height) → Image object for the output


async def produce(job: Job) -> Outcome:
    """Run the model: render, then shape the output per spec §6."""
    spec = MODELS[job.endpoint]
    params = job.params
    if job.fault.kind == "content_policy":
        return content_policy_error(spec, params)
    try:
        if spec.kind == "text_to_image":
            output = await _text_to_image(job, None)
        elif spec.kind == "image_to_image":
            source = await job.fetch(params["image_url"], ("image_url",))
            output = await _text_to_image(job, source)
        elif spec.kind == "face_swap":
            base = await job.fetch(params["base_image_url"], ("base_image_url",))
            swap = await job.fetch(params["swap_image_url"], ("swap_image_url",))
            data = await asyncio.to_thread(lambda: render.encode(render.face_swap(base, swap),
                                                                 "png"))
            output = {"image": job.publish(data, "png", *base.size)}
        else:
            output = await _remove_background(job)
    except Invalid as exc:
        return model_error(422, exc.errors)
    if job.fault.kind == "malformed":
        return malformed(output)
    return success(output)


async def _text_to_image(job: Job, source: Image.Image | None) -> dict[str, Any]:
    params = job.params
    seed = params.get("seed")
    seed = job.seed if seed is None else int(seed)
    prompt: str = params["prompt"]
    fmt: str = params["output_format"]
    flagged = job.fault.kind == "nsfw"
    blacken = flagged and params["enable_safety_checker"]
    width, height = source.size if source is not None else params["image_size"]

    def draw(index: int) -> bytes:
        if blacken:
            image = render.blacked(width, height)
        elif source is not None:
            image = render.stylize(source, prompt, seed + index, params["strength"])
        else:
            image = render.generate(prompt, seed + index, width, height)
        return render.encode(image, fmt)

    count = int(params["num_images"])
    encoded = await asyncio.to_thread(lambda: [draw(i) for i in range(count)])
    return {
        "images": [job.publish(data, fmt, width, height) for data in encoded],
        "timings": {"inference": round(job.inference_s, 4)},
        "seed": seed,
        "has_nsfw_concepts": [flagged] * count,
        "prompt": prompt,
    }


async def _remove_background(job: Job) -> dict[str, Any]:
    params = job.params
    source = await job.fetch(params["image_url"], ("image_url",))
    fmt: str = params["output_format"]

    def work() -> tuple[bytes, bytes | None]:
        cut, mask = render.cut_out(source, refine=bool(params["refine_foreground"]))
        mask_data = render.encode(mask, fmt) if params["output_mask"] else None
        return render.encode(cut, fmt), mask_data

    data, mask_data = await asyncio.to_thread(work)
    output: dict[str, Any] = {"image": job.publish(data, fmt, *source.size)}
    if mask_data is not None:
        output["mask_image"] = job.publish(mask_data, fmt, *source.size)
    return output
