"""Over a thousand generated bodies against the generate and template-run APIs: no 5xx.

In process, with Django's test client, so it runs in seconds: posts to
``/api/images/generate``, ``/api/text/generate`` and ``/api/templates/<slug>/runs``
with ``?dry_run=true`` (validated and quoted; nothing is queued), and a last few hundred
without it, so what passes the checks is written to the database too (inside the test's
transaction, rolled back before anything is dispatched). Every answer must be below
500, and every 4xx must carry the one error shape ``{code, message, errors}``.

The bodies are of two kinds:

- **Anything**: arbitrary JSON (any top-level type, wrong types for every field,
  nesting thousands deep, integers past 4300 digits, NaN and infinities, lone
  surrogates, NUL and other odd characters) and raw bytes that are not JSON at all.
- **Nearly right**: bodies drawn from each registry model's input schema and each
  template's variable schema (hypothesis-jsonschema; the API publishes both), with
  options and formats around them, then sometimes one thing broken: a field dropped or
  given any JSON, or one string, however deep, made odd.

URLs in drawn bodies are IP literals (public, internal, malformed) or data URIs: a
host name would make the URL check ask DNS, which is offline here and slow to say so.

Reproducible: ``derandomize`` fixes hypothesis's seed, and no example database is
kept. It prints how many bodies went out and how the statuses fell.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from tests.conftest import ApiClient, Persona

pytestmark = pytest.mark.django_db

GENERATE_EXAMPLES = 800
TEMPLATE_EXAMPLES = 400
CREATE_EXAMPLES = 300
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

# --- anything ---------------------------------------------------------------------------------

ODD_STRINGS = st.sampled_from([
    "", "\x00", "a\x00b", "\ud800", "\udfff\ud800", "\u202eevil", "\ufeff", "\u0000" * 50,
    "\U0001d573\U0001d58a\U0001d591\U0001d591\U0001d594", "\U0001f642" * 500, "x" * 100_000,
    "e\u0301" * 300, "\r\n\t", "null", "NaN",
    "flux-schnell\x00", "../../etc/passwd", "%00", "${jndi:ldap://x}", "<script>",
])
# Every code point, surrogates and control characters included.
TEXT = st.text(st.characters(exclude_categories=()), max_size=40) | ODD_STRINGS
NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=10**300, max_value=10**1000), st.integers().map(lambda n: -abs(n)),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, -0.0, 1e308, 5e-324]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


def dump(value: Any) -> bytes:
    """JSON as a client may send it: NaN and Infinity included, surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


def nested(depth: int, inside: str = "1") -> str:
    return "[" * depth + inside + "]" * depth


# Bodies json.dumps cannot make: deep nesting, integers too long for Python to parse,
# broken JSON, bytes that are not UTF-8.
RAW = st.one_of(
    st.integers(min_value=64, max_value=200_000).map(nested),
    st.integers(min_value=64, max_value=50_000).map(
        lambda n: '{"model": "flux-schnell", "inputs": {"prompt": ' + nested(n, '"x"') + "}}"),
    st.integers(min_value=64, max_value=50_000).map(
        lambda n: '{"variables": ' + '{"a":' * n + "1" + "}" * n + "}"),
    st.integers(min_value=4000, max_value=50_000).map(
        lambda n: '{"model": "flux-schnell", "inputs": {"prompt": "x", "seed": 1' + "0" * n
                  + "}}"),
    st.sampled_from(["", " ", "null", "[]", '"x"', "{", '{"model":', "{'model': 1}",
                     '{"model": "flux-schnell", "model": 7}', "\ufeff{}", "1e99999",
                     '{"inputs": {"prompt": "\\ud800"}, "model": "flux-schnell"}',
                     '{"model": "flux-schnell", "inputs": {"prompt": "\\u0000"}}']),
).map(str.encode) | st.binary(max_size=200)

# --- nearly right -----------------------------------------------------------------------------

TINY_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAFElEQVR4"
            "nGM8Iafxn4GBgYGJAQoAH6gCEePspQYAAAAASUVORK5CYII=")
GOOD_URLS = st.sampled_from(["https://192.0.0.9/photo.png", "http://192.0.0.9/a/b.jpg", TINY_PNG])
URLS = GOOD_URLS | st.one_of(
    st.builds("http://192.0.0.9/{}.png".format, st.text("abc/%.?=#", max_size=20)),
    st.sampled_from([
        "https://192.0.0.9/a.png", "http://127.0.0.1/a.png", "http://169.254.169.254/latest",
        "http://10.0.0.1/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x",
        "http://192.0.0.9:99999/x", "http://[::1", "http://", "ftp://192.0.0.9/x",
        "javascript:alert(1)", TINY_PNG, "data:image/png;base64,!!!!",
        "data:text/plain,hello", "data:image/png;base64," + "A" * 10_000, "file:///etc/passwd",
    ]),
    TEXT,
)
# Schemas name these formats; their strings are drawn from URLS (see the docstring).
URL_FORMATS = ("uri", "image-url", "uri-reference", "url")
WEBHOOKS = st.sampled_from(["", "https://192.0.0.9/hook", "http://10.0.0.1/hook",
                            "http://[::1]/hook", "not a url", "https://192.0.0.9/" + "a" * 3000])


def url_formats_renamed(schema: Any) -> Any:
    """``schema`` with its URL formats renamed to one drawn from URLS."""
    if isinstance(schema, dict):
        return {key: ("brenia-url" if key == "format" and value in URL_FORMATS
                      else url_formats_renamed(value)) for key, value in schema.items()}
    if isinstance(schema, list):
        return [url_formats_renamed(item) for item in schema]
    return schema


def drawn_from(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values ``schema`` allows, without fields it does not name (Brenia refuses those;
    ``broken`` adds wrong ones back)."""
    closed = {**url_formats_renamed(schema), "additionalProperties": False}
    return from_schema(closed, custom_formats={"brenia-url": URLS})


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where ``value`` holds strings, as paths of keys and indexes."""
    if isinstance(value, str):
        return [path]
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else []
    return [found for key, item in items for found in string_paths(item, (*path, key))]


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


SPOILS = ("as is", "drop", "retype", "odd string")


def broken(valid: st.SearchStrategy[dict[str, Any]],
           spoils: tuple[str, ...] = SPOILS) -> st.SearchStrategy[dict[str, Any]]:
    """A drawn body as is; with one field dropped or given any JSON; or with one of its
    strings, however deep, made odd (NUL, lone surrogates, huge, bidi controls …):
    hypothesis-jsonschema's own strings are always valid UTF-8."""
    def spoil(body: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
        how = data.draw(st.sampled_from(spoils))
        strings = string_paths(body)
        if how == "odd string" and strings:
            return replaced(body, data.draw(st.sampled_from(strings)), data.draw(ODD_STRINGS))
        if how == "as is" or not body:
            return body
        key = data.draw(st.sampled_from(sorted(body)))
        spoiled = dict(body)
        if how == "drop":
            del spoiled[key]
        else:
            spoiled[key] = data.draw(WEBHOOKS if key == "webhook_url" else JSON)
        return spoiled

    return st.tuples(valid, st.data()).map(lambda pair: spoil(*pair))


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


# Right in themselves: a body's one wrong field comes from ``broken``.
OPTIONS = optional(
    width=st.integers(64, 2048), height=st.integers(64, 2048), num_images=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1), output_format=st.sampled_from(["png", "jpeg"]),
    priority=st.sampled_from(["normal", "low"]))
METADATA = st.dictionaries(st.text(max_size=10), st.text(max_size=20) | st.integers(),
                           max_size=3)


def generate_bodies(models: list[dict[str, Any]],
                    spoils: tuple[str, ...] = SPOILS) -> st.SearchStrategy[dict[str, Any]]:
    """Nearly right bodies for the generate endpoints, one strategy per registry model."""
    per_model = [
        st.fixed_dictionaries(
            {"model": st.just(model["slug"]), "inputs": drawn_from(model["input_schema"])},
            optional={"options": OPTIONS, "metadata": METADATA,
                      "webhook_url": st.sampled_from(["", "https://192.0.0.9/hook"])})
        for model in models]
    return broken(st.one_of(per_model), spoils)


def run_bodies(template: dict[str, Any],
               spoils: tuple[str, ...] = SPOILS) -> st.SearchStrategy[dict[str, Any]]:
    formats = [entry["slug"] for entry in template["formats"]]
    return broken(st.fixed_dictionaries(
        {"variables": drawn_from(template["variables"])},
        optional={"formats": st.lists(st.sampled_from(formats), min_size=1, max_size=3,
                                      unique=True),
                  "brand_kit": st.none(),
                  "output_format": st.sampled_from(["png", "jpeg", "webp"])}), spoils)


# --- the run ----------------------------------------------------------------------------------

class Tally:
    """Posts each body, checks the answer, and counts statuses per endpoint."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.started = time.monotonic()

    def post(self, path: str, body: bytes, *, dry_run: bool = True) -> None:
        response = self.client.post(f"{path}?dry_run=true" if dry_run else path, data=body,
                                    content_type="application/json",
                                    headers={"Authorization": f"Bearer {self.client.key}"})
        endpoint = "/api/templates/<slug>/runs" if path.startswith("/api/templates/") else path
        self.statuses[(endpoint, response.status_code)] += 1
        shown = body[:300]
        assert response.status_code < 500, (
            f"{response.status_code} for POST {path} with {len(body)} bytes: {shown!r}")
        if response.status_code >= 400:
            error = response.json()
            assert isinstance(error, dict) and set(error) >= {"code", "message", "errors"}, \
                (response.status_code, error, shown)
            assert isinstance(error["code"], str) and isinstance(error["message"], str)
            assert isinstance(error["errors"], list)

    def report(self, title: str) -> str:
        lines = [f"{title}: {sum(self.statuses.values())} bodies in "
                 f"{time.monotonic() - self.started:.1f} s"]
        lines += [f"  {count:5d}  {status}  {endpoint}"
                  for (endpoint, status), count in sorted(self.statuses.items())]
        return "\n".join(lines)


def run(tally: Tally, examples: int, targets: st.SearchStrategy[tuple[str, bytes]], *,
        dry_run: bool = True) -> None:
    @settings(FUZZ, max_examples=examples)
    @given(targets)
    def post(target: tuple[str, bytes]) -> None:
        tally.post(*target, dry_run=dry_run)

    post()


def sent_to(paths: st.SearchStrategy[str],
            bodies: st.SearchStrategy[bytes]) -> st.SearchStrategy[tuple[str, bytes]]:
    return st.tuples(paths, bodies)


def as_json(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return strategy.map(dump)


def test_generated_bodies_never_break_the_generate_endpoints(owner: Persona) -> None:
    client = ApiClient(owner.key)
    models = client.get_json("/api/models").json()
    images = [m for m in models if m["kind"] != "text"]
    texts = [m for m in models if m["kind"] == "text"]
    assert images and texts
    image_path, text_path = "/api/images/generate", "/api/text/generate"
    tally = Tally(client)
    run(tally, GENERATE_EXAMPLES, st.one_of(
        sent_to(st.sampled_from([image_path, text_path]), as_json(JSON) | RAW),
        sent_to(st.just(image_path), as_json(generate_bodies(images))),
        sent_to(st.just(text_path), as_json(generate_bodies(texts))),
    ))
    sys.stdout.write(tally.report("generate") + "\n")
    assert sum(tally.statuses.values()) >= GENERATE_EXAMPLES
    # The nearly right bodies reach the quote, not only the parser's refusals.
    assert tally.statuses[(image_path, 200)] > 0
    assert tally.statuses[(text_path, 200)] > 0


def test_generated_bodies_never_break_the_template_run_endpoint(owner: Persona) -> None:
    from templates_app.services import ad_template_seed

    ad_template_seed()
    client = ApiClient(owner.key)
    slugs = [t["slug"] for t in client.get_json("/api/templates").json()]
    templates = [client.get_json(f"/api/templates/{slug}").json() for slug in slugs]
    assert templates
    paths = st.sampled_from([f"/api/templates/{slug}/runs" for slug in slugs]
                            + ["/api/templates/no-such-template/runs"])
    tally = Tally(client)
    run(tally, TEMPLATE_EXAMPLES, st.one_of(
        sent_to(paths, as_json(JSON) | RAW),
        *[sent_to(st.just(f"/api/templates/{t['slug']}/runs"), as_json(run_bodies(t)))
          for t in templates],
    ))
    sys.stdout.write(tally.report("template runs") + "\n")
    assert sum(tally.statuses.values()) >= TEMPLATE_EXAMPLES
    assert tally.statuses[("/api/templates/<slug>/runs", 200)] > 0


def test_generated_bodies_that_create_jobs_and_runs_never_break_the_api(
        owner: Persona) -> None:
    """Without dry_run, so each body that passes the checks is written: the database
    must take whatever the checks let through. Inside the test's transaction, which is
    rolled back, so nothing is ever dispatched (that waits for the commit)."""
    from templates_app.services import ad_template_seed

    ad_template_seed()
    client = ApiClient(owner.key)
    models = client.get_json("/api/models").json()
    slugs = [t["slug"] for t in client.get_json("/api/templates").json()]
    templates = [client.get_json(f"/api/templates/{slug}").json() for slug in slugs]
    image_path = "/api/images/generate"
    tally = Tally(client)
    # Each body right but for one odd string, the kind a database may refuse. Half to
    # each endpoint (one_of would flatten and weigh each template like a model).
    odd = ("odd string",)
    both = [sent_to(st.just(image_path), as_json(generate_bodies(
                [m for m in models if m["kind"] != "text"], odd))),
            st.one_of([sent_to(st.just(f"/api/templates/{t['slug']}/runs"),
                               as_json(run_bodies(t, odd))) for t in templates])]
    run(tally, CREATE_EXAMPLES, st.sampled_from([0, 1]).flatmap(both.__getitem__),
        dry_run=False)
    sys.stdout.write(tally.report("creating") + "\n")
    # Some bodies passed the checks and were written (most odd strings are refused).
    assert tally.statuses[(image_path, 202)] + \
        tally.statuses[("/api/templates/<slug>/runs", 202)] > 0
