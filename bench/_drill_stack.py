"""The fault drills' shared parts: a throw-away scale-out stack (``Stack``), a private
redis-server, the job submitter, and the checks every drill makes of a finished run.

Used by ``bench/drills.py``, whose docstring says what each drill does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import (
    ROOT,
    TempDatabase,
    brenia_env,
    daphne_command,
    free_port,
    keep_log,
    manage,
    manage_command,
    redis_cleanup,
    run_child,
    start_fal_emulator,
    stop_process,
    wait_http,
)

# The drills script, which each stack runs for its child setup (``child-setup``).
THIS = Path(__file__).resolve().parent / "drills.py"
MODEL = "flux-schnell"
TERMINAL = ("completed", "failed", "errored", "cancelled")
ACTIVE = ("queued", "submitted", "in_progress")


class DrillFailed(Exception):
    """A step of the drill itself could not be done (not a finding about Brenia)."""


def log(t0: float, message: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)


# --- the stack: database, emulator, daphne(s), worker(s) ------------------------------------

class Stack:
    """One drill's scale-out deployment; ``close()`` stops and removes all of it."""

    def __init__(self, name: str, *, emulator: dict[str, Any], extra: dict[str, str],
                 redis_url: str = "") -> None:
        self.name = name
        self.t0 = time.monotonic()
        self.tag = f"{os.getpid()}_{name}"
        self.prefix = f"brenia-drill-{os.getpid()}-{name}"
        self.tmpdir = tempfile.TemporaryDirectory(prefix=f"brenia-drill-{name}-")
        self.tmp = Path(self.tmpdir.name)
        self.db: TempDatabase | None = None
        self.emulator: subprocess.Popen[bytes] | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.started: Counter[str] = Counter()
        self.exits: list[str] = []  # processes found dead that the drill did not kill
        self.killed: set[int] = set()
        self.supervising = threading.Lock()
        self.redis_url = redis_url
        self.port = free_port()
        self.key = ""
        self.layer = ""
        self.fal_url = ""
        self.env: dict[str, str] = {}
        self.wall0 = time.time()  # the emulator stamps requests in wall-clock time
        self._emulator_config = emulator
        self._extra = extra

    def open(self) -> None:
        self.emulator, self.fal_url = start_fal_emulator(self._emulator_config,
                                                         self.tmp / "emulator.log")
        self.db = TempDatabase(f"brenia_drill_{self.tag}")
        extra = {
            "BRENIA_SHUTDOWN_GRACE": "0",
            # Short, so a killed worker's tasks come back soon, but not so short that a
            # live worker busy with 200 jobs on a loaded machine misses it by a late
            # heartbeat (3 s did: its own running tasks were retried under it).
            "BRENIA_STALLED_WORKER_TIMEOUT": "10",
            "BRENIA_RECOVERY_INTERVAL": "1",
            "BRENIA_RESULT_CACHE_SECONDS": "0",
            "BRENIA_BUDGET_EMAILS": "0",
            "BRENIA_WORKER_CONCURRENCY": "300",
            "BRENIA_METRICS_DIR": str(self.tmp / "metrics"),
            **self._extra,
        }
        if self.redis_url:
            extra["REDIS_URL"] = self.redis_url
        self.env = brenia_env(tmp=self.tmp, fal_url=self.fal_url, database_url=self.db.url,
                              redis_prefix=self.prefix, jobs="procrastinate", poll=0.5,
                              extra=extra)
        began = time.monotonic()
        manage(["migrate", "--noinput"], self.env, timeout=180)
        setup = run_child(THIS, ["child-setup"], self.env, timeout=60)
        self.key = setup["key"]
        self.layer = setup["layer"]
        log(self.t0, f"stack ready: database {self.db.name}, channel layer {self.layer}, "
                     f"Redis prefix {self.prefix}"
                     f"{' at ' + self.redis_url if self.redis_url else ''}, fal emulator "
                     f"{self.fal_url} {self._emulator_config} "
                     f"(setup {time.monotonic() - began:.1f}s)")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, role: str, argv: list[str]) -> subprocess.Popen[bytes]:
        self.started[role] += 1
        name = f"{role}-{self.started[role]}"
        path = self.tmp / f"{name}.log"
        self.logs[name] = path
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=path.open("ab"),
                                stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_daphne(self, timeout: float = 40) -> subprocess.Popen[bytes]:
        proc = self._spawn("daphne", daphne_command(
            ["-b", "127.0.0.1", "-p", str(self.port), "brenia.asgi:application"], self.env))
        deadline = time.monotonic() + timeout
        while True:  # the port of a killed daphne may take a moment to be free again
            try:
                wait_http(f"{self.base}/healthz", proc,
                          timeout=max(1.0, deadline - time.monotonic()))
                return proc
            except RuntimeError:
                if time.monotonic() > deadline or proc.poll() is None:
                    raise
                proc = self._spawn("daphne", daphne_command(
                    ["-b", "127.0.0.1", "-p", str(self.port), "brenia.asgi:application"],
                    self.env))

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self._spawn("worker", manage_command(["worker"], self.env))

    def current(self, role: str) -> subprocess.Popen[bytes] | None:
        name = f"{role}-{self.started[role]}"
        return self.procs.get(name)

    def kill9(self, role: str) -> int:
        proc = self.current(role)
        if proc is None or proc.poll() is not None:
            raise DrillFailed(f"no live {role} to kill")
        self.killed.add(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return proc.pid

    def supervise(self) -> None:
        """Restart a daphne or worker that exited on its own, as systemd would; note it."""
        with self.supervising:
            self._supervise()

    def _supervise(self) -> None:
        for role in ("daphne", "worker"):
            proc = self.current(role)
            if proc is None or proc.poll() is None or proc.pid in self.killed:
                continue
            self.killed.add(proc.pid)
            self.exits.append(f"{role}-{self.started[role]} (pid {proc.pid}) exited with "
                              f"{proc.returncode} at t={time.monotonic() - self.t0:.1f}s")
            log(self.t0, f"!! {self.exits[-1]}; restarting it")
            if role == "daphne":
                with contextlib.suppress(RuntimeError):
                    self.start_daphne()
            else:
                self.start_worker()

    def query(self, sql: str, *params: Any, tries: int = 5) -> list[tuple[Any, ...]]:
        """The drill's own reads; retried, since the postgres drill cuts connections."""
        assert self.db is not None
        for attempt in range(tries):
            try:
                return self.db.query(sql, *params)
            except Exception:
                if attempt == tries - 1:
                    raise
                time.sleep(0.3)
        raise AssertionError("unreachable")

    def status_counts(self) -> Counter[str]:
        return Counter(dict(self.query("SELECT status, count(*) FROM generation_job "
                                       "WHERE model_id IS NOT NULL GROUP BY status")))

    def log_tracebacks(self) -> dict[str, int]:
        """Distinct final lines of the tracebacks in every child log, with counts."""
        finals: Counter[str] = Counter()
        for path in self.logs.values():
            if not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()
            for index, line in enumerate(lines):
                if line.startswith("Traceback"):
                    for follow in lines[index + 1:]:
                        if follow and not follow.startswith((" ", "Traceback", "During",
                                                             "The above")):
                            finals[f"{path.stem}: {follow[:150]}"] += 1
                            break
        return dict(finals)

    def close(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                if name.startswith("worker"):
                    proc.kill()  # in-flight jobs would otherwise be cancelled one by one
                    proc.wait(timeout=10)
                else:
                    stop_process(proc, timeout=10)
        for path in [*self.logs.values(), self.tmp / "emulator.log"]:
            keep_log(path)
        stop_process(self.emulator)
        notes = []
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.drop()
                notes.append(f"dropped {self.db.name}")
        if not self.redis_url:
            with contextlib.suppress(Exception):
                notes.append(f"deleted {redis_cleanup(self.prefix)} Redis keys under "
                             f"{self.prefix}")
        self.tmpdir.cleanup()
        log(self.t0, "cleanup: stopped every child process; " + "; ".join(notes))


class PrivateRedis:
    """A redis-server of the drill's own, on a free port, without persistence."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DrillFailed(f"redis-server exited: {self.log_path.read_text()[-500:]}")
            done = subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                  capture_output=True, text=True, timeout=5)
            if done.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise DrillFailed(f"redis-server on port {self.port} did not answer in {timeout}s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=5)


async def supervised(stack: Stack, work: Any) -> Any:
    """Await ``work`` while restarting (and noting) any daphne/worker that exits."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.to_thread(stack.supervise)
        await asyncio.wait([task], timeout=0.5)
    return task.result()


# --- the API client ------------------------------------------------------------------------

class Submitter:
    """POSTs jobs with an Idempotency-Key each, retrying a POST a fault cut off."""

    def __init__(self, stack: Stack, tag: str) -> None:
        self.stack = stack
        self.tag = tag
        self.ids: dict[int, str] = {}  # job index -> job id
        self.prompts: dict[int, str] = {}
        self.replies: Counter[str] = Counter()  # "202", "200", "500", "ConnectError" …
        self.retried = 0
        self.gave_up: list[int] = []

    def prompt(self, index: int) -> str:
        return f"drill {self.tag} job #{index:04d}#"

    async def submit_all(self, count: int, rate: float, deadline: float,
                         parallel: int = 10) -> None:
        import httpx

        gate = asyncio.Semaphore(parallel)
        began = time.monotonic()
        async with httpx.AsyncClient(base_url=self.stack.base, timeout=15.0, headers={
                "Authorization": f"Bearer {self.stack.key}"}) as http:
            async def one(index: int) -> None:
                delay = began + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with gate:
                    await self._post(http, index, deadline)

            await asyncio.gather(*(one(i) for i in range(count)))

    async def _post(self, http: Any, index: int, deadline: float) -> None:
        prompt = self.prompt(index)
        self.prompts[index] = prompt
        body = {"model": MODEL, "inputs": {"prompt": prompt},
                "options": {"width": 256, "height": 256}}
        headers = {"Idempotency-Key": f"drill-{self.tag}-{index}"}
        first = True
        while time.monotonic() < deadline:
            if not first:
                self.retried += 1
                await asyncio.sleep(0.3)
            first = False
            try:
                response = await http.post("/api/images/generate", json=body, headers=headers)
            except Exception as exc:  # the process behind it died: retry, same key
                self.replies[exc.__class__.__name__] += 1
                continue
            self.replies[str(response.status_code)] += 1
            if response.status_code in (200, 202):
                self.ids[index] = response.json()["id"]
                return
            if response.status_code < 500 and response.status_code not in (408, 429):
                raise DrillFailed(f"POST answered {response.status_code}: "
                                  f"{response.text[:300]}")
        self.gave_up.append(index)


# --- waiting and checking -------------------------------------------------------------------

@contextlib.contextmanager
def stack_of(name: str, **kwargs: Any) -> Iterator[Stack]:
    stack = Stack(name, **kwargs)
    try:
        stack.open()
        yield stack
    finally:
        stack.close()
