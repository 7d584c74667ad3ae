"""Shared fixtures: personas, API clients, the emulators and live Brenia processes.

The suite runs under two profiles, chosen by the environment exactly as Brenia
itself is: embedded (nothing set: SQLite, in-memory layer, in-process jobs) and
scale-out (DATABASE_URL, REDIS_URL, BRENIA_JOBS=procrastinate).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from generation.emulators.server import EmulatorThread

ROOT = Path(__file__).resolve().parent.parent
FAL_TEST_KEY = "test-key:test-secret"
GEMINI_TEST_KEY = "test-gemini-key"
SCALEOUT = settings.BRENIA_JOBS == "procrastinate"


@pytest.fixture(scope="session")
def django_db_modify_db_settings() -> None:
    """A test database of this session's own, so concurrent runs never share one."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db["TEST"]["NAME"] = str(settings.DATA_DIR / f"test-{os.getpid()}.sqlite3")
    else:
        db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{os.getpid()}"


@pytest.fixture(scope="session", autouse=True)
def _thread_connections_closed(django_db_setup: None) -> Iterator[None]:
    """Async tests and in-process jobs query through asgiref's shared sync thread,
    which keeps its connection open; the test database can only be dropped (instead
    of being left behind) once that is closed."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


@pytest.fixture(autouse=True)
def _breakers_of_this_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with every circuit breaker closed: the failures one test
    injects must not open an endpoint's breaker for the next (they share the cache)."""
    import uuid

    monkeypatch.setattr("generation.routing.breaker.KEY_PREFIX",
                        f"routing:breaker:test-{uuid.uuid4().hex}:")


@dataclass
class Persona:
    user: Any
    key: str
    password: str

    def api(self) -> ApiClient:
        return ApiClient(self.key)


class ApiClient(Client):
    """Django's test client that sends a bearer key and JSON bodies."""

    def __init__(self, key: str = "") -> None:
        super().__init__()
        self.key = key

    def _headers(self, extra: dict[str, str]) -> dict[str, str]:
        headers = dict(extra)
        if self.key:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        return headers

    def get_json(self, path: str, **extra: Any) -> Any:
        return self.get(path, headers=self._headers(extra.pop("headers", {})), **extra)

    def post_json(self, path: str, body: Any = None, *, raw: str | None = None,
                  headers: dict[str, str] | None = None, **extra: Any) -> Any:
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.post(path, data=data, content_type="application/json",
                         headers=self._headers(headers or {}), **extra)


def make_persona(username: str, *, staff: bool = False) -> Persona:
    from django.contrib.auth import get_user_model

    from brenia.accounts.models import SCOPES
    from brenia.accounts.services import api_key_create

    password = f"{username}-password-123"
    user = get_user_model().objects.create_user(username=username, password=password,
                                                is_staff=staff, is_superuser=staff)
    # Every scope: a persona's key can do whatever its user can (scopes are tested
    # with keys made for that, in tests/brenia/test_api_keys.py).
    _, key = api_key_create(user=user, scopes=SCOPES)
    return Persona(user=user, key=key, password=password)


@pytest.fixture
def seeded(db: Any) -> None:
    from generation.registry.services import registry_seed

    registry_seed()


@pytest.fixture
def owner(db: Any, seeded: None) -> Persona:
    return make_persona("owner")


@pytest.fixture
def outsider(db: Any, seeded: None) -> Persona:
    return make_persona("outsider")


# --- emulators ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fal_emulator() -> Iterator[EmulatorThread]:
    from generation.emulators.fal import FalEmulatorConfig, create_app

    server = EmulatorThread(lambda: create_app(FalEmulatorConfig(latency="fast")))
    url = server.start()
    settings.FAL_KEY = FAL_TEST_KEY
    settings.FAL_QUEUE_URL = url
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gemini_emulator() -> Iterator[EmulatorThread]:
    from generation.emulators.gemini import GeminiEmulatorConfig, create_app

    server = EmulatorThread(lambda: create_app(GeminiEmulatorConfig(latency="fast")))
    url = server.start()
    settings.GEMINI_API_KEY = GEMINI_TEST_KEY
    settings.GEMINI_BASE_URL = url
    yield server
    server.stop()


# --- S3 -------------------------------------------------------------------------------------

# What boto3 needs to talk to moto; moto accepts any credentials.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                  "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's server mode: a real S3 HTTP API on a loopback port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/moto-api/", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- live processes -------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _database_env() -> dict[str, str]:
    """Point a child process at the database the test session created."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return {"SQLITE_PATH": str(db["NAME"])}
    user = db.get("USER") or ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    return {"DATABASE_URL": f"postgres://{user}@{host}:{port}/{db['NAME']}"}


@dataclass
class LiveBrenia:
    url: str
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def worker(self) -> subprocess.Popen[bytes] | None:
        return self.processes[1] if len(self.processes) > 1 else None


def child_env(fal: EmulatorThread, tmp: Path,
              gemini: EmulatorThread | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(_database_env())
    env.update({
        "FAL_KEY": FAL_TEST_KEY,
        "FAL_QUEUE_URL": fal.base_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "BRENIA_POLL_INTERVAL": "0.1",
        "PYTHONUNBUFFERED": "1",
    })
    if gemini is not None:
        env.update({"GEMINI_API_KEY": GEMINI_TEST_KEY, "GEMINI_BASE_URL": gemini.base_url})
    return env


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def start_daphne(env: dict[str, str], log: Path, *,
                 quiet: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """daphne on a free port; ``quiet`` runs it as the Procfile does (``-v 0``), so its
    plain-text access lines stay off the log and Brenia's own request lines remain."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", *(["-v", "0"] if quiet else []),
         "-b", "127.0.0.1", "-p", str(port), "brenia.asgi:application"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", proc)
    return proc, url


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--concurrency", "50"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.fixture
def live_fal(fal_emulator: EmulatorThread) -> EmulatorThread:
    """The fal emulator live processes talk to; a test module may override it."""
    return fal_emulator


@contextmanager
def brenia_processes(env: dict[str, str], tmp_path: Path, *,
                     quiet: bool = False) -> Iterator[LiveBrenia]:
    """daphne (and a worker in scale-out) with ``env``; stopped, and waited for, at the
    end, when any traceback they logged is shown."""
    logs = [tmp_path / "daphne.log"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        daphne, url = start_daphne(env, logs[0], quiet=quiet)
        processes.append(daphne)
        if SCALEOUT:
            logs.append(tmp_path / "worker.log")
            processes.append(start_worker(env, logs[1]))
        yield LiveBrenia(url=url, processes=processes, logs=logs)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for log in logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Traceback" in text:
                sys.stderr.write(f"--- {log.name}\n{text[-4000:]}\n")


@pytest.fixture
def live_brenia(transactional_db: Any, seeded: None, live_fal: EmulatorThread,
                gemini_emulator: EmulatorThread, tmp_path: Path) -> Iterator[LiveBrenia]:
    """daphne serving Brenia in its own process (plus a worker in the scale-out profile)."""
    with brenia_processes(child_env(live_fal, tmp_path, gemini_emulator), tmp_path) as live:
        yield live


# --- background work ------------------------------------------------------------------------

async def run_background_work() -> None:
    """Run what was submitted to the background runner, until nothing is left.

    Embedded: wait for the in-process runner's loop to go idle. Scale-out: run a
    procrastinate worker in this process over the job queue until it is empty.
    """
    import asyncio

    if SCALEOUT:
        from procrastinate.contrib.django import app

        # As `manage.py worker` does: the Django connector can defer but not run tasks.
        worker_app = app.with_connector(app.connector.get_worker_connector())
        async with worker_app.open_async():
            await worker_app.run_worker_async(queues=["jobs"], wait=False,
                                              install_signal_handlers=False,
                                              listen_notify=False)
        return
    from brenia.background import runner

    loop = runner._ensure_loop()
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(runner.drain(), loop))
