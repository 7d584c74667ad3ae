"""No secret in any log line or error body, even at LOG_LEVEL=DEBUG.

Brenia runs live in production mode at DEBUG with distinctive secret values (its
SECRET_KEY, the fal and Gemini keys, in scale-out a DATABASE_URL password), drives a
job to its webhook, fails provider calls on purpose (the emulators' fault tokens),
sends a wrong API key; then nothing the processes wrote, and no error body, may hold
any of those values, the user's API key or webhook secret. Start-up with a malformed
URL variable must not echo its password either.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from generation.emulators.server import EmulatorThread
from tests.brenia.live import (
    Hooks,
    brenia_env,
    json_lines,
    output,
    wait_for,
)
from tests.conftest import ROOT, SCALEOUT, LiveBrenia, Persona, brenia_processes

pytestmark = pytest.mark.django_db(transaction=True)

MARK = uuid.uuid4().hex[:10]
SECRETS = {
    "SECRET_KEY": f"django-secret-{MARK}-" + "s" * 40,
    "FAL_KEY": f"ops-fal-id:fal-secret-{MARK}",
    "GEMINI_API_KEY": f"gemini-secret-{MARK}",
    "BRENIA_METRICS_TOKEN": f"metrics-secret-{MARK}",
}
DATABASE_PASSWORD = f"pg-secret-{MARK}"
PROXY = {"X-Forwarded-Proto": "https"}


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` (this PostgreSQL trusts loopback, so any one is taken)."""
    parts = urlsplit(url)
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    with Hooks() as receiver:
        yield receiver


# Production at LOG_LEVEL=DEBUG, and development with DEBUG on too (Django then logs
# every SQL statement with its parameters at DEBUG, unless told not to).
MODES = {
    "production": {"BRENIA_ENV": "production"},
    "development-debug": {"DEBUG": "1", "LOG_FORMAT": "json"},
}


@pytest.fixture(params=list(MODES))
def secretive(request: pytest.FixtureRequest, seeded: None, fal_emulator: EmulatorThread,
              gemini_emulator: EmulatorThread, tmp_path: Path) -> Iterator[LiveBrenia]:
    env = brenia_env(fal_emulator, gemini_emulator, tmp_path, ALLOWED_HOSTS="127.0.0.1",
                     BRENIA_WEBHOOK_ALLOWED_HOSTS="127.0.0.1", LOG_LEVEL="DEBUG",
                     **MODES[request.param], **SECRETS)
    if SCALEOUT:
        env["DATABASE_URL"] = with_password(env["DATABASE_URL"], DATABASE_PASSWORD)
    with brenia_processes(env, tmp_path, quiet=True) as live:
        yield live


def ended(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
    return job if job["status"] in ("completed", "failed", "errored", "cancelled") else None


def test_no_secret_reaches_a_log_line_or_an_error_body_at_debug_level(
        secretive: LiveBrenia, owner: Persona, hooks: Hooks) -> None:
    client = httpx.Client(base_url=secretive.url, timeout=30,
                          headers={"Authorization": f"Bearer {owner.key}", **PROXY})
    webhook_secret = client.get("/api/account/webhook-secret").json()["secret"]
    error_bodies: list[str] = []

    def generate(model: str, prompt: str, **extra: Any) -> dict[str, Any]:
        response = client.post("/api/images/generate", json={
            "model": model, "inputs": {"prompt": prompt}, **extra})
        assert response.status_code == 202, response.text
        job = wait_for(lambda: ended(client, response.json()["id"]), f"end of a {model} job")
        if job["status"] != "completed":
            error_bodies.append(str(job))
        return job

    hook = hooks.url()
    assert generate("flux-schnell", "Lemonade stand", webhook_url=hook)["status"] == "completed"
    wait_for(lambda: hooks.got(hook), "webhook")
    # Failing provider calls: fal refuses the input (422), Gemini answers 403.
    refused = generate("flux-schnell", "Lemonade [[fal:content_policy]]")
    assert refused["status"] == "failed" and refused["error"]["code"] == \
        "content_policy_violation"
    assert generate("nano-banana", "Lemonade [[gemini:403]]")["status"] == "failed"
    for headers in ({"Authorization": "Bearer brn_" + "x" * 40},
                    {"Authorization": f"Token {owner.key}"}):
        refused_key = httpx.get(f"{secretive.url}/api/jobs", headers={**headers, **PROXY})
        assert refused_key.status_code == 401
        error_bodies.append(refused_key.text)
    for token in (SECRETS["BRENIA_METRICS_TOKEN"], "wrong-token"):
        scraped = httpx.get(f"{secretive.url}/metrics",
                            headers={"Authorization": f"Bearer {token}", **PROXY})
        if scraped.status_code >= 400:
            error_bodies.append(scraped.text)
    error_bodies.append(client.post("/api/images/generate", json={
        "model": "flux-schnell", "inputs": {}, "webhook_url": "http://10.0.0.1/x"}).text)
    attempts = wait_for(lambda: [line for line in json_lines(secretive)
                                 if line["logger"] == "generation.outbound.delivery"],
                        "webhook attempt line")
    assert attempts

    lines = json_lines(secretive)
    assert any(line["level"] == "DEBUG" for line in lines), "LOG_LEVEL=DEBUG took no effect"
    assert any(line.get("outcome") == "content_policy_violation" for line in lines)
    written = output(secretive)
    secrets = {**SECRETS, "API key": owner.key, "webhook secret": webhook_secret,
               "fal key's secret half": SECRETS["FAL_KEY"].split(":")[1]}
    if SCALEOUT:
        secrets["DATABASE_URL password"] = DATABASE_PASSWORD
    for name, value in secrets.items():
        assert value not in written, f"{name} is in the processes' output"
        for body in error_bodies:
            assert value not in body, f"{name} is in an error body: {body}"


# --- start-up with a malformed URL ------------------------------------------------------------

def manage_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py check`` in an environment of its own (whatever profile the suite runs)."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PYTEST", "DJANGO_", "BRENIA_", "DATABASE_URL", "REDIS_URL"))}
    clean.update({"BRENIA_DATA_DIR": str(tmp_path), "LOG_LEVEL": "DEBUG", **env})
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("variable", "url"), [
    ("DATABASE_URL", "postgres://brenia:{pw}@db:notaport/brenia"),
    ("DATABASE_URL", "postgres://brenia:{pw}@[db/brenia"),
    ("DATABASE_URL", "postgres//brenia:{pw}@db/brenia"),
    ("DATABASE_URL", "mysql://brenia:{pw}@db/brenia"),
    ("DATABASE_URL", "postgres://brenia:{pw}@db/"),
    ("REDIS_URL", "redis//:{pw}@cache:6379/0"),
    ("REDIS_URL", "http://:{pw}@cache:6379/0"),
    ("REDIS_URL", "redis://:{pw}@[cache:6379/0"),
    ("REDIS_URL", "redis//:pass/with/slashes-{pw}@cache:6379/0"),
])
@pytest.mark.django_db(transaction=False)
def test_a_malformed_url_stops_start_up_without_echoing_its_password(
        tmp_path: Path, variable: str, url: str) -> None:
    password = f"url-secret-{MARK}"
    result = manage_check(tmp_path, **{variable: url.format(pw=password)})
    assert result.returncode != 0
    # The message names the variable (its last line; the lines above are the traceback).
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"brenia.env.EnvError: {variable} "), result.stderr[-2000:]
    assert password not in result.stdout + result.stderr, result.stderr[-2000:]
