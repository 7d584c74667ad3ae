"""Limits every input meets, whichever door it came in by: JSON nested at most
``MAX_JSON_DEPTH`` levels, strings of at most ``MAX_STRING_CHARS`` characters (data
URIs, which carry whole images, up to ``MAX_DATA_URI_CHARS``) and of valid Unicode,
and free text without control characters.

Python's JSON parser, jsonschema and the database all recurse; a body nested a few
hundred levels deep once reached them and came back as a 500. The API's parser
(``brenia.api``) applies these limits before any of that runs, and the services apply
them again for what comes in through pages and forms.
"""

from __future__ import annotations

import re
from typing import Any

from brenia.errors import FieldProblem

MAX_JSON_DEPTH = 32
MAX_STRING_CHARS = 64 * 1024
# A data URI is an image: the request body's own cap is the real limit, and each
# image field's schema (maxLength) the tighter one. This only bounds the rest.
MAX_DATA_URI_CHARS = 16 * 1024 * 1024
# What free text loses: C0 controls but tab, line feed and carriage return (a CRLF or a
# lone CR becomes a line feed), DEL and the C1 controls. Each becomes a space rather
# than vanishing, so a word stays apart from the next and a value keeps its length: a
# value the API document calls long enough (minLength) never becomes empty. NUL is not
# here: it is refused by name.
_LINE_BREAKS = re.compile(r"\r\n?")
_CONTROLS = re.compile(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# JSON's \ud800 escapes can spell half a character; no UTF-8 (PostgreSQL's jsonb, a
# provider's request) can carry one.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_UNICODE = "has characters that are not valid Unicode (a lone surrogate)"


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _string_problem(text: str) -> str | None:
    cap = MAX_DATA_URI_CHARS if text[:5].lower() == "data:" else MAX_STRING_CHARS
    if len(text) > cap:
        return f"must be at most {cap} characters"
    return NOT_UNICODE if _LONE_SURROGATE.search(text) else None


def json_problems(value: Any, prefix: str) -> list[FieldProblem]:
    """Where ``value`` (parsed JSON) passes the limits: too deep, a string too long or
    not valid Unicode.

    Walked with a stack, not recursion, so no depth can break the walk itself. Depth
    counts containers: ``{"a": [1]}`` is two deep. Too deep is named at the field
    the client sent (``metadata``), not at a path as long as the nesting.
    """
    problems: list[FieldProblem] = []
    deep: set[str] = set()
    stack: list[tuple[Any, str, int, str]] = [(value, prefix, 0, prefix)]
    while stack:
        item, path, depth, top = stack.pop()
        if isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                problems.append(FieldProblem(path or "body", problem))
            continue
        if isinstance(item, dict):
            children: list[tuple[Any, Any]] = list(item.items())
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        if depth + 1 > MAX_JSON_DEPTH:
            if top not in deep:
                deep.add(top)
                problems.append(FieldProblem(
                    top or "body", f"is nested more than {MAX_JSON_DEPTH} levels deep"))
            continue
        for key, child in children:
            child_path = _join(path, key)
            if isinstance(key, str) and len(key) > MAX_STRING_CHARS:
                problems.append(FieldProblem(path or "body", f"has a key longer than "
                                             f"{MAX_STRING_CHARS} characters"))
                continue
            if isinstance(key, str) and _LONE_SURROGATE.search(key):
                problems.append(FieldProblem(path or "body", "has a key that is not valid "
                                             "Unicode (a lone surrogate)"))
                continue
            stack.append((child, child_path, depth + 1, top if path != prefix else child_path))
    return sorted(set(problems), key=lambda p: (p.field, p.problem))


def clean_text(text: str) -> str:
    """Free text without control characters (each a space): line breaks as ``\\n``,
    tabs kept."""
    return _CONTROLS.sub(" ", _LINE_BREAKS.sub("\n", text))
