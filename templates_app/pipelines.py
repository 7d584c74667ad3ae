"""What each kind of template does, as a plan of steps, and the inputs of each step.

A plan is made once, when a run starts: the steps, what each depends on, and the
model inputs that can be known then. Inputs that need another step's result (the
cut-out given as a reference image) are filled in when the step starts.

- billboard: copy (when the marketer leaves it to the copy model) and a background
  per aspect family, then a composition per format.
- discount banner: a background per aspect family, then a composition per format.
- product shot: the cut-out, a scene per aspect family (given the cut-out when the
  scene model takes reference images), then a composition per format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from brenia.errors import Conflict, InvalidInput
from generation.models import AIModel, RoutedBy
from generation.registry.selectors import model_get
from generation.routing.policy import policy_model_for_kind
from templates_app.compose import FORMATS, negative_space_hint
from templates_app.models import StepKind, TemplateKind
from templates_app.spec import POLICY_KINDS, spec_model

# The size a background is painted at, per aspect family: every format of the family
# is cut from it (cover-fit), so it is paid for once. fal bills each started megapixel,
# so each stays within one (wide: two, for posters six metres across).
FAMILY_SIZES: dict[str, tuple[int, int]] = {
    "strip": (2048, 256), "wide": (2048, 688), "landscape": (1328, 744),
    "square": (992, 992), "portrait": (744, 1328), "skyscraper": (512, 1536),
}
FAMILY_RATIOS: dict[str, str] = {
    "strip": "21:9", "wide": "21:9", "landscape": "16:9", "square": "1:1",
    "portrait": "9:16", "skyscraper": "9:16",
}
FAMILY_ORDER = tuple(FAMILY_SIZES)
NO_TEXT = "No text, no lettering, no logos, no watermark."


@dataclass
class PlannedStep:
    key: str
    role: str
    kind: str
    label: str
    model_slug: str = ""
    depends_on: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    routed_by: str = RoutedBy.EXPLICIT


def step_model(spec: dict[str, Any], role: str) -> tuple[AIModel, str]:
    """The model a step of ``role`` runs on, and how it was chosen: the template's own,
    else (for a role the template left empty) the provider policy's for its kind now."""
    slug = spec_model(spec, role)
    if slug:
        return model_get(slug=slug), RoutedBy.EXPLICIT
    kind = POLICY_KINDS[role]
    try:
        return policy_model_for_kind(kind=kind), RoutedBy.POLICY
    except InvalidInput:
        raise Conflict(f"This template leaves its {role} model to the provider policy for "
                       f"{kind}, and there is none: an operator must set one.",
                       code="template_unavailable") from None


def families_of(formats: list[str]) -> list[str]:
    found = {FORMATS[slug].family for slug in formats}
    return [family for family in FAMILY_ORDER if family in found]


def _properties(model: AIModel) -> dict[str, Any]:
    return dict((model.input_schema or {}).get("properties") or {})


def image_model_inputs(model: AIModel, *, prompt: str, family: str, seed: int,
                       **extra: Any) -> dict[str, Any]:
    """Inputs for an image model, shaped by what its schema accepts."""
    props = _properties(model)
    inputs: dict[str, Any] = {"prompt": prompt[:2000]}
    if "image_size" in props:
        width, height = FAMILY_SIZES[family]
        inputs["image_size"] = {"width": width, "height": height}
    elif "aspect_ratio" in props:
        inputs["aspect_ratio"] = FAMILY_RATIOS[family]
    if "seed" in props:
        inputs["seed"] = seed
    if "num_images" in props:
        inputs["num_images"] = 1
    output_format = props.get("output_format") or {}
    if "png" in (output_format.get("enum") or []):
        inputs["output_format"] = "png"
    inputs.update({k: v for k, v in extra.items() if k in props})
    return inputs


def _style(spec: dict[str, Any], variables: dict[str, Any]) -> str:
    return str(variables.get("style") or spec.get("style") or "").strip()


def background_prompt(*, kind: str, spec: dict[str, Any], variables: dict[str, Any],
                      family: str) -> str:
    scene = str(variables.get("scene") or "").strip()
    if kind == TemplateKind.BILLBOARD:
        subject = f"Advertising photograph for {variables.get('product', '')}"
        if variables.get("offer"):
            subject += f", {variables['offer']}"
    else:
        subject = f"Sale banner background for {variables.get('product_name', '')}"
    parts = [scene, subject, _style(spec, variables), negative_space_hint(kind, family),
             NO_TEXT]
    return ". ".join(part.rstrip(". ") for part in parts if part) + "."


def scene_prompt(*, spec: dict[str, Any], variables: dict[str, Any], family: str,
                 with_reference: bool) -> str:
    scene = str(variables.get("scene") or "a clean studio surface").strip()
    if with_reference:
        subject = (f"Place this product ({variables.get('product_name', 'the product')}) "
                   f"{scene}, product photography")
    else:
        subject = (f"Product photography backdrop: {scene}, an empty surface in the middle "
                   "where a product will stand, shallow depth of field")
    parts = [subject, _style(spec, variables),
             negative_space_hint(TemplateKind.PRODUCT_SHOT, family), NO_TEXT]
    return ". ".join(part.rstrip(". ") for part in parts if part) + "."


def plan_steps(*, spec: dict[str, Any], variables: dict[str, Any], formats: list[str],
               seed: int, copy_needed: bool,
               copy_inputs: dict[str, Any] | None) -> list[PlannedStep]:
    kind = spec["kind"]
    steps: list[PlannedStep] = []
    copy_deps: list[str] = []
    if copy_needed:
        steps.append(PlannedStep(key="copy", role="copy", kind=StepKind.MODEL,
                                 label="Copy", model_slug=spec_model(spec, "copy"),
                                 inputs=copy_inputs or {}))
        copy_deps = ["copy"]
    image_deps: list[str] = []
    if kind == TemplateKind.PRODUCT_SHOT:
        cutout, routed = step_model(spec, "cutout")
        cut_inputs = {"image_url": variables["product_photo"]}
        if "png" in ((_properties(cutout).get("output_format") or {}).get("enum") or []):
            cut_inputs["output_format"] = "png"
        steps.append(PlannedStep(key="cutout", role="cutout", kind=StepKind.MODEL,
                                 label="Cut-out", model_slug=cutout.slug, inputs=cut_inputs,
                                 routed_by=routed))
        image_deps = ["cutout"]
    for index, family in enumerate(families_of(formats)):
        family_seed = (seed + index) % 2**32
        if kind == TemplateKind.PRODUCT_SHOT:
            model, routed = step_model(spec, "scene")
            with_reference = "reference_image_urls" in _properties(model)
            prompt = scene_prompt(spec=spec, variables=variables, family=family,
                                  with_reference=with_reference)
            steps.append(PlannedStep(
                key=f"scene:{family}", role="scene", kind=StepKind.MODEL,
                label=f"Scene ({family})", model_slug=model.slug,
                depends_on=["cutout"] if with_reference else [], routed_by=routed,
                inputs=image_model_inputs(model, prompt=prompt, family=family,
                                          seed=family_seed)))
        else:
            lora = str(variables.get("person_lora_url") or "")
            role = "person" if lora and spec_model(spec, "person") else "background"
            model, routed = step_model(spec, role)
            prompt = background_prompt(kind=kind, spec=spec, variables=variables,
                                       family=family)
            extra = {"lora_url": lora} if role == "person" else {}
            steps.append(PlannedStep(
                key=f"background:{family}", role="background", kind=StepKind.MODEL,
                label=f"Background ({family})", model_slug=model.slug, routed_by=routed,
                inputs=image_model_inputs(model, prompt=prompt, family=family,
                                          seed=family_seed, **extra)))
            face = str(variables.get("face_photo") or "")
            if face and spec_model(spec, "face_swap"):
                # The base is the background once painted (filled in when the step
                # starts); until then the face photo stands in, for the quote.
                steps.append(PlannedStep(
                    key=f"face:{family}", role="face_swap", kind=StepKind.MODEL,
                    label=f"Face swap ({family})", model_slug=spec_model(spec, "face_swap"),
                    depends_on=[f"background:{family}"],
                    inputs={"base_image_url": face, "swap_image_url": face}))
    planned = {step.key for step in steps}
    for slug in formats:
        fmt = FORMATS[slug]
        image_step = ("scene:" if kind == TemplateKind.PRODUCT_SHOT else "background:") \
            + fmt.family
        if f"face:{fmt.family}" in planned:
            image_step = f"face:{fmt.family}"
        steps.append(PlannedStep(
            key=f"compose:{slug}", role="compose", kind=StepKind.COMPOSE,
            label=f"{fmt.label} {fmt.width}×{fmt.height}",
            depends_on=copy_deps + image_deps + [image_step]))
    return steps
