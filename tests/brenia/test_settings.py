"""Settings come from the environment through typed helpers that fail loudly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from brenia.env import EnvError, database_from_url, env_bool, env_choice, env_int

ROOT = Path(__file__).resolve().parents[2]


def settings_in_child(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("SECRET_KEY", "BRENIA_ENV", "DATABASE_URL", "BRENIA_JOBS")}
    clean.update({"BRENIA_DATA_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings;"
         " print(settings.SECRET_KEY[:6], settings.LOG_FORMAT)"],
        cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "brenia.settings"},
        capture_output=True, text=True, timeout=60)


def test_production_refuses_to_start_without_secret_key(tmp_path: Path) -> None:
    result = settings_in_child({"BRENIA_ENV": "production"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when BRENIA_ENV=production" in result.stderr


def test_production_logs_json_and_uses_the_given_key(tmp_path: Path) -> None:
    result = settings_in_child({"BRENIA_ENV": "production", "SECRET_KEY": "abcdef-secret"},
                               tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["abcdef", "json"]


def test_embedded_mode_generates_a_key_once_and_keeps_it(tmp_path: Path) -> None:
    first = settings_in_child({}, tmp_path)
    second = settings_in_child({}, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_bad_values_name_the_variable(tmp_path: Path) -> None:
    result = settings_in_child({"BRENIA_JOBS": "threads"}, tmp_path)
    assert "BRENIA_JOBS must be one of inprocess, procrastinate" in result.stderr
    result = settings_in_child({"BRENIA_POLL_INTERVAL": "soon"}, tmp_path)
    assert "BRENIA_POLL_INTERVAL must be a number" in result.stderr


def test_procrastinate_needs_postgres(tmp_path: Path) -> None:
    result = settings_in_child({"BRENIA_JOBS": "procrastinate"}, tmp_path)
    assert "BRENIA_JOBS=procrastinate needs DATABASE_URL" in result.stderr


def test_env_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BOOL", "yes")
    assert env_bool("X_BOOL") is True
    monkeypatch.setenv("X_BOOL", "perhaps")
    with pytest.raises(EnvError, match="X_BOOL must be a boolean"):
        env_bool("X_BOOL")
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(EnvError, match="X_INT must be >= 1"):
        env_int("X_INT", 5, minimum=1)
    assert env_choice("X_UNSET", "a", ("a", "b")) == "a"
    with pytest.raises(EnvError, match="DATABASE_URL must name a database"):
        database_from_url("postgres://host:5432/")
    assert database_from_url("postgres://u:p@db:6543/brenia")["PORT"] == 6543


def test_database_url_query_string_reaches_the_connection_options() -> None:
    db = database_from_url("postgresql://u:p@db/brenia?sslmode=require&connect_timeout=5")
    assert db["OPTIONS"] == {"sslmode": "require", "connect_timeout": 5,
                             "pool": {"min_size": 1, "max_size": 20, "timeout": 10.0,
                                      "reconnect_timeout": 5.0}}
    assert db["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections
    # With a pool, Django's health check is the pool's check of each connection it
    # hands out: what replaces the dead ones after a database restart.
    assert db["CONN_HEALTH_CHECKS"] is True
    assert database_from_url("postgres://db/brenia", pool_timeout=2.5)["OPTIONS"]["pool"][
        "timeout"] == 2.5
    assert db["ENGINE"] == "django.db.backends.postgresql"


def test_database_url_password_is_percent_decoded() -> None:
    db = database_from_url("postgres://brenia%2Bapp:p%40ss%2Fw0rd@db:5432/brenia")
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["NAME"]) == (
        "brenia+app", "p@ss/w0rd", "db", "brenia")


@pytest.mark.parametrize("url", ["mysql://u:hunter2@db/brenia", "sqlite:///hunter2.db",
                                 "postgres://u:hunter2@db:port/brenia"])
def test_database_url_refusal_names_the_variable_but_not_the_password(url: str) -> None:
    with pytest.raises(EnvError, match="DATABASE_URL") as refused:
        database_from_url(url)
    assert "hunter2" not in str(refused.value)


def test_non_postgres_database_url_stops_startup_without_echoing_it(tmp_path: Path) -> None:
    result = settings_in_child({"DATABASE_URL": "mysql://brenia:hunter2@db/brenia"}, tmp_path)
    assert result.returncode != 0
    assert "DATABASE_URL must start with postgres:// or postgresql://, got mysql://" in (
        result.stderr)
    assert "hunter2" not in result.stderr
