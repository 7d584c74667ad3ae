"""A real Django form generated from a JSON Schema.

Three pages ask a user for what a schema describes: the admin's preview of a model's
``input_schema``, the marketer's template form (template variables, published as a
JSON Schema by ``templates_app.spec.variables_schema``) and the model playground. They
share this one generator, so a schema means the same form everywhere: one field per
property in display order, the widget its type calls for, and ``inputs()`` turning
the cleaned form back into the JSON the server checks against the same schema
(``generation.registry.validation.check_inputs``). What that check still finds is
shown next to the field it concerns by ``add_problems``.

The schema is admin-edited data. It reaches the page only through Django's widgets
and templates, which escape it; help text is escaped here, because Django's field
template marks help text safe.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from django import forms
from django.template.defaultfilters import filesizeformat

from brenia.errors import FieldProblem
from generation.registry.forms.fields import (
    SCALARS,
    choice_field,
    choice_options,
    json_field,
    key_of,
    property_field,
)
from generation.registry.forms.text import (
    ImageUploadField,
    ImageURLField,
    string_field,
    upload_cap,
)
from generation.registry.forms.values import (
    CUSTOM,
    MAX_DEPTH,
    MISSING,
    NULL,
    REQUIRED,
    UPLOAD_SUFFIX,
    as_text,
    collapse_nullable,
    count_of,
    help_html,
    json_type,
)


def field_name(path: str) -> str:
    """The form field name of a dotted schema path: ``image_size.width`` → ``image_size__width``."""
    return path.replace(".", "__")


def ordered_properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Properties in display order: ``x-order`` (or fal's list), then any left out.

    Names in the order list that are not properties are ignored, so a stale order
    never hides or invents a field.
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    order = schema.get("x-order") or schema.get("x-fal-order-properties")
    names = [n for n in (order if isinstance(order, list) else [])
             if isinstance(n, str) and n in properties]
    names = list(dict.fromkeys(names))
    names += [n for n in properties if n not in names]
    return [(n, properties[n] if isinstance(properties[n], dict) else {}) for n in names]


# --- the form -------------------------------------------------------------------------------

class SchemaForm(forms.Form):
    """The form an object schema describes; ``inputs()`` is the JSON it means.

    Fields are named by ``field_name`` of their schema path (nested objects are
    flattened to ``parent__child``); an image property also gets ``<name>__upload``.
    """

    required_css_class = "required"

    def __init__(self, schema: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        builder = _Builder(self)
        self._root = builder.group(schema if isinstance(schema, dict) else {}, _Where(),
                                   initial=None, depth=0)
        self._paths = builder.paths

    def clean(self) -> dict[str, Any]:
        """What one field cannot know alone: a custom size's sub-fields matter only when
        "custom" is chosen, an upload stands in for a required image URL, and an optional
        object's required fields are required once any of its fields is changed."""
        cleaned = super().clean() or {}
        changed = frozenset(self.changed_data)
        for name in self._root.ignored(_Answers(cleaned, changed)):
            self.errors.pop(name, None)
        answers = _Answers(cleaned, changed, failed=frozenset(self.errors))
        for name, message in list(self._root.missing(answers, required=True)):
            self.add_error(name, message)
        return cleaned

    def inputs(self) -> dict[str, Any]:
        """The JSON inputs the valid form means (call after ``is_valid()``).

        Optional fields left blank are omitted, so the model's defaults apply; nested
        objects are rebuilt from their fields and an upload becomes a data URI.
        """
        answers = _Answers(self.cleaned_data, frozenset(self.changed_data))
        value = self._root.read(answers, required=True)
        return value if isinstance(value, dict) else {}

    def add_problems(self, problems: Iterable[FieldProblem], *,
                     prefix: str) -> list[FieldProblem]:
        """Show the server's problems (``<prefix>.<path>``) on the fields they concern.

        A path deeper than any field (``inputs.loras.0.path``) goes to the nearest field
        above it. Returns the problems no field could take, for the caller to show.
        """
        if not self.is_bound:
            return list(problems)
        self.is_valid()  # cleans the form, once, if the caller has not
        unplaced = []
        for problem in problems:
            found = self._nearest(problem.field, prefix)
            if found is None:
                unplaced.append(problem)
                continue
            name, rest = found
            subject = f"{'.'.join(rest)} " if rest else "This value "
            self.add_error(name, f"{subject}{problem.problem.rstrip('.')}.")
        return unplaced

    def _nearest(self, path: str, prefix: str) -> tuple[str, list[str]] | None:
        if not path.startswith(prefix + "."):
            return None
        parts = path[len(prefix) + 1:].split(".")
        for end in range(len(parts), 0, -1):
            name = self._paths.get(".".join(parts[:end]))
            if name is not None:
                return name, parts[end:]
        return None


# --- reading the JSON back ------------------------------------------------------------------

def _blank(value: Any) -> bool:
    return value is None or value == ""


@dataclass(frozen=True)
class _Answers:
    """What the user gave: the cleaned values, the fields changed from their initial
    value, and the fields that failed their own checks (and already say what is wrong)."""

    cleaned: Mapping[str, Any]
    changed: frozenset[str]
    failed: frozenset[str] = frozenset()

    def get(self, name: str) -> Any:
        return self.cleaned.get(name)


class _Slot:
    """One value of the JSON the form means, and the form fields it is read from."""

    def read(self, answers: _Answers, *, required: bool) -> Any:
        """The value, or MISSING when the form does not give it."""
        raise NotImplementedError

    def names(self) -> Iterator[str]:
        raise NotImplementedError

    def missing(self, answers: _Answers, *, required: bool) -> Iterator[tuple[str, str]]:
        """(field, message) for each required value left blank, unless it failed already."""
        return iter(())

    def ignored(self, answers: _Answers) -> Iterator[str]:
        """Fields whose value (and so whose errors) the other answers make irrelevant."""
        return iter(())


@dataclass
class _Leaf(_Slot):
    name: str
    nullable: bool = False  # blank is null rather than absent, where a value is required

    def read(self, answers: _Answers, *, required: bool) -> Any:
        value = answers.get(self.name)
        if not _blank(value):
            return None if value is NULL else value
        return None if self.nullable and required else MISSING

    def names(self) -> Iterator[str]:
        yield self.name

    def missing(self, answers: _Answers, *, required: bool) -> Iterator[tuple[str, str]]:
        if required and self.name not in answers.failed \
                and self.read(answers, required=required) is MISSING:
            yield self.name, REQUIRED


@dataclass
class _Const(_Leaf):
    value: Any = None

    def read(self, answers: _Answers, *, required: bool) -> Any:
        return copy.deepcopy(self.value)


@dataclass
class _Image(_Slot):
    name: str
    upload: str

    def read(self, answers: _Answers, *, required: bool) -> Any:
        return answers.get(self.upload) or answers.get(self.name) or MISSING

    def names(self) -> Iterator[str]:
        yield from (self.name, self.upload)

    def missing(self, answers: _Answers, *, required: bool) -> Iterator[tuple[str, str]]:
        if required and not answers.failed & {self.name, self.upload} \
                and self.read(answers, required=required) is MISSING:
            yield self.name, "Give the image's URL or upload a file."

    def ignored(self, answers: _Answers) -> Iterator[str]:
        if answers.get(self.upload):
            yield self.name  # an upload takes precedence over whatever the URL box held


@dataclass
class _Group(_Slot):
    """An object: the root schema, or a nested object flattened into fields.

    An optional object is sent once the user changes any of its fields: prefilled
    defaults alone do not make it (and its required fields) appear.
    """

    children: list[tuple[str, _Slot]]
    required_keys: frozenset[str]

    def read(self, answers: _Answers, *, required: bool) -> Any:
        if not (required or self._touched(answers)):
            return MISSING
        values = {key: slot.read(answers, required=key in self.required_keys)
                  for key, slot in self.children}
        return {key: value for key, value in values.items() if value is not MISSING}

    def names(self) -> Iterator[str]:
        for _key, slot in self.children:
            yield from slot.names()

    def missing(self, answers: _Answers, *, required: bool) -> Iterator[tuple[str, str]]:
        if required or self._touched(answers):
            for key, slot in self.children:
                yield from slot.missing(answers, required=key in self.required_keys)

    def ignored(self, answers: _Answers) -> Iterator[str]:
        for _key, slot in self.children:
            yield from slot.ignored(answers)

    def _touched(self, answers: _Answers) -> bool:
        return any(name in answers.changed for name in self.names())


@dataclass
class _Choice(_Slot):
    """Named choices or a custom object (fal's ``image_size``: a name or width/height)."""

    name: str
    custom: _Group

    def read(self, answers: _Answers, *, required: bool) -> Any:
        choice = answers.get(self.name)
        if choice is CUSTOM:
            return self.custom.read(answers, required=True)
        return MISSING if _blank(choice) else None if choice is NULL else choice

    def names(self) -> Iterator[str]:
        yield self.name
        yield from self.custom.names()

    def missing(self, answers: _Answers, *, required: bool) -> Iterator[tuple[str, str]]:
        choice = answers.get(self.name)
        if choice is CUSTOM:
            yield from self.custom.missing(answers, required=True)
        elif required and self.name not in answers.failed and _blank(choice):
            yield self.name, REQUIRED

    def ignored(self, answers: _Answers) -> Iterator[str]:
        if answers.get(self.name) is CUSTOM:
            yield from self.custom.ignored(answers)
        else:
            yield from self.custom.names()


# --- building the fields --------------------------------------------------------------------

@dataclass(frozen=True)
class _Where:
    """Where a property sits: its path, label, whether it is always asked for, depth."""

    path: str = ""
    label: str = ""
    required: bool = True
    nullable: bool = False  # anyOf [X, null]: blank is null where a value is required
    depth: int = 0
    # data-shown-* hints on the sub-fields of a custom choice, for the page's script.
    shown: dict[str, str] = field(default_factory=dict)


class _Builder:
    """Walks a schema once: adds a form field per property and returns the slots that
    read the JSON back, remembering which field answers for which schema path."""

    def __init__(self, form: SchemaForm) -> None:
        self.form = form
        self.paths: dict[str, str] = {}
        self.labels: set[str] = set()

    def group(self, schema: dict[str, Any], where: _Where, *, initial: Any,
              depth: int) -> _Group:
        listed = schema.get("required")
        required = frozenset(n for n in listed if isinstance(n, str)) \
            if isinstance(listed, list) else frozenset()
        defaults = initial if isinstance(initial, dict) else {}
        children: list[tuple[str, _Slot]] = []
        for key, prop in ordered_properties(schema):
            child = _Where(path=f"{where.path}.{key}" if where.path else key,
                           label=where.label, required=where.required and key in required,
                           depth=depth, shown=where.shown)
            children.append((key, self.slot(key, prop, child,
                                            initial=defaults.get(key, prop.get("default")))))
        group = _Group(children, required)
        first = next(group.names(), None)
        if where.path and first is not None:
            self.paths.setdefault(where.path, first)
        return group

    def slot(self, key: str, prop: dict[str, Any], where: _Where, *, initial: Any) -> _Slot:
        prop, nullable = collapse_nullable(prop)
        # A nullable property is optional in the form: left blank, it is null if required.
        where = _Where(path=where.path, label=self._label(key, prop, where.label),
                       required=where.required and not nullable, nullable=nullable,
                       depth=where.depth, shown=where.shown)
        common: dict[str, Any] = {"label": where.label, "help_text": help_html(prop),
                                  "required": where.required}
        if "const" in prop:
            text = as_text(prop["const"])
            name = self.add(where, forms.CharField(
                **{**common, "required": False}, disabled=True, initial=text))
            return _Const(name, value=prop["const"])
        branches = prop.get("anyOf") or prop.get("oneOf")
        if isinstance(branches, list) and branches:
            return self.branches(prop, branches, where, common, initial=initial)
        kind = json_type(prop)
        if kind == "string" and prop.get("format") == "image-url":
            return self.image(prop, where, common, initial=initial)
        if kind == "object" and isinstance(prop.get("properties"), dict) \
                and prop["properties"] and where.depth < MAX_DEPTH:
            return self.group(prop, where, initial=initial, depth=where.depth + 1)
        leaf = property_field(prop, kind, common, initial=initial)
        return _Leaf(self.add(where, leaf), where.nullable)

    def branches(self, prop: dict[str, Any], branches: list[Any], where: _Where,
                 common: dict[str, Any], *, initial: Any) -> _Slot:
        """``anyOf``/``oneOf``: named choices or an object gets a "custom" choice; a
        scalar first branch is asked as such (any branch will do); anything else is JSON."""
        enum = next((b for b in branches if isinstance(b, dict)
                     and isinstance(b.get("enum"), list)), None)
        obj = next((b for b in branches if isinstance(b, dict) and json_type(b) == "object"
                    and isinstance(b.get("properties"), dict) and b["properties"]), None)
        if enum is not None and obj is not None and where.depth < MAX_DEPTH:
            return self.custom_choice(enum["enum"], obj, where, common, initial=initial)
        first = branches[0]
        rest = {k: v for k, v in prop.items() if k not in ("anyOf", "oneOf")}
        if isinstance(first, dict) and (json_type(first) in SCALARS or "enum" in first) \
                and not (first.get("anyOf") or first.get("oneOf")):
            merged = {**first, **rest}
            return _Leaf(self.add(where, property_field(merged, json_type(merged), common,
                                                initial=initial)), where.nullable)
        return _Leaf(self.add(where, json_field(rest, "", common, initial=initial)),
                     where.nullable)

    def custom_choice(self, values: list[Any], obj: dict[str, Any], where: _Where,
                      common: dict[str, Any], *, initial: Any) -> _Choice:
        options: dict[str, Any] = choice_options(values)
        custom_key = "custom"
        while custom_key in options:
            custom_key += "_"
        options[custom_key] = CUSTOM
        sizes = {"width", "height"} <= set(obj["properties"])
        chosen = custom_key if isinstance(initial, dict) else key_of(options, initial)
        name = self.add(where, choice_field(
            options, chosen, labels={custom_key: "custom size" if sizes else "custom"},
            **common))
        shown = {"data-shown-for": self.form.add_prefix(name), "data-shown-when": custom_key}
        sub = _Where(path=where.path, label=where.label, required=False,
                     depth=where.depth, shown=shown)
        return _Choice(name, self.group(obj, sub, initial=initial, depth=where.depth + 1))

    def image(self, prop: dict[str, Any], where: _Where, common: dict[str, Any], *,
              initial: Any) -> _Image:
        """A URL box plus an upload; either answers a required image."""
        url = string_field(prop, initial=initial, alt=f"{where.label}: the uploaded image",
                            **{**common, "required": False})
        name = self.add(where, url)
        cap = upload_cap(count_of(prop.get("maxLength")))
        label = self._label("", {"title": f"{where.label}, or upload a file"}, "")
        upload_name = self.add(where, ImageUploadField(
            label=label, required=False, max_bytes=cap,
            help_text=f"PNG, JPEG, WebP or GIF, up to {filesizeformat(cap)}."),
            suffix=UPLOAD_SUFFIX)
        cast(ImageURLField, url).upload_name = upload_name
        return _Image(name, upload_name)

    def add(self, where: _Where, form_field: forms.Field, *, suffix: str = "") -> str:
        """Put the field on the form under a name no other field has."""
        base = field_name(where.path) + suffix or "field"
        name, number = base, 1
        while name in self.form.fields:
            number += 1
            name = f"{base}_{number}"
        form_field.widget.attrs.update(where.shown)
        self.form.fields[name] = form_field
        if not suffix:
            self.paths.setdefault(where.path, name)
        return name

    def _label(self, key: str, prop: dict[str, Any], parent: str) -> str:
        """The title (else the name humanised), after its parents', never used twice."""
        title = prop.get("title")
        own = str(title).strip() if title else key.replace("_", " ").strip().capitalize()
        label = f"{parent} / {own or 'Value'}" if parent else own or "Value"
        unique, number = label, 1
        while unique in self.labels:
            number += 1
            unique = f"{label} ({number})"
        self.labels.add(unique)
        return unique
