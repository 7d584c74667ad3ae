"""Checking a generation request against the registry row's JSON Schema.

Every problem is reported at once, each naming its field (``inputs.prompt``,
``options.width``) and what is wrong, before anything is created or spent.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError as MetaSchemaError
from jsonschema.exceptions import ValidationError as SchemaError

from brenia.errors import FieldProblem, InvalidInput
from brenia.inputs import json_problems
from generation.registry.limits import (
    URL_FORMATS,
    clean_free_text,
    normalise_data_uris,
    size_problems,
    with_text_limits,
)

# Options common to every image model; each provider maps them onto its own
# parameters (image_size, num_images …).
OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "width": {"type": "integer", "minimum": 64, "maximum": 8192},
        "height": {"type": "integer", "minimum": 64, "maximum": 8192},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
        "output_format": {"type": "string", "enum": ["jpeg", "png"]},
        # Queue lane at providers that have one (fal): "low" waits behind "normal".
        "priority": {"type": "string", "enum": ["normal", "low"]},
    },
    "dependentRequired": {"width": ["height"], "height": ["width"]},
}

# What Brenia accepts as a URL, as regular expressions, because the same text serves
# three readers that must agree: the checks below (Python ``re``), the OpenAPI
# document (ECMA-262 ``pattern``) and pydantic (Rust ``regex``). So: ASCII character
# classes, no look-arounds, and ports only within 0-65535 (``urllib`` raises on more).
# Hosts are registered names, IPv4 addresses or IPv6 literals (RFC 3986's grammar for
# those, which urllib accepts too: a looser bracket form crashes urlsplit).
_PCT = "%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9._~\-"
_SUB_DELIMS = "!$&'()*+,;="
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"(?:{_H16}:{_H16}|{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET})"


def _ipv6() -> str:
    """RFC 3986's IPv6address: at most ``before`` groups, "::", then ``after`` groups."""
    forms = [f"(?:{_H16}:){{6}}{_LS32}"]
    for before, after in enumerate((5, 4, 3, 2, 1, 0)):
        head = f"(?:(?:{_H16}:){{0,{before - 1}}}{_H16})?" if before else ""
        tail = f"(?:{_H16}:){{{after}}}{_LS32}" if after else _LS32
        forms.append(f"{head}::{tail}")
    forms += [f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}", f"(?:(?:{_H16}:){{0,6}}{_H16})?::"]
    return "(?:" + "|".join(forms) + ")"


_USERINFO = f"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"
# A registered name or IPv4 address; %-escapes anywhere but first.
_REG_NAME = f"[{_UNRESERVED}{_SUB_DELIMS}]+(?:{_PCT}[{_UNRESERVED}{_SUB_DELIMS}]*)*"
_AUTHORITY = rf"{_USERINFO}(?:\[{_ipv6()}\]|{_REG_NAME})(?::{_PORT}?)?"
# Webhook targets are names or IPv4 addresses, no IPv6 literal. Kept this plain (no
# alternatives for the host), the pattern is one schema tools can fit to a maxLength:
# schemathesis otherwise spends minutes looking for a 2000-character example.
_NAMED_AUTHORITY = f"{_USERINFO}{_REG_NAME}(?::{_PORT}?)?"
_PCHAR = f"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
# RFC 3986 path, query and fragment.
_RFC3986_TAIL = rf"(?:/{_PCHAR}*)*(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
_HTTP = "[Hh][Tt][Tt][Pp][Ss]?://"

# format "uri": an http(s) URL (RFC 3986, with an authority), or a data URI (whose path
# cannot begin with "//": that would be an authority). Providers fetch these on the
# user's behalf, so no other scheme (ftp://, gopher://, file://) gets past the door.
URI_REGEX = (rf"{_HTTP}{_AUTHORITY}{_RFC3986_TAIL}"
             rf"|[Dd][Aa][Tt][Aa]:(?:{_PCHAR}(?:{_PCHAR}|/)*)?(?:\?(?:{_PCHAR}|[/?])*)?")
# format "image-url": an http(s) URL (its path may hold any printable character, as
# pasted links do) or a base64 data URI of an image: what fal models accept.
IMAGE_URL_REGEX = (rf"{_HTTP}{_AUTHORITY}(?:[/?#][^\x00-\x20\x7f]*)?"
                   r"|data:image/[A-Za-z0-9.+\-]+(?:;[^\x00-\x20\x7f;,]*)*;base64,"
                   r"[A-Za-z0-9+/]*={0,2}")
# An http(s) URL Brenia itself calls (webhooks): RFC 3986 throughout.
HTTP_URL_REGEX = f"{_HTTP}{_NAMED_AUTHORITY}{_RFC3986_TAIL}"

FORMAT_REGEXES = {"uri": URI_REGEX, "image-url": IMAGE_URL_REGEX}


def anchored(regex: str) -> str:
    """``regex`` as a JSON Schema ``pattern`` matching whole values only."""
    return f"^(?:{regex})$"


_FORMATS = FormatChecker(formats=("email",))


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(URI_REGEX, value) is not None


@_FORMATS.checks("image-url")
def _is_image_url(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(IMAGE_URL_REGEX, value) is not None


def _join(*parts: object) -> str:
    return ".".join(str(p) for p in parts if p != "")


def _problems(prefix: str, error: SchemaError) -> list[FieldProblem]:
    """Our field problems for one jsonschema error, read from its structured fields.

    ``absolute_path`` locates the value that failed, ``validator`` names the keyword
    and ``validator_value`` holds what the schema asked for; ``instance`` is the
    failing value itself, which is how a missing or unexpected key is found.
    """
    here = _join(prefix, *error.absolute_path)
    keyword, value, instance = str(error.validator), error.validator_value, error.instance
    if keyword == "required" and isinstance(instance, dict):
        # One error per missing key, each naming a key: report them all from any one.
        return [FieldProblem(_join(here, name), "is required")
                for name in value if name not in instance]
    if keyword == "additionalProperties" and isinstance(instance, dict):
        declared = error.schema.get("properties") or {}
        patterns = error.schema.get("patternProperties") or {}
        return [FieldProblem(_join(here, name), "is not an accepted field for this model")
                for name in instance
                if name not in declared and not any(re.search(p, name) for p in patterns)]
    if keyword == "dependentRequired" and isinstance(instance, dict):
        return [FieldProblem(_join(here, needed), f"is required when {given} is given")
                for given, needs in value.items() if given in instance
                for needed in needs if needed not in instance]
    found = [FieldProblem(here, _problem(keyword, value, error))]
    branch = _branch_of(instance, value) if keyword in ("anyOf", "oneOf") else None
    if branch is not None:
        # Only one form fits the value's type (fal's image_size: a name or an object):
        # say what is wrong inside it too, by field ("inputs.image_size.width").
        found += [problem for sub in error.context or ()
                  if sub.relative_schema_path and sub.relative_schema_path[0] == branch
                  for problem in _problems(prefix, sub) if problem.field != here]
    return found


ANY_FORM = "does not match any accepted form"
_JSON_TYPES = ((bool, ("boolean",)), (int, ("integer", "number")), (float, ("number",)),
               (str, ("string",)), (list, ("array",)), (dict, ("object",)),
               (type(None), ("null",)))


def _branch_of(instance: Any, branches: Any) -> int | None:
    """The index of the one branch whose declared type the instance has, if just one."""
    names = next((names for kind, names in _JSON_TYPES if isinstance(instance, kind)), ())
    fitting = [index for index, branch in enumerate(branches if isinstance(branches, list)
                                                    else [])
               if isinstance(branch, dict) and any(t in names for t in _types(branch))]
    return fitting[0] if len(fitting) == 1 else None


def _types(branch: dict[str, Any]) -> list[Any]:
    kind = branch.get("type")
    return kind if isinstance(kind, list) else [kind]


def _problem(keyword: str, value: Any, error: SchemaError) -> str:
    if keyword == "type":
        return f"must be of type {value if isinstance(value, str) else ' or '.join(value)}"
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
              "exclusiveMaximum": "<"}
    if keyword in bounds:
        return f"must be {bounds[keyword]} {value}"
    if keyword == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if keyword == "maxLength":
        return f"must be at most {value} characters"
    if keyword == "enum":
        return "must be one of " + ", ".join(repr(x) for x in value)
    if keyword == "const":
        return f"must be {value!r}"
    if keyword == "format":
        return f"must be a valid {value}"
    if keyword == "pattern":
        return "has an invalid format"
    if keyword in ("minItems", "maxItems"):
        return f"must have {'at least' if keyword == 'minItems' else 'at most'} {value} items"
    if keyword in ("minProperties", "maxProperties"):
        least = keyword == "minProperties"
        return f"must have {'at least' if least else 'at most'} {value} fields"
    if keyword == "multipleOf":
        return f"must be a multiple of {value}"
    if keyword == "uniqueItems":
        return "must not repeat items"
    if keyword in ("anyOf", "oneOf"):
        return ANY_FORM
    if keyword == "not" or error.schema is False:
        return "is not allowed"
    # A keyword without a phrase of ours (contains, propertyNames …): jsonschema's own.
    return error.message


def _check(schema: dict[str, Any], value: Any, prefix: str) -> list[FieldProblem]:
    validator = Draft202012Validator(schema, format_checker=_FORMATS)
    problems = {problem for error in validator.iter_errors(value)
                for problem in _problems(prefix, error)}
    # One line per field and problem, in a stable order.
    return sorted(problems, key=lambda p: (p.field, p.problem))


def closed_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown top-level fields rejected, whatever the admin wrote, and
    free text no longer than ``limits.DEFAULT_TEXT_MAX`` where it gives no maxLength."""
    closed = with_text_limits(schema) if schema else {"type": "object"}
    closed.setdefault("type", "object")
    closed.setdefault("properties", {})
    closed["additionalProperties"] = False
    return closed


def apply_defaults(schema: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    result = dict(inputs)
    for name, prop in (schema.get("properties") or {}).items():
        if name not in result and isinstance(prop, dict) and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
    return result


def nul_problems(value: Any, prefix: str) -> list[FieldProblem]:
    """NUL characters anywhere: no database stores them in text or JSON, so say so."""
    if isinstance(value, str):
        return [FieldProblem(prefix, "must not contain NUL characters")] if "\x00" in value else []
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            if "\x00" in str(key):
                found.append(FieldProblem(prefix, "has a key with NUL characters"))
            found += nul_problems(item, f"{prefix}.{key}")
        return found
    if isinstance(value, list):
        return [problem for index, item in enumerate(value)
                for problem in nul_problems(item, f"{prefix}.{index}")]
    return []


def check_inputs(*, schema: dict[str, Any], inputs: Any, options: Any,
                 prefix: str = "inputs") -> dict[str, Any]:
    """Validate ``inputs`` and ``options``; return inputs with schema defaults applied.

    Raises InvalidInput listing every problem found in both, ``inputs`` named by
    ``prefix`` (a template run's form calls them ``variables``). Beyond the schema,
    ``limits`` applies: free text loses control characters, sizes have global caps,
    and image data URIs come back normalised (or are refused, by field).
    """
    # Nothing below (jsonschema, the NUL walk) may recurse through deeper JSON than this.
    problems = json_problems(inputs, prefix) + json_problems(options, "options")
    if problems:
        raise InvalidInput("The request is beyond Brenia's input limits.", errors=problems,
                           code="input_limits")
    problems = nul_problems(inputs, prefix) + nul_problems(options, "options")
    if not isinstance(inputs, dict):
        problems.append(FieldProblem(prefix, "must be an object"))
    else:
        inputs = clean_free_text(schema, inputs)
        problems += _check(closed_schema(schema), inputs, prefix)
    if options is not None:
        problems += _check(options_schema(schema), options, "options")
    named = {problem.field for problem in problems}
    problems += [problem for problem in size_problems(inputs, prefix)
                 if problem.field not in named]
    if isinstance(inputs, dict):
        inputs, image_problems = normalise_data_uris(schema, inputs, prefix, skip=named)
        problems += image_problems
    if problems:
        raise InvalidInput("The request has invalid fields.", errors=problems)
    return apply_defaults(schema, inputs)


def options_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``OPTIONS_SCHEMA`` for one model: ``width``, ``height`` and ``num_images`` no wider
    than the model's own inputs they become (fal's ``image_size`` object, its
    ``num_images``), so an option cannot ask for what the model's schema refuses. The
    API document shows each model's own."""
    narrowed = copy.deepcopy(OPTIONS_SCHEMA)
    properties = schema.get("properties") if isinstance(schema, dict) else None
    properties = properties if isinstance(properties, dict) else {}
    sides = _object_form(properties.get("image_size"))
    for name, source in (("width", sides.get("width")), ("height", sides.get("height")),
                         ("num_images", properties.get("num_images"))):
        target = narrowed["properties"][name]
        for key, pick in (("minimum", max), ("maximum", min)):
            bound = source.get(key) if isinstance(source, dict) else None
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                target[key] = pick(target[key], bound)
    return narrowed


def _object_form(prop: Any) -> dict[str, Any]:
    """The properties of a property's object form (itself, or one of its anyOf/oneOf)."""
    forms = [prop] if isinstance(prop, dict) else []
    for key in ("anyOf", "oneOf"):
        branches = prop.get(key) if isinstance(prop, dict) else None
        forms += [b for b in branches if isinstance(b, dict)] if isinstance(branches,
                                                                            list) else []
    for form in forms:
        if isinstance(form.get("properties"), dict):
            return dict(form["properties"])
    return {}


def check_arguments(*, arguments: dict[str, Any], options: dict[str, Any]) -> list[FieldProblem]:
    """The global size caps (``limits``) on an ``image_size`` a provider made of
    ``options.width`` and ``options.height``, named as those options."""
    size = {"width": options.get("width"), "height": options.get("height")}
    if "width" not in options or arguments.get("image_size") != size:
        return []
    fields = {"image_size.width": "options.width", "image_size.height": "options.height",
              "image_size": "options.width"}
    return [FieldProblem(fields[problem.field.removeprefix("inputs.")], problem.problem)
            for problem in size_problems({"image_size": size}, "inputs")]


def url_fields(schema: dict[str, Any], inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, url) for every http(s) value the schema marks as a URL, arrays included."""
    found: list[tuple[str, str]] = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or name not in inputs:
            continue
        value = inputs[name]
        if prop.get("format") in URL_FORMATS and isinstance(value, str):
            found.append((f"inputs.{name}", value))
        items = prop.get("items")
        if isinstance(items, dict) and items.get("format") in URL_FORMATS \
                and isinstance(value, list):
            found += [(f"inputs.{name}.{i}", v) for i, v in enumerate(value)
                      if isinstance(v, str)]
    # Schemes are case-insensitive: "HTTP://127.0.0.1/" must meet the guard too. The
    # values passed the format checks, so urlsplit cannot fail on them.
    return [(field, url) for field, url in found
            if urlsplit(url).scheme.lower() in ("http", "https")]


def check_schema(schema: Any) -> list[str]:
    """Problems with an input schema itself (for the admin), empty when it is usable."""
    if not isinstance(schema, dict):
        return ["The input schema must be a JSON object."]
    try:
        Draft202012Validator.check_schema(schema)
    except MetaSchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return [f"Invalid JSON Schema at {where}: {exc.message}"]
    if schema.get("type", "object") != "object":
        return ["The input schema must describe an object (type: object)."]
    return []
