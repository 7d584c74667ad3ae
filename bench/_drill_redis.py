"""The redis drill: live updates through a Redis restart (see ``bench/drills.py``'s
docstring). A ``Follower`` is the WebSocket client that must catch up."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _drill_checks import (
    print_tracebacks,
    report_stuck,
    verdict,
    wait_terminal,
)
from _drill_stack import (
    TERMINAL,
    PrivateRedis,
    Stack,
    Submitter,
    log,
    stack_of,
    supervised,
)
from _harness import (
    keep_log,
)


class Follower:
    """A WebSocket client on the user's stream that reconnects and catches up."""

    def __init__(self, base: str, key: str, t0: float) -> None:
        self.base = base
        self.key = key
        self.t0 = t0
        self.seen: dict[str, int] = {}  # job id -> last seq seen
        self.state: dict[str, str] = {}  # job id -> last status seen
        self.live: list[tuple[float, dict[str, Any]]] = []
        self.caught_up: list[tuple[float, dict[str, Any]]] = []
        self.snapshots = 0
        self.connects = 0
        self.disconnects: list[str] = []
        self.connect_errors: Counter[str] = Counter()
        self.gaps = 0
        self.ws: Any = None
        self.sending: set[asyncio.Future[None]] = set()
        self.stop = asyncio.Event()

    def track(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self.seen.setdefault(job_id, 0)

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        while not self.stop.is_set():
            try:
                async with connect(f"{self.base}/ws/jobs/",
                                   origin=self.base.replace("ws://", "http://"),  # type: ignore[arg-type]
                                   additional_headers={"Authorization": f"Bearer {self.key}"},
                                   open_timeout=5, ping_interval=2, ping_timeout=5,
                                   max_queue=None) as ws:
                    self.ws = ws
                    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if first.get("type") != "snapshot":
                        raise RuntimeError(f"first message {first}")
                    self.connects += 1
                    for state in first.get("jobs", []):
                        self._snapshot(state["id"], state)
                    # Resume every known job from the last event this client saw.
                    catching = set(self.seen)
                    for job_id in list(self.seen):
                        await ws.send(json.dumps({"action": "subscribe", "job": job_id,
                                                  "after": self.seen[job_id]}))
                    async for raw in ws:
                        self._receive(json.loads(raw), catching)
                    self.disconnects.append(f"closed {ws.close_code} at "
                                            f"{time.monotonic() - self.t0:.1f}s")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                name = f"{exc.__class__.__name__}: {str(exc)[:80]}"
                if self.ws is not None:
                    self.disconnects.append(f"{name} at {time.monotonic() - self.t0:.1f}s")
                else:
                    self.connect_errors[name] += 1
            self.ws = None
            if not self.stop.is_set():
                await asyncio.sleep(0.5)

    def _send(self, message: dict[str, Any]) -> None:
        if self.ws is not None:
            task = asyncio.ensure_future(self.ws.send(json.dumps(message)))
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)

    def _snapshot(self, job_id: str, state: dict[str, Any]) -> None:
        self.snapshots += 1
        if job_id in self.seen and state["last_event_seq"] >= self.seen[job_id]:
            self.seen[job_id] = state["last_event_seq"]
            self.state[job_id] = state["status"]

    def _receive(self, message: dict[str, Any], catching: set[str]) -> None:
        kind = message.get("type")
        job_id = message.get("job_id", "")
        if kind == "snapshot" and job_id:
            catching.discard(job_id)
            self._snapshot(job_id, message["job"])
            return
        if kind in ("snapshot", "pong", "error") or not job_id or job_id not in self.seen:
            return
        seq = int(message.get("seq", 0))
        if seq <= self.seen[job_id]:
            return
        if seq != self.seen[job_id] + 1 and job_id not in catching:
            # Events were lost (sequence numbers are gap-free): catch up from the last
            # one seen; the replay brings this one too, then a snapshot.
            self.gaps += 1
            catching.add(job_id)
            self._send({"action": "subscribe", "job": job_id, "after": self.seen[job_id]})
            return
        self.seen[job_id] = seq
        if message.get("status"):
            self.state[job_id] = str(message["status"])
        elif kind in ("completed", "failed", "cancelled"):
            self.state[job_id] = kind
        (self.caught_up if job_id in catching else self.live).append(
            (time.monotonic() - self.t0, message))


def drill_redis(args: argparse.Namespace) -> bool:
    began = time.monotonic()
    jobs = args.jobs or 40
    print(f"\n== drill redis: {jobs} jobs followed over /ws/jobs/; a private redis-server is "
          f"SIGKILLed mid-run and a fresh one started ==")
    failures: list[str] = []
    logdir = Path(tempfile.mkdtemp(prefix="brenia-drill-redis-"))
    redis = PrivateRedis(logdir / "redis.log")
    try:
        redis.start()
        emulator = {"latency": "fast", "runners": jobs + 10, "inference_s": 8.0,
                    "dispatch_s": 0.3}
        extra = {"BRENIA_JOB_TIMEOUT": "120"}
        if args.channel_layer:
            extra["BRENIA_CHANNEL_LAYER"] = args.channel_layer
        with stack_of("redis", emulator=emulator, extra=extra, redis_url=redis.url) as stack:
            stack.start_daphne()
            stack.start_worker()
            deadline = time.monotonic() + args.deadline
            result = asyncio.run(supervised(stack, redis_phase(stack, redis, jobs, deadline)))
            print("-- redis: figures --")
            for line in result["lines"]:
                print(line)
            if stack.exits:
                print(f"unexpected exits           : {stack.exits}")
            print_tracebacks(stack)
            if result["stuck"]:
                report_stuck(stack, result["ids"])
            failures.extend(result["failures"])
            if stack.exits:
                failures.append(f"{len(stack.exits)} unexpected process exit(s)")
    finally:
        redis.stop()
        keep_log(redis.log_path)
        with contextlib.suppress(OSError):
            (logdir / "redis.log").unlink()
            logdir.rmdir()
    return verdict("redis", failures, began)


async def redis_phase(stack: Stack, redis: PrivateRedis, jobs: int,
                      deadline: float) -> dict[str, Any]:
    import httpx

    follower = Follower(stack.base.replace("http://", "ws://"), stack.key, stack.t0)
    reader = asyncio.create_task(follower.run())
    while follower.connects == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    sub = Submitter(stack, uuid.uuid4().hex[:8])
    # Jobs are POSTed over ~10 s, so some start before, some during, some after the outage.
    rate = jobs / 10.0
    posting = asyncio.create_task(sub.submit_all(jobs, rate, deadline))

    async def track() -> None:
        while not posting.done():
            follower.track(list(sub.ids.values()))
            await asyncio.sleep(0.2)
        follower.track(list(sub.ids.values()))

    tracking = asyncio.create_task(track())
    wait_until = time.monotonic() + 10.0  # some live events first, as a baseline
    while len(follower.live) < 10 and time.monotonic() < wait_until:
        await asyncio.sleep(0.1)
    before = len(follower.live)
    redis.kill()
    down_at = time.monotonic() - stack.t0
    log(stack.t0, f"redis-server SIGKILLed ({before} live events so far, {len(sub.ids)} jobs "
                  f"POSTed)")
    await asyncio.sleep(3.0)
    await asyncio.to_thread(redis.start)
    up_at = time.monotonic() - stack.t0
    log(stack.t0, f"fresh redis-server up on port {redis.port} (outage {up_at - down_at:.1f}s)")
    await posting
    await tracking
    ids = list(sub.ids.values())
    stuck = not await asyncio.to_thread(wait_terminal, stack, ids, deadline)
    # Let the socket deliver the last events (and a reconnect catch up) for a moment.
    settle_by = min(deadline + 15, time.monotonic() + 15)
    async with httpx.AsyncClient(base_url=stack.base, timeout=15.0, headers={
            "Authorization": f"Bearer {stack.key}"}) as http:
        finals: dict[str, dict[str, Any]] = {}
        while True:
            for job_id in ids:
                with contextlib.suppress(Exception):
                    reply = await http.get(f"/api/jobs/{job_id}")
                    if reply.status_code == 200:
                        finals[job_id] = reply.json()
            matching = [j for j in ids if j in finals
                        and follower.state.get(j) == finals[j]["status"]
                        and follower.seen.get(j) == finals[j]["last_event_seq"]]
            if len(matching) == len(ids) or time.monotonic() > settle_by:
                break
            await asyncio.sleep(1.0)
    follower.stop.set()
    reader.cancel()
    with contextlib.suppress(BaseException):
        await reader
    live_after = [e for t, e in follower.live if t > up_at]
    types_after = Counter(e.get("type") for e in live_after)
    statuses = Counter(f["status"] for f in finals.values())
    codes = Counter(f["error"]["code"] for f in finals.values() if f.get("error"))
    mismatched = [j for j in ids if j not in matching]
    lines = [
        f"outage                     : redis down at {down_at:.1f}s, fresh one up at "
        f"{up_at:.1f}s",
        f"jobs terminal / total      : {sum(statuses[s] for s in TERMINAL)}/{jobs} "
        f"{dict(statuses)}; error codes {dict(codes)}",
        f"POST replies               : {dict(sub.replies)} ({sub.retried} retries)",
        f"socket connects            : {follower.connects} (disconnects: "
        f"{follower.disconnects[:6]}; failed connects: {dict(follower.connect_errors)})",
        f"live events                : {len(follower.live)} in all, {len(live_after)} after "
        f"the restart {dict(types_after)}",
        f"caught up on reconnect     : {len(follower.caught_up)} missed events replayed, "
        f"{follower.snapshots} snapshots; seq gaps seen live {follower.gaps} (each "
        "answered by a re-subscribe with after=<last seen seq>)",
        f"socket's last state == API : {len(matching)}/{len(ids)} jobs (status and "
        f"last_event_seq)",
    ]
    for job_id in mismatched[:8]:
        final = finals.get(job_id, {})
        lines.append(f"    {job_id}: socket saw {follower.state.get(job_id)}#"
                     f"{follower.seen.get(job_id)}, API says {final.get('status')}#"
                     f"{final.get('last_event_seq')}")
    failures = []
    if stuck:
        failures.append("jobs not terminal by the deadline")
    if len(ids) < jobs:
        failures.append(f"{jobs - len(ids)} POST(s) never accepted")
    if not live_after:
        failures.append("no live update after the Redis restart")
    if mismatched:
        failures.append(f"{len(mismatched)} job(s) whose last state on the socket differs "
                        "from the API's")
    not_completed = jobs - statuses["completed"]
    if not_completed:
        failures.append(f"{not_completed} job(s) did not complete "
                        f"(codes {dict(codes)}): the Redis outage failed them")
    return {"lines": lines, "failures": failures, "ids": ids, "stuck": stuck}
