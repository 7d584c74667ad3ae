"""Bad input gets a clear 4xx naming the field and the problem, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from generation.models import Job
from tests.conftest import ApiClient, Persona

GENERATE = "/api/images/generate"


def problems(response: Any) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"code", "message", "errors"}
    return {e["field"]: e["problem"] for e in body["errors"]}


def test_missing_api_key_is_401(owner: Persona) -> None:
    response = ApiClient().post_json(GENERATE, {"model": "flux-schnell", "inputs": {"prompt": "x"}})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_wrong_api_key_is_401(owner: Persona) -> None:
    response = ApiClient("brn_not-a-real-key").post_json(
        GENERATE, {"model": "flux-schnell", "inputs": {"prompt": "x"}})
    assert response.status_code == 401


def test_revoked_api_key_is_401(owner: Persona) -> None:
    from brenia.accounts.models import ApiKey

    ApiKey.objects.filter(user=owner.user).update(revoked_at="2026-01-01T00:00:00Z")
    response = owner.api().get_json("/api/jobs")
    assert response.status_code == 401


def test_malformed_json_is_400_naming_the_body(owner: Persona) -> None:
    response = owner.api().post_json(GENERATE, raw='{"model": "flux-schnell", "inputs": {')
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert problems(response) == {"body": "is not valid JSON"}


def test_unknown_model_is_404(owner: Persona) -> None:
    response = owner.api().post_json(GENERATE, {"model": "no-such-model",
                                                "inputs": {"prompt": "x"}})
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_model"
    assert Job.objects.count() == 0


def test_missing_prompt_is_422_naming_the_field(owner: Persona) -> None:
    response = owner.api().post_json(GENERATE, {"model": "flux-schnell", "inputs": {}})
    assert response.status_code == 422
    assert problems(response) == {"inputs.prompt": "is required"}
    assert Job.objects.count() == 0


def test_every_problem_is_listed_at_once(owner: Persona) -> None:
    response = owner.api().post_json(GENERATE, {
        "model": "flux-schnell",
        "inputs": {"prompt": "", "num_inference_steps": 40, "output_format": "gif",
                   "colour": "red"},
        "options": {"width": 10},
    })
    assert response.status_code == 422
    assert problems(response) == {
        "inputs.prompt": "must not be empty",
        "inputs.num_inference_steps": "must be <= 12",
        "inputs.output_format": "must be one of 'jpeg', 'png'",
        "inputs.colour": "is not an accepted field for this model",
        "options.width": "must be >= 64",
        "options.height": "is required when width is given",
    }


@pytest.mark.parametrize(("body", "field", "problem"), [
    ({"inputs": {"prompt": "x"}}, "model", "is required unless the request names a kind"),
    ({"model": "flux-schnell"}, "inputs", "is required"),
    ({"model": "flux-schnell", "inputs": "a prompt"}, "inputs", "must be an object"),
    ({"model": "flux-schnell", "inputs": {"prompt": 5}}, "inputs.prompt", "must be of type string"),
    ({"model": "flux-schnell", "inputs": {"prompt": "x"}, "userId": "u1"}, "userId",
     "is not an accepted field"),
    ({"model": "flux-schnell", "inputs": {"prompt": "x" * 2001}}, "inputs.prompt",
     "must be at most 2000 characters"),
])
def test_field_problems_are_named(owner: Persona, body: dict[str, Any], field: str,
                                  problem: str) -> None:
    response = owner.api().post_json(GENERATE, body)
    assert response.status_code == 422
    assert problems(response)[field] == problem


@pytest.mark.parametrize("raw", ["[]", "null", "42", '"text"', "{}", "\u0000", "{" * 5000])
def test_odd_bodies_are_4xx_never_500(owner: Persona, raw: str) -> None:
    response = owner.api().post_json(GENERATE, raw=raw)
    assert 400 <= response.status_code < 500


def test_job_lookup_with_a_non_uuid_is_404(owner: Persona) -> None:
    assert owner.api().get_json("/api/jobs/not-a-uuid").status_code == 404


def test_bad_query_parameter_is_422(owner: Persona) -> None:
    response = owner.api().get_json("/api/jobs?limit=1000")
    assert response.status_code == 422
    assert "limit" in problems(response)


@pytest.mark.parametrize("query", ["offset=99999999999999999999", "status=%00", "model=%00",
                                   "status=done", "created_before=0.5",
                                   "created_after=1700000000", "created_after=2026-01-31"])
def test_out_of_range_or_odd_query_values_are_422(owner: Persona, query: str) -> None:
    response = owner.api().get_json("/api/jobs?" + query)
    assert response.status_code == 422


def test_times_past_the_ends_of_the_calendar_filter_as_the_nearest_instant(
        owner: Persona) -> None:
    api = owner.api()
    # Valid RFC 3339 whose UTC reading leaves years 1-9999: before or after every job.
    latest = api.get_json("/api/jobs?created_before=9999-12-31T23:59:59-17:35")
    earliest = api.get_json("/api/jobs?created_after=0001-01-01T00:00:00%2B05:00")
    assert (latest.status_code, earliest.status_code) == (200, 200)


def test_an_rfc3339_time_is_read_whatever_its_spelling(owner: Persona) -> None:
    response = owner.api().get_json(
        "/api/jobs?created_after=2026-01-31t09:30:00.123456789z")
    assert response.status_code == 200


def test_nul_characters_are_named_not_stored(owner: Persona) -> None:
    response = owner.api().post_json(GENERATE, {
        "model": "flux-schnell", "inputs": {"prompt": "a\u0000b"}, "metadata": {"k": "\u0000"}})
    assert response.status_code == 422
    assert problems(response)["inputs.prompt"] == "must not contain NUL characters"
    assert owner.api().post_json(GENERATE, {"model": "flux\u0000", "inputs": {}}).status_code == 422
    assert Job.objects.count() == 0


@pytest.mark.parametrize("host", [
    "[64:ff9b::7f00:1]",        # NAT64 of 127.0.0.1
    "[64:ff9b::a9fe:a9fe]",     # NAT64 of the metadata address
    "[64:ff9b:1::a00:5]",       # local-use NAT64 of 10.0.0.5
    "[2002:7f00:1::]",          # 6to4 of 127.0.0.1
    "[2002:a9fe:a9fe::1]",      # 6to4 of the metadata address
    "[::127.0.0.1]",            # IPv4-compatible loopback
    "[::ffff:169.254.169.254]",  # IPv4-mapped metadata
    "100.64.0.1",               # carrier-grade NAT
])
def test_addresses_that_lead_inside_through_ipv6_transition_are_refused(
        owner: Persona, host: str) -> None:
    response = owner.api().post_json(GENERATE, {"model": "image-to-image", "inputs": {
        "prompt": "x", "image_url": f"http://{host}/x.png"}})
    assert response.status_code == 422, response.json()
    assert problems(response) == {"inputs.image_url": "points to an internal address"}
    assert Job.objects.count() == 0


@pytest.mark.parametrize("url", ["ftp://weights.example/w.safetensors",
                                 "gopher://weights.example/w", "FILE://host/etc/passwd",
                                 "s3://bucket/w.safetensors"])
def test_a_uri_input_must_be_http_or_data(owner: Persona, url: str) -> None:
    response = owner.api().post_json(GENERATE, {"model": "flux-lora", "inputs": {
        "prompt": "x", "lora_url": url}})
    assert response.status_code == 422, response.json()
    assert problems(response) == {"inputs.lora_url": "must be a valid uri"}
    assert Job.objects.count() == 0


@pytest.mark.parametrize(("model", "inputs", "field"), [
    ("image-to-image", {"prompt": "x", "image_url": "http://127.0.0.1:8000/admin/"},
     "inputs.image_url"),
    ("background-removal", {"image_url": "http://169.254.169.254/latest/meta-data"},
     "inputs.image_url"),
    ("nano-banana", {"prompt": "x", "reference_image_urls": ["http://[::1]/x.png"]},
     "inputs.reference_image_urls.0"),
    ("flux-lora", {"prompt": "x", "lora_url": "http://10.0.0.5/w.safetensors"},
     "inputs.lora_url"),
])
def test_internal_addresses_in_url_inputs_are_refused(owner: Persona, model: str,
                                                      inputs: dict[str, Any], field: str) -> None:
    response = owner.api().post_json(GENERATE, {"model": model, "inputs": inputs})
    assert response.status_code == 422
    assert problems(response) == {field: "points to an internal address"}
    assert Job.objects.count() == 0


@pytest.mark.parametrize(("model", "inputs", "field", "problem"), [
    ("image-to-image", {"prompt": "x", "image_url": "not a url"}, "inputs.image_url",
     "must be a valid image-url"),
    ("image-to-image", {"prompt": "x", "image_url": "data:text/plain;base64,aGk="},
     "inputs.image_url", "must be a valid image-url"),
    ("image-to-image", {"prompt": "x", "image_url": "http://ok.example/a.png", "strength": 2},
     "inputs.strength", "must be <= 1"),
    ("image-to-image", {"prompt": "x", "image_url": "http://ok.example/a.png",
                        "strength": "half"}, "inputs.strength", "must be of type number"),
    ("flux-schnell", {"prompt": "x", "enable_safety_checker": "yes"},
     "inputs.enable_safety_checker", "must be of type boolean"),
    ("flux-schnell", {"prompt": "x", "num_images": 1.5}, "inputs.num_images",
     "must be of type integer"),
    ("flux-schnell", {"prompt": "x", "image_size": "huge"}, "inputs.image_size",
     "does not match any accepted form"),
    ("flux-schnell", {"prompt": "x", "image_size": {"width": 10, "height": 10}},
     "inputs.image_size", "does not match any accepted form"),
    ("nano-banana", {"prompt": "x", "reference_image_urls": ["data:image/png;base64,AA=="] * 4},
     "inputs.reference_image_urls", "must have at most 3 items"),
    ("flux-pro", {"prompt": "x", "safety_tolerance": 3}, "inputs.safety_tolerance",
     "must be one of '1', '2', '3', '4', '5', '6'"),
])
def test_each_kind_of_bad_value_is_named(owner: Persona, model: str, inputs: dict[str, Any],
                                         field: str, problem: str) -> None:
    response = owner.api().post_json(GENERATE, {"model": model, "inputs": inputs})
    assert response.status_code == 422, response.json()
    assert problems(response)[field] == problem


@pytest.mark.parametrize(("options", "field", "problem"), [
    ({"num_images": 9}, "options.num_images", "must be <= 4"),
    ({"seed": -1}, "options.seed", "must be >= 0"),
    ({"output_format": "bmp"}, "options.output_format", "must be one of 'jpeg', 'png'"),
    ({"priority": "urgent"}, "options.priority", "must be one of 'normal', 'low'"),
    ({"quality": "max"}, "options.quality", "is not an accepted field for this model"),
])
def test_bad_options_are_named(owner: Persona, options: dict[str, Any], field: str,
                               problem: str) -> None:
    response = owner.api().post_json(GENERATE, {"model": "flux-schnell",
                                                "inputs": {"prompt": "x"}, "options": options})
    assert response.status_code == 422
    assert problems(response) == {field: problem}


def test_dates_with_odd_offsets_are_read_in_utc(owner: Persona) -> None:
    response = owner.api().get_json("/api/jobs?created_after=0296-04-24T19:00:24.58-17:35")
    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_a_post_without_a_key_is_401_not_a_csrf_failure(owner: Persona) -> None:
    # With a session cookie it is a CSRF failure (tests/brenia/test_logs_and_keys.py).
    from django.test import Client

    browserless = Client(enforce_csrf_checks=True)
    response = browserless.post(GENERATE, data='{"model": "flux-schnell", "inputs": {}}',
                                content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_a_body_over_the_upload_limit_is_413(owner: Persona, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = owner.api().post_json(GENERATE, {"model": "flux-schnell",
                                                "inputs": {"prompt": "x" * 2000}})
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"
    assert problems(response) == {"body": "must be at most 1000 bytes"}


@pytest.mark.parametrize(("model", "inputs", "field", "problem"), [
    # Each of these once reached urllib or the resolver and came back as a 500.
    ("flux-lora", {"prompt": "x", "lora_url": "http://weights.example:99999/w"},
     "inputs.lora_url", "must be a valid uri"),
    ("image-to-image", {"prompt": "x", "image_url": "http://[::1/x.png"}, "inputs.image_url",
     "must be a valid image-url"),
    ("image-to-image", {"prompt": "x", "image_url": "http://[0]/x.png"}, "inputs.image_url",
     "must be a valid image-url"),
    ("image-to-image", {"prompt": "x", "image_url": ""}, "inputs.image_url",
     "must be a valid image-url"),
    # Scheme letters in any case meet the same guard.
    ("image-to-image", {"prompt": "x", "image_url": "HTTP://127.0.0.1/x.png"},
     "inputs.image_url", "points to an internal address"),
])
def test_urls_that_cannot_be_parsed_or_fetched_are_named(
        owner: Persona, model: str, inputs: dict[str, Any], field: str, problem: str) -> None:
    response = owner.api().post_json(GENERATE, {"model": model, "inputs": inputs})
    assert response.status_code == 422, response.json()
    assert problems(response) == {field: problem}


@pytest.mark.parametrize("url", ["http://hooks.example:99999/x", "ftp://hooks.example/x",
                                 "hooks.example/x", "http://hooks.example/a b",
                                 "http://hooks.example/\u0000"])
def test_a_webhook_url_that_is_not_an_http_url_is_422(owner: Persona, url: str) -> None:
    response = owner.api().post_json(GENERATE, {"model": "flux-schnell",
                                                "inputs": {"prompt": "x"}, "webhook_url": url})
    assert response.status_code == 422
    assert problems(response) == {"webhook_url": "must be an http or https URL"}


def test_a_dry_run_refuses_what_the_real_request_would(owner: Persona) -> None:
    response = owner.api().post_json(GENERATE + "?dry_run=true", {
        "model": "flux-schnell", "inputs": {"prompt": ""}, "metadata": {"k": "\u0000"},
        "webhook_url": "http://127.0.0.1/hook"})
    assert response.status_code == 422
    assert problems(response) == {"inputs.prompt": "must not be empty",
                                  "metadata.k": "must not contain NUL characters",
                                  "webhook_url": "points to an internal address"}


def test_every_unknown_field_and_missing_one_is_named(owner: Persona) -> None:
    response = owner.api().post_json(GENERATE, {
        "model": "flux-lora", "inputs": {"colour": "red", "size": 3}})
    assert problems(response) == {
        "inputs.prompt": "is required", "inputs.lora_url": "is required",
        "inputs.colour": "is not an accepted field for this model",
        "inputs.size": "is not an accepted field for this model"}
