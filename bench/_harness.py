"""Shared plumbing for the benches: throw-away databases, child processes, /proc readings.

Not a benchmark itself. ``python bench/_harness.py fal-emulator '<json config>'`` serves
the built-in fal emulator in its own process (so it does not share a GIL with what is
measured) and prints one JSON line ``{"url": ...}`` once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --- processes --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile(limit: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(limit, hard) if hard != resource.RLIM_INFINITY else limit
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_mb(pid: int) -> float:
    """Resident set size from /proc (psutil is not installed)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_KB / 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine: utilisation between two readings."""
    with open("/proc/stat") as fh:
        parts = [int(v) for v in fh.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return float(sum(parts) - idle), float(sum(parts))


class Cpu:
    """CPU share (percent of one core) of a process between ``mark()`` and ``read()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mark()

    def mark(self) -> None:
        self.t0, self.c0 = time.monotonic(), cpu_seconds(self.pid)

    def read(self) -> float:
        dt = time.monotonic() - self.t0
        return 100 * (cpu_seconds(self.pid) - self.c0) / dt if dt > 0 else 0.0


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 30) -> None:
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


def start_fal_emulator(config: dict[str, Any], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The fal emulator in a process of its own; returns (process, base URL)."""
    proc = subprocess.Popen([PY, str(Path(__file__)), "fal-emulator", json.dumps(config)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("ab"))
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line:
        proc.wait(timeout=5)
        raise RuntimeError(f"emulator did not start; see {log}: {log.read_text()[-2000:]}")
    return proc, json.loads(line)["url"]


# --- databases and environments ----------------------------------------------------------------

class TempDatabase:
    """A PostgreSQL database of this run's own, dropped (even if still in use) on close."""

    def __init__(self, name: str) -> None:
        import psycopg

        self.name = name
        self.url = f"postgres://postgres@127.0.0.1:5432/{name}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def sessions(self) -> int:
        """Connections ever opened to this database (PostgreSQL 14+)."""
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s",
                               (self.name,)).fetchone()
        return int(row[0]) if row else 0

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def redis_cleanup(prefix: str) -> int:
    """Delete the keys a run left under its channel-layer prefix (failed group_discards)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
        return len(keys)
    finally:
        client.close()


def brenia_env(*, tmp: Path, fal_url: str = "http://127.0.0.1:9", database_url: str = "",
               redis_prefix: str = "", jobs: str = "", poll: float = 0.5,
               extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a Brenia child process. Empty database_url: SQLite in ``tmp``."""
    drop = ("DATABASE_URL", "REDIS_URL", "BRENIA_JOBS", "BRENIA_REDIS_PREFIX", "SQLITE_PATH",
            "FAL_KEY", "FAL_QUEUE_URL", "GEMINI_API_KEY", "GEMINI_BASE_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env.update({
        "BRENIA_DATA_DIR": str(tmp),
        "MEDIA_ROOT": str(tmp / "media"),
        "FAL_KEY": "bench:bench",
        "FAL_QUEUE_URL": fal_url,
        "BRENIA_POLL_INTERVAL": str(poll),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "brenia.settings",
        # As deployed: DEBUG would also record every SQL query of the measured process.
        "DEBUG": "0",
    })
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_prefix:
        env["REDIS_URL"] = REDIS_URL
        env["BRENIA_REDIS_PREFIX"] = redis_prefix
    if jobs:
        env["BRENIA_JOBS"] = jobs
    env.update(extra or {})
    return env


def manage(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def run_child(script: Path, args: list[str], env: dict[str, str], timeout: float = 120) -> Any:
    """Run ``script`` (a bench's child mode) and return the JSON of its last output line.

    ``BENCH_CHILD_WRAP`` prefixes the command, e.g. ``py-spy record -o prof.txt --format
    raw --`` to profile the measured process itself.
    """
    wrap = shlex.split(os.environ.get("BENCH_CHILD_WRAP", ""))
    done = subprocess.run([*wrap, PY, str(script), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    for line in reversed(done.stdout.strip().splitlines()):  # a wrapper may print after it
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{script.name} printed no result:\n{done.stdout[-3000:]}")


PATCHES = ("shared-http", "db-pool", "persistent-db", "pubsub-layer", "fal-limit",
           "apikey-throttle")


def django_setup() -> None:
    """Configure Django in this (child) process from its environment.

    ``BENCH_PATCHES`` (comma-separated, see ``apply_patches``) applies what-if fixes
    in this process only, to measure their effect; Brenia's files are not touched.
    """
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brenia.settings")
    patches = [p for p in os.environ.get("BENCH_PATCHES", "").split(",") if p]
    from django.conf import settings

    postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
    if "db-pool" in patches and postgres:  # Django 5.1+ psycopg pool: close() returns it
        settings.DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": 8}
    if "persistent-db" in patches:  # CONN_MAX_AGE=None: database_sync_to_async keeps it
        # Django refuses persistent connections beside a pool, and Brenia pools on
        # PostgreSQL already: the what-if is the pool's absence, so it goes.
        settings.DATABASES["default"].get("OPTIONS", {}).pop("pool", None)
        settings.DATABASES["default"]["CONN_MAX_AGE"] = None
    if "pubsub-layer" in patches:  # one PUBLISH per group_send, fanned out in-process
        layer = settings.CHANNEL_LAYERS["default"]
        layer["BACKEND"] = "channels_redis.pubsub.RedisPubSubChannelLayer"
    import django

    django.setup()
    if "shared-http" in patches:
        _patch_shared_download_client()
    if "fal-limit" in patches:
        _patch_fal_request_limit(50)
    if "apikey-throttle" in patches:
        _patch_apikey_touch(60.0)
    unknown = set(patches) - set(PATCHES)
    if unknown:
        raise SystemExit(f"unknown BENCH_PATCHES {sorted(unknown)}; known: {PATCHES}")


def _patch_fal_request_limit(limit: int) -> None:
    """At most ``limit`` fal requests in flight per loop, below httpx's 100-connection pool.

    Past the pool size httpcore queues requests and rescans the whole queue against every
    connection on each assignment; a semaphore keeps that queue empty.
    """
    from generation.providers import fal_transport

    inner = fal_transport.RewritingTransport.handle_async_request
    gates: dict[Any, asyncio.Semaphore] = {}

    async def limited(self: Any, request: Any) -> Any:
        loop = asyncio.get_running_loop()
        gate = gates.get(loop) or gates.setdefault(loop, asyncio.Semaphore(limit))
        async with gate:
            response = await inner(self, request)
            await response.aread()  # the connection goes back to the pool inside the gate
            return response

    fal_transport.RewritingTransport.handle_async_request = limited  # type: ignore[method-assign]


def _patch_apikey_touch(every_s: float) -> None:
    """user_for_api_key writes last_used_at on every request/socket; only when it is stale."""
    from datetime import timedelta

    from django.db.models import Q
    from django.utils import timezone

    from brenia import auth
    from brenia.accounts.models import ApiKey, hash_api_key
    from generation.realtime import consumers

    def user_for_api_key(raw: str) -> Any:
        if not raw or len(raw) > 200:
            return None
        key = (ApiKey.objects.select_related("user")
               .filter(key_hash=hash_api_key(raw), revoked_at__isnull=True).first())
        if key is None or not key.user.is_active:
            return None
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > timedelta(seconds=every_s):
            ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(
                last_used_at__lt=now - timedelta(seconds=every_s)), pk=key.pk).update(
                last_used_at=now)
        return key.user

    auth.user_for_api_key = user_for_api_key  # type: ignore[assignment]
    consumers.user_for_api_key = user_for_api_key  # type: ignore[attr-defined]


def _patch_shared_download_client() -> None:
    """runner._finalize builds an httpx.AsyncClient per job; give it one per loop instead."""
    import types
    import weakref

    import httpx

    from generation.jobs import runner

    clients: weakref.WeakKeyDictionary[Any, httpx.AsyncClient] = weakref.WeakKeyDictionary()

    class _Shared:
        def __init__(self, **kwargs: Any) -> None:
            loop = asyncio.get_running_loop()
            if loop not in clients:
                clients[loop] = httpx.AsyncClient(**kwargs)
            self.client = clients[loop]

        async def __aenter__(self) -> httpx.AsyncClient:
            return self.client

        async def __aexit__(self, *exc: Any) -> None:
            return None

    runner.httpx = types.SimpleNamespace(**{**vars(httpx), "AsyncClient": _Shared})  # type: ignore[attr-defined]


def bench_user(username: str = "bench") -> tuple[Any, str]:
    """A user with a fresh API key; seeds the model registry first."""
    from django.contrib.auth import get_user_model

    from brenia.accounts.services import api_key_create
    from generation.registry.services import registry_seed

    registry_seed()
    user, _ = get_user_model().objects.get_or_create(username=username)
    _, key = api_key_create(user=user)
    return user, key


def keep_log(log: Path) -> None:
    """Copy a child's log to $BENCH_KEEP_LOGS (if set) before its temp dir goes away."""
    keep = os.environ.get("BENCH_KEEP_LOGS")
    if keep and log.exists():
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / f"{log.stem}-{os.getpid()}-{int(time.time())}.log").write_bytes(
            log.read_bytes())


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


# --- the emulator child ---------------------------------------------------------------------

def _serve_fal(config: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT))
    from generation.emulators.fal import FalEmulatorConfig, create_app
    from generation.emulators.server import serve_forever

    raise_nofile()
    app = create_app(FalEmulatorConfig(**config))

    def ready(ports: list[int]) -> None:
        sys.stdout.write(json.dumps({"url": f"http://127.0.0.1:{ports[0]}"}) + "\n")
        sys.stdout.flush()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve_forever([(app, "127.0.0.1", 0)], ready)

    asyncio.run(main())


def _manage(argv: list[str]) -> None:
    """``manage.py`` with BENCH_PATCHES applied first (for patched workers/servers)."""
    django_setup()
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *argv])


def _daphne(argv: list[str]) -> None:
    """daphne's command line with BENCH_PATCHES applied first."""
    django_setup()
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(argv)


def daphne_command(argv: list[str], env: dict[str, str]) -> list[str]:
    if env.get("BENCH_PATCHES"):
        return [PY, str(Path(__file__)), "daphne", *argv]
    return [PY, "-m", "daphne", *argv]


def manage_command(argv: list[str], env: dict[str, str]) -> list[str]:
    """The command line of ``manage.py argv``, through the patching launcher if needed."""
    if env.get("BENCH_PATCHES"):
        return [PY, str(Path(__file__)), "manage", *argv]
    return [PY, "manage.py", *argv]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fal-emulator":
        _serve_fal(json.loads(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "manage":
        _manage(sys.argv[2:])
    elif len(sys.argv) > 2 and sys.argv[1] == "daphne":
        _daphne(sys.argv[2:])
    else:
        sys.exit(__doc__)
