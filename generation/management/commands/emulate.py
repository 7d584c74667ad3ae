"""Serve the built-in fal and Gemini emulators on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.emulators.server import serve_forever


class Command(BaseCommand):
    help = ("Serve the fal queue and Gemini API emulators (what `make run` starts when "
            "FAL_KEY / GEMINI_API_KEY are unset). Prints one JSON line with their URLs.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--fal-port", type=int, default=8765, help="0 picks a free port")
        parser.add_argument("--gemini-port", type=int, default=8766, help="0 picks a free port")
        parser.add_argument("--only", choices=("fal", "gemini"), help="Serve just one of them")
        parser.add_argument("--latency", choices=("instant", "fast", "realistic"),
                            default="realistic", help="How long queued work takes")
        parser.add_argument("--faults", default="",
                            help="Fault profile: a JSON object or @path/to/file.json")

    def handle(self, *args: Any, **options: Any) -> None:
        faults = self._faults(options["faults"])
        host = options["host"]
        names: list[str] = []

        def build() -> list[tuple[Any, str, int]]:
            sites = []
            if options["only"] in (None, "fal"):
                from generation.emulators.fal import FalEmulatorConfig
                from generation.emulators.fal import create_app as create_fal

                names.append("fal")
                sites.append((create_fal(FalEmulatorConfig(
                    latency=options["latency"], faults=faults.get("fal"))),
                    host, options["fal_port"]))
            if options["only"] in (None, "gemini"):
                from generation.emulators.gemini import GeminiEmulatorConfig
                from generation.emulators.gemini import create_app as create_gemini

                names.append("gemini")
                sites.append((create_gemini(GeminiEmulatorConfig(
                    latency=options["latency"], faults=faults.get("gemini"))),
                    host, options["gemini_port"]))
            return sites

        def ready(ports: list[int]) -> None:
            urls = {name: f"http://{host}:{port}" for name, port in zip(names, ports, strict=True)}
            sys.stdout.write(json.dumps({"emulators": urls}) + "\n")
            sys.stdout.flush()

        async def main() -> None:
            # SIGTERM (what `make run` sends) and SIGINT both end the serving task, so
            # the emulators close their sockets and background work before exiting.
            serving = asyncio.current_task()
            assert serving is not None
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, serving.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await serve_forever(build(), ready)

        asyncio.run(main())

    def _faults(self, raw: str) -> dict[str, Any]:
        if not raw:
            return {}
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--faults is not valid JSON: {exc}") from exc
        if not isinstance(value, dict) or not set(value) <= {"fal", "gemini"}:
            raise CommandError('--faults must be an object like {"fal": {...}, "gemini": {...}}')
        return value
