"""Request ids on every log line; API keys printed once and stored hashed."""

from __future__ import annotations

import json
import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from brenia.accounts.models import ApiKey, hash_api_key
from brenia.logs import JsonFormatter, RequestIdFilter, request_id_var
from tests.conftest import ApiClient, Persona


def test_json_lines_carry_the_request_id_and_extras() -> None:
    record = logging.LogRecord("brenia.test", logging.INFO, __file__, 1, "job %s done",
                               ("j1",), None)
    token = request_id_var.set("req-123")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    record.job_id = "j1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job j1 done"
    assert line["request_id"] == "req-123"
    assert line["job_id"] == "j1"
    assert line["level"] == "INFO"


def test_responses_echo_a_sane_request_id_and_replace_an_odd_one(owner: Persona) -> None:
    client = ApiClient(owner.key)
    assert client.get_json("/api/jobs", headers={"X-Request-ID": "abc-123"})[
        "X-Request-ID"] == "abc-123"
    generated = client.get_json("/api/jobs", headers={"X-Request-ID": "bad id\n<x>"})
    assert generated["X-Request-ID"] != "bad id\n<x>"
    assert len(generated["X-Request-ID"]) == 32


def test_request_log_lines_carry_the_request_id(owner: Persona,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="django.request"):
        ApiClient(owner.key).get("/api/jobs/" + "0" * 8, headers={"X-Request-ID": "trace-42",
                                                                 "Authorization": "x"})
    ids = {getattr(r, "request_id", None) for r in caplog.records if r.name == "django.request"}
    assert ids == {"trace-42"}


def test_create_api_key_prints_a_key_once_and_stores_only_its_hash(owner: Persona) -> None:
    out = StringIO()
    call_command("create_api_key", "owner", stdout=out)
    raw = out.getvalue().strip()
    assert raw.startswith("brn_") and len(raw) > 40
    stored = ApiKey.objects.get(key_hash=hash_api_key(raw))
    assert stored.user == owner.user
    assert raw not in {stored.key_hash, stored.prefix}
    assert ApiClient(raw).get_json("/api/jobs").status_code == 200


def test_create_api_key_for_unknown_user_fails_clearly(db: None) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="There is no user 'nobody'"):
        call_command("create_api_key", "nobody")


# --- the browser's session ------------------------------------------------------------------

DRY_RUN = "/api/images/generate?dry_run=true"
BRIEF = {"model": "flux-schnell", "inputs": {"prompt": "lemonade"}}


def browser(persona: Persona) -> Client:
    """A logged-in browser: no bearer key, and CSRF enforced as a real browser meets it."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(persona.user)
    return client


def test_a_session_reads_the_api_without_a_key(owner: Persona) -> None:
    response = browser(owner).get("/api/jobs")
    assert response.status_code == 200, response.json()


def test_a_session_post_without_the_csrf_token_is_refused(owner: Persona) -> None:
    response = browser(owner).post(DRY_RUN, BRIEF, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


def test_a_session_post_with_the_csrf_token_is_served(owner: Persona) -> None:
    client = browser(owner)
    client.get("/accounts/login/")  # any page with a form sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(DRY_RUN, BRIEF, content_type="application/json",
                           headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.json()
    assert response.json()["valid"] is True


def test_a_deactivated_users_session_no_longer_opens_the_api(owner: Persona) -> None:
    client = browser(owner)
    owner.user.is_active = False
    owner.user.save(update_fields=["is_active"])
    response = client.get("/api/jobs")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_a_bearer_key_needs_no_csrf_token(owner: Persona) -> None:
    client = ApiClient(owner.key)
    client.handler.enforce_csrf_checks = True
    response = client.post_json(DRY_RUN, BRIEF)
    assert response.status_code == 200, response.json()
