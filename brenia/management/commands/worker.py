"""Run a procrastinate worker for Brenia's jobs (scale-out profile)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = ("Run jobs from PostgreSQL. Many jobs run at once on one event loop; SIGTERM "
            "stops taking new ones and lets running ones finish; work left by a dead "
            "worker is picked up again.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int,
                            default=settings.BRENIA_WORKER_CONCURRENCY)
        parser.add_argument("--name", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.BRENIA_JOBS != "procrastinate":
            raise CommandError("Workers run in the scale-out profile: set DATABASE_URL and "
                               "BRENIA_JOBS=procrastinate (and REDIS_URL for live updates).")
        from procrastinate.contrib.django import app

        # The Django connector cannot LISTEN; workers get a psycopg connector to the
        # same database, so new jobs wake them at once instead of at the next poll.
        worker_app = app.with_connector(app.connector.get_worker_connector())  # type: ignore[attr-defined]
        stalled_after = settings.BRENIA_STALLED_WORKER_TIMEOUT

        async def recover_forever() -> None:
            from generation.tasks import recover

            while True:
                try:
                    await recover(worker_app, stalled_after=stalled_after)
                except Exception:
                    logger.exception("recovery pass failed")
                await asyncio.sleep(settings.BRENIA_RECOVERY_INTERVAL)

        async def main() -> None:
            async with worker_app.open_async():
                recovery = asyncio.create_task(recover_forever())
                try:
                    await worker_app.run_worker_async(
                        queues=["jobs"], concurrency=options["concurrency"],
                        name=options["name"], install_signal_handlers=True,
                        shutdown_graceful_timeout=settings.BRENIA_SHUTDOWN_GRACE,
                        update_heartbeat_interval=max(1.0, stalled_after / 4),
                        stalled_worker_timeout=stalled_after, fetch_job_polling_interval=1.0)
                finally:
                    recovery.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await recovery

        asyncio.run(main())
