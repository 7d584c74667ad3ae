"""Run a procrastinate worker for Brenia's background work (scale-out profile)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from brenia import background, metrics
from brenia.process import open_files_raise


class Command(BaseCommand):
    help = ("Run background work from PostgreSQL: jobs and recovery in one pool, webhook "
            "deliveries in another, many at once on one event loop. SIGTERM stops taking "
            "new work and lets running work finish; work left by a dead worker is picked "
            "up again by the periodic recovery. A database outage is waited out: the "
            "worker and the jobs it follows carry on once it answers again.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int,
                            default=settings.BRENIA_WORKER_CONCURRENCY,
                            help="jobs run at once (they mostly wait on remote queues)")
        parser.add_argument("--webhook-concurrency", type=int,
                            default=settings.BRENIA_WEBHOOK_CONCURRENCY,
                            help="webhook deliveries sent at once")
        parser.add_argument("--name", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.BRENIA_JOBS != "procrastinate":
            raise CommandError("Workers run in the scale-out profile: set DATABASE_URL and "
                               "BRENIA_JOBS=procrastinate (and REDIS_URL for live updates).")
        from procrastinate.contrib.django import app

        from brenia.worker import SteadyWorker as Worker
        from brenia.worker import heal_shared_connection

        limit = open_files_raise()  # one open status stream per job followed
        if limit < options["concurrency"] * 2 + 100:
            self.stderr.write(f"warning: {limit} open files allowed, fewer than "
                              f"{options['concurrency']} jobs at once may need; raise the "
                              "hard limit (ulimit -Hn)")

        # The Django connector cannot LISTEN; workers get a psycopg connector to the
        # same database, so new work wakes them at once instead of at the next poll.
        worker_app = app.with_connector(app.connector.get_worker_connector())  # type: ignore[attr-defined]
        stalled_after = settings.BRENIA_STALLED_WORKER_TIMEOUT
        common: dict[str, Any] = {
            "app": worker_app, "install_signal_handlers": False,
            "shutdown_graceful_timeout": settings.BRENIA_SHUTDOWN_GRACE,
            "update_heartbeat_interval": max(1.0, stalled_after / 4),
            "stalled_worker_timeout": stalled_after, "fetch_job_polling_interval": 1.0,
            "worker_middleware": [heal_shared_connection],
        }
        name = options["name"]
        # Two pools: a burst of webhook deliveries never takes a job's slot.
        workers = [
            Worker(queues=[background.JOBS, background.MAINTENANCE],
                   concurrency=options["concurrency"], name=name and f"{name}-jobs", **common),
            Worker(queues=[background.WEBHOOKS], concurrency=options["webhook_concurrency"],
                   name=name and f"{name}-webhooks", **common),
        ]

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, lambda: [w.stop() for w in workers])
            async with worker_app.open_async():
                await asyncio.gather(*(w.run() for w in workers))

        metrics.forget_dead_processes()
        try:
            asyncio.run(main())
        finally:
            # Its jobs in flight are no one's now; its counters keep counting.
            metrics.process_exited(os.getpid())
