"""Start Brenia the way `make run` does: emulators when keys are missing, then daphne.

Everything started here is stopped on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from brenia import metrics

EMULATED_FAL_KEY = "emulator-key:emulator-secret"
EMULATED_GEMINI_KEY = "emulator-gemini-key"


class Command(BaseCommand):
    help = "Serve Brenia with daphne (and the provider emulators when no keys are set)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
        parser.add_argument("--latency", default="realistic",
                            choices=("instant", "fast", "realistic"),
                            help="Emulator latency profile")

    def handle(self, *args: Any, **options: Any) -> None:
        self.children: list[subprocess.Popen[bytes]] = []
        signal.signal(signal.SIGTERM, self._on_sigterm)
        env = os.environ.copy()
        metrics.forget_dead_processes()  # series of an earlier run's processes
        try:
            self._start_emulators(env, options["latency"])
            # Access lines go to a file: the console keeps what a person needs to read.
            access_log = settings.DATA_DIR / "access.log"
            daphne = self._spawn([sys.executable, "-m", "daphne", "-b", options["host"], "-p",
                                  str(options["port"]), "--access-log", str(access_log),
                                  "brenia.asgi:application"], env)
            base = f"http://{options['host']}:{options['port']}"
            self._wait_ready(base, daphne)
            self._banner(base)
            daphne.wait()
            if daphne.returncode:
                raise CommandError(f"daphne exited with {daphne.returncode}")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            self._stop_children()

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def _spawn(self, argv: list[str], env: dict[str, str],
               stdout: int | None = None) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(argv, env=env, stdout=stdout)  # noqa: S603 - our own argv
        self.children.append(child)
        return child

    def _start_emulators(self, env: dict[str, str], latency: str) -> None:
        missing = [name for name in ("fal", "gemini")
                   if not env.get("FAL_KEY" if name == "fal" else "GEMINI_API_KEY")]
        if not missing:
            return
        asked = {n.strip() for n in env.get("BRENIA_EMULATORS", "").split(",") if n.strip()}
        if settings.PRODUCTION and not set(missing) <= asked:
            # An emulator in production answers every call with a fake image, silently.
            keys = " and ".join("FAL_KEY" if n == "fal" else "GEMINI_API_KEY" for n in missing)
            raise CommandError(
                f"BRENIA_ENV=production needs {keys}; to run with the built-in emulators "
                f"instead, name them: BRENIA_EMULATORS={','.join(missing)}")
        argv = [sys.executable, "manage.py", "emulate", "--fal-port", "0", "--gemini-port", "0",
                "--latency", latency]
        if len(missing) == 1:
            argv += ["--only", missing[0]]
        emulator = self._spawn(argv, env, stdout=subprocess.PIPE)
        assert emulator.stdout is not None
        line = emulator.stdout.readline().decode()
        try:
            urls = json.loads(line)["emulators"]
        except (ValueError, KeyError):
            raise CommandError(f"the emulators did not start: {line!r}") from None
        if "fal" in urls:
            env["FAL_KEY"] = EMULATED_FAL_KEY
            env["FAL_QUEUE_URL"] = urls["fal"]
            self.stdout.write(f"FAL_KEY is not set: using the built-in fal emulator at "
                              f"{urls['fal']}")
        if "gemini" in urls:
            env["GEMINI_API_KEY"] = EMULATED_GEMINI_KEY
            env["GEMINI_BASE_URL"] = urls["gemini"]
            self.stdout.write(f"GEMINI_API_KEY is not set: using the built-in Gemini emulator "
                              f"at {urls['gemini']}")

    def _wait_ready(self, base: str, daphne: subprocess.Popen[bytes]) -> None:
        wait_ready(base, daphne)

    def _banner(self, base: str) -> None:
        lines = [
            "",
            f"Brenia is running at {base}/",
            f"  admin      {base}/admin/",
            f"  API docs   {base}/api/docs   (OpenAPI: {base}/api/openapi.json)",
            f"  health     {base}/healthz  {base}/readyz",
        ]
        if settings.BRENIA_METRICS_TOKEN and not os.environ.get("BRENIA_METRICS_TOKEN"):
            lines.append(f"  metrics    {base}/metrics   (bearer token in "
                         f"{settings.DATA_DIR / 'metrics_token'})")
        credentials = settings.DATA_DIR / "demo_credentials.json"
        if credentials.exists():
            # The passwords were printed when the accounts were made; not on every start.
            names = " and ".join(json.loads(credentials.read_text()))
            lines.append(f"  login      {names}: passwords in {credentials}")
        lines.append("  API key    .venv/bin/python manage.py create_api_key marketer")
        lines.append("Press Ctrl-C to stop.")
        self.stdout.write("\n".join(lines))

    def _stop_children(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            metrics.process_exited(child.pid)


def wait_ready(base: str, server: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Wait until ``base``/readyz answers 200; fail if ``server`` exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CommandError("the server stopped during start-up (see above)")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise CommandError(f"Brenia did not become ready at {base}/readyz within {seconds:.0f} s")
