"""Typed readers for environment variables.

Every knob Brenia has comes through one of these. A value that is present but
malformed stops the process at start-up with a message naming the variable,
instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import dj_database_url


class EnvError(RuntimeError):
    """A variable is missing where it is required, or holds a bad value."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise EnvError(f"{name} must be set")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvError(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise EnvError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise EnvError(f"{name} must be <= {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise EnvError(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise EnvError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_decimal(name: str, default: str) -> Decimal:
    raw = os.environ.get(name) or default
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise EnvError(f"{name} must be a decimal number, got {raw!r}") from None


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise EnvError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str = "", *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = os.environ.get(name) or default
    if not value:
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed [ in the host
        parts = None
    if parts is None or parts.scheme not in schemes or not parts.netloc:
        raise EnvError(f"{name} must be a URL with scheme {'/'.join(schemes)}, "
                       f"got {without_credentials(value)!r}")
    return value


def without_credentials(url: str) -> str:
    """``url`` for a message: anything up to its last ``@`` may be a user and password
    (REDIS_URL, DATABASE_URL), so only the part after it is shown."""
    return "…@" + url.rsplit("@", 1)[1] if "@" in url else url


def database_from_url(url: str, *, pool_timeout: float = 10.0) -> dict[str, Any]:
    """The Django DATABASES entry for ``DATABASE_URL`` (PostgreSQL only).

    dj-database-url does the parsing: it percent-decodes the user name and password
    and turns the query string into connection OPTIONS (``?sslmode=require``).
    Messages name the variable but never echo the URL, which holds the password.
    """
    try:
        scheme = urlsplit(url).scheme
    except ValueError:  # an unclosed [ in the host; the message must not echo the URL
        raise EnvError("DATABASE_URL is not a valid URL") from None
    if scheme not in ("postgres", "postgresql"):
        raise EnvError("DATABASE_URL must start with postgres:// or postgresql://, "
                       f"got {scheme + '://' if scheme else 'no scheme'}")
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0))
    except ValueError:
        raise EnvError("DATABASE_URL is not a valid URL (percent-encode reserved characters "
                       "in the user name and password, e.g. @ as %40)") from None
    if not config.get("NAME"):
        raise EnvError("DATABASE_URL must name a database, e.g. postgres://host/brenia")
    # psycopg's pool: async code closes its connection after every ORM call
    # (database_sync_to_async), and reconnecting each time costs ~10 ms. Django
    # refuses a pool with persistent connections, hence CONN_MAX_AGE 0 above. The
    # query string's options (sslmode, connect_timeout …) stay beside it.
    # ``pool_timeout``: how long a request or job step waits for a connection (the pool
    # is full, or the database is away) before it gets an error: a 503 for a request,
    # a pause for a job (generation.jobs.runner resumes it).
    # ``reconnect_timeout``: the pool retries a failed connection with a doubling delay
    # for this long, then gives up and the next request starts afresh; with psycopg's
    # default (5 minutes) a long outage left the pool waiting out its last delay, about
    # as long again as the outage, after the database was back.
    config["OPTIONS"] = {**config.get("OPTIONS", {}), "pool": {
        "min_size": 1, "max_size": 20, "timeout": pool_timeout, "reconnect_timeout": 5.0}}
    # With a pool, Django's health checks become the pool's check of each connection it
    # hands out (one empty query): after PostgreSQL restarts, the pool's dead idle
    # connections are replaced instead of each failing a request or a job step.
    config["CONN_HEALTH_CHECKS"] = True
    return config


def write_private(path: Any, text: str) -> None:
    """Create ``path`` readable by its owner only, from the first byte (never chmod after:
    in between, anyone could read it). Fails if it exists: a secret is never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
