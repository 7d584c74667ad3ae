"""Production defaults: DEBUG, the deploy checklist, CSP, emulators only when asked,
secret files private from their first byte, passwords printed once."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import Persona

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {"BRENIA_ENV": "production", "SECRET_KEY": "x" * 40 + "-production-only-y" * 3,
              "ALLOWED_HOSTS": "brenia.example.com"}


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """manage.py in a fresh embedded checkout of its own (whatever profile the suite runs)."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PYTEST", "DJANGO_", "DEBUG", "BRENIA_", "SECRET_KEY",
                                  "DATABASE_URL", "REDIS_URL", "AWS_", "MEDIA_ROOT"))}
    clean.update({"BRENIA_DATA_DIR": str(tmp_path / "data"),
                  "SQLITE_PATH": str(tmp_path / "db.sqlite3"), **env})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=120, check=False)


def test_check_deploy_is_clean_in_production(tmp_path: Path) -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION,
                    tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_is_off_unless_asked_and_never_in_production(tmp_path: Path) -> None:
    show = ("shell", "--no-imports", "-c",
            "from django.conf import settings; print(settings.DEBUG)")
    assert manage(*show, env={}, tmp_path=tmp_path).stdout.strip() == "False"
    assert manage(*show, env={"DEBUG": "1"}, tmp_path=tmp_path).stdout.strip() == "True"
    refused = manage(*show, env={**PRODUCTION, "DEBUG": "1"}, tmp_path=tmp_path)
    assert refused.returncode != 0
    assert "DEBUG cannot be on when BRENIA_ENV=production" in refused.stderr


def test_production_refuses_the_emulators_unless_named(tmp_path: Path) -> None:
    result = manage("serve", "--port", "1", env=PRODUCTION, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "BRENIA_EMULATORS=fal,gemini" in result.stderr
    assert "FAL_KEY and GEMINI_API_KEY" in result.stderr


def test_secret_and_credential_files_are_private_and_passwords_printed_once(
        tmp_path: Path) -> None:
    assert manage("migrate", "-v", "0", env={}, tmp_path=tmp_path).returncode == 0
    first = manage("bootstrap", env={}, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "5 new provider policy(ies)" in first.stdout  # every kind is served
    data = tmp_path / "data"
    for name in ("secret_key", "demo_credentials.json"):
        mode = stat.S_IMODE((data / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    passwords = json.loads((data / "demo_credentials.json").read_text())
    assert set(passwords) == {"marketer", "admin"}
    assert all(password in first.stdout for password in passwords.values())
    again = manage("bootstrap", env={}, tmp_path=tmp_path)
    assert again.returncode == 0
    assert not any(password in again.stdout for password in passwords.values())


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy(owner: Persona) -> None:
    response = Client().get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
                      "object-src 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy
    assert response["X-Frame-Options"] == "DENY"
    # Django's admin keeps a few style attributes: inline styles there, never scripts.
    admin = Client().get("/admin/login/")["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in admin and "script-src 'self';" in admin + ";"


@pytest.mark.django_db
def test_not_found_is_a_page_of_ours_that_says_why(owner: Persona) -> None:
    client = Client()
    client.force_login(owner.user)
    response = client.get("/runs/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert b"There is no such run." in response.content
    assert b"Back to the start" in response.content
