"""WebSocket delivery latency: a job's status change -> receipt by connected clients.

scale-out profile (default): a throw-away PostgreSQL database, Redis as channel layer,
daphne serving Brenia; C clients (``websockets``, ``Authorization: Bearer``) connect.
Another process, like a worker, calls ``generation.jobs.events.anotify_job_event(...,
type="in_progress", payload={..., "sent_at": time.time()})``; each client stamps
``time.time()`` on receipt (same machine, same clock). Two phases:

  per-job   each client follows its own job (``/ws/jobs/?job=<id>``); every job gets an
            event per round, paced at --rate events/s: one delivery per event.
  broadcast all clients follow the same user's stream (``/ws/jobs/``); each event of one
            of that user's jobs reaches all C clients.

The latency includes what a worker pays per event (record_event's transaction, then
two group_sends through Redis), daphne's consumer and the client's own receive loop.

embedded profile (``--profile embedded`` or ``both``): daphne alone (SQLite, in-memory
layer, jobs on daphne's loop) runs real jobs against the fal emulator; C jobs are
created through the API and each client follows one; latency = receipt - the event's
``time`` (stamped when the event row is written, before it is sent).

    .venv/bin/python bench/ws_fanout.py [--clients 500] [--profile scaleout|embedded|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import (
    PY,
    ROOT,
    Cpu,
    TempDatabase,
    bench_user,
    brenia_env,
    daphne_command,
    django_setup,
    free_port,
    keep_log,
    machine_cpu,
    manage,
    percentile,
    raise_nofile,
    redis_cleanup,
    run_child,
    start_fal_emulator,
    stop_process,
    wait_http,
)
from _report import result

THIS = Path(__file__).resolve()
MODEL = "flux-schnell"


# --- clients ------------------------------------------------------------------------------------

class Clients:
    """C WebSocket clients on this process's loop; every received event is timestamped."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key
        self.conns: list[Any] = []
        self.readers: list[asyncio.Task[None]] = []
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.snapshots = 0

    async def connect(self, paths: list[str], parallel: int = 25) -> float:
        from websockets.asyncio.client import connect

        gate = asyncio.Semaphore(parallel)
        origin = self.base.replace("ws://", "http://")
        began = time.monotonic()

        async def one(path: str) -> None:
            async with gate:
                try:
                    ws = await connect(self.base + path, origin=origin,  # type: ignore[arg-type]
                                       additional_headers={"Authorization": f"Bearer {self.key}"},
                                       open_timeout=60, ping_interval=None, max_queue=None,
                                       compression=None)
                    first = json.loads(await asyncio.wait_for(ws.recv(), 60))
                except Exception as exc:  # counted, reported
                    self.errors.append(f"connect: {exc.__class__.__name__}: {exc}")
                    return
                if first.get("type") != "snapshot":
                    self.errors.append(f"first message {first.get('type')}: {first}")
                self.snapshots += 1
                self.conns.append(ws)
                self.readers.append(asyncio.create_task(self._read(ws)))

        await asyncio.gather(*(one(p) for p in paths))
        return time.monotonic() - began

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                now = time.time()
                self.received.append((now, json.loads(raw)))
        except Exception as exc:
            self.errors.append(f"read: {exc.__class__.__name__}: {exc}")

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.conns), return_exceptions=True)
        self.conns, self.readers = [], []


def summary(name: str, latencies_s: list[float], expected: int | None, errors: list[str],
            extra: str = "") -> float | None:
    """Prints the phase's figures; returns its p99 in ms (None: nothing delivered)."""
    ms = [v * 1000 for v in latencies_s]
    got = f"{len(ms)}" + (f"/{expected} expected" if expected is not None else "")
    if not ms:
        print(f"{name}: no deliveries ({got}); errors {len(errors)}")
        return None
    print(f"{name}: deliveries {got}; latency ms p50 {statistics.median(ms):.1f}  "
          f"p95 {percentile(ms, 95):.1f}  p99 {percentile(ms, 99):.1f}  max {max(ms):.1f}  "
          f"(min {min(ms):.1f}); errors {len(errors)}{extra}")
    for message in sorted(set(errors))[:3]:
        print(f"    error: {message[:200]}")
    return percentile(ms, 99)


def phase_results(phase: str, clients: Any, p99: float | None, target_ms: float,
                  expected: int, delivered: int) -> None:
    failed = sum(1 for error in clients.errors if error.startswith("connect:"))
    closed = sum(1 for error in clients.errors if "1011" in error)
    result(f"WebSocket {phase}, {len(clients.conns) + failed} clients: failed connects, "
           "1011 closes", f"{failed}, {closed}", "0, 0", failed == closed == 0)
    result(f"WebSocket {phase}, {len(clients.conns) + failed} clients: delivery p99",
           "-" if p99 is None else f"{p99:.0f} ms ({delivered}/{expected} delivered)",
           f"<= {target_ms:.0f} ms", p99 is not None and p99 <= target_ms
           and delivered == expected)


def report_log(log: Path) -> None:
    """Count tracebacks in daphne's log and show their distinct final lines."""
    keep_log(log)
    lines = log.read_text(errors="replace").splitlines()
    finals: dict[str, int] = {}
    for index, line in enumerate(lines):
        if line.startswith("Traceback"):
            for follow in lines[index + 1:]:
                if follow and not follow.startswith((" ", "Traceback", "During", "The above")):
                    finals[follow[:160]] = finals.get(follow[:160], 0) + 1
                    break
    print(f"tracebacks in daphne log: {sum(finals.values())}")
    for final, count in sorted(finals.items(), key=lambda kv: -kv[1])[:4]:
        print(f"    {count:4d} x {final}")


# --- scale-out ----------------------------------------------------------------------------------

def run_scaleout(args: argparse.Namespace) -> None:
    pid = os.getpid()
    print(f"== scale-out profile: daphne + Redis channel layer (prefix brenia-bench-{pid}) + "
          f"PostgreSQL, {args.clients} clients ==")
    daphne = None
    db: TempDatabase | None = None
    with tempfile.TemporaryDirectory(prefix="brenia-bench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            db = TempDatabase(f"brenia_bench_{pid}")
            env = brenia_env(tmp=tmp, database_url=db.url, redis_prefix=f"brenia-bench-{pid}",
                             jobs="procrastinate",  # no worker runs: the jobs stay queued
                             extra={"BENCH_PATCHES": args.patch})
            manage(["migrate", "--noinput"], env)
            setup = run_child(THIS, ["child-setup", str(args.clients), str(tmp / "ids.json")],
                              env, timeout=120)
            jobs = json.loads((tmp / "ids.json").read_text())
            port = free_port()
            log = tmp / "daphne.log"
            daphne = subprocess.Popen(
                daphne_command(["-b", "127.0.0.1", "-p", str(port), "brenia.asgi:application"],
                               env),
                cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
            wait_http(f"http://127.0.0.1:{port}/readyz", daphne)
            asyncio.run(scaleout_phases(args, f"ws://127.0.0.1:{port}", setup["key"], jobs, env,
                                        tmp, daphne.pid))
            report_log(log)
        finally:
            stop_process(daphne)
            if db is not None:
                db.drop()
            left = redis_cleanup(f"brenia-bench-{pid}")
            print(f"cleanup: dropped {db.name if db else '-'}; deleted {left} Redis keys left "
                  "under the prefix (group memberships whose group_discard failed)")


async def scaleout_phases(args: argparse.Namespace, base: str, key: str, jobs: list[str],
                          env: dict[str, str], tmp: Path, daphne_pid: int) -> None:
    ids_file = tmp / "ids.json"
    # Phase 1: each client follows its own job.
    clients = Clients(base, key)
    took = await clients.connect([f"/ws/jobs/?job={job}" for job in jobs])
    print(f"per-job: {len(clients.conns)} clients connected in {took:.1f}s "
          f"({len(clients.errors)} failed)")
    expected = args.rounds * len(jobs)
    stats = await trigger(args, clients, env, ids_file, ["per-job", str(args.rounds),
                                                         str(args.rate), "all"], daphne_pid,
                          senders=args.senders)
    latencies = [now - event["sent_at"] for now, event in clients.received
                 if event.get("bench") == "per-job"]
    from_record = [now - datetime.fromisoformat(event["time"]).timestamp()
                   for now, event in clients.received if event.get("bench") == "per-job"]
    p99 = summary(f"per-job   ({args.rounds} round(s) x {len(jobs)} jobs, target "
                  f"{args.rate:.0f} events/s)", latencies, expected, clients.errors, stats)
    phase_results("per-job stream", clients, p99, 50, expected, len(latencies))
    summary("          same, measured from the event row's time (after its DB write)",
            from_record, None, [])
    await clients.close()

    # Phase 2: every client on the same user's stream; each event reaches all of them.
    clients = Clients(base, key)
    took = await clients.connect(["/ws/jobs/"] * len(jobs))
    print(f"broadcast: {len(clients.conns)} clients on the user stream connected in {took:.1f}s "
          f"({len(clients.errors)} failed)")
    expected = args.broadcast * len(clients.conns)
    stats = await trigger(args, clients, env, ids_file, ["broadcast", str(args.broadcast),
                                                         str(args.broadcast_rate), "one"],
                          daphne_pid)
    latencies = [now - event["sent_at"] for now, event in clients.received
                 if event.get("bench") == "broadcast"]
    p99 = summary(f"broadcast ({args.broadcast} events x {len(clients.conns)} clients, "
                  f"{args.broadcast_rate:.0f} events/s)", latencies, expected, clients.errors,
                  stats)
    phase_results("one stream to every socket", clients, p99, 100, expected, len(latencies))
    await clients.close()


async def trigger(args: argparse.Namespace, clients: Clients, env: dict[str, str],
                  ids_file: Path, spec: list[str], daphne_pid: int, senders: int = 1) -> str:
    """Run the event-sending children (each a slice of the jobs); return a note."""
    await asyncio.sleep(0.5)
    daphne_cpu, own_cpu = Cpu(daphne_pid), Cpu(os.getpid())
    busy0, total0 = machine_cpu()
    procs = [await asyncio.create_subprocess_exec(
        PY, str(THIS), "child-trigger", str(ids_file), *spec, f"{n}/{senders}", cwd=ROOT,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for n in range(senders)]
    results = []
    for proc in procs:
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"trigger failed:\n{err.decode()[-3000:]}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    busy1, total1 = machine_cpu()
    await asyncio.sleep(2.0)  # stragglers
    events = sum(r["events"] for r in results)
    seconds = max(r["seconds"] for r in results)
    return (f"\n    {senders} sender process(es): {events} events in {seconds:.1f}s "
            f"({events / seconds:.0f}/s; anotify_job_event call median "
            f"{statistics.median(r['call_ms'] for r in results):.1f} ms); CPU: daphne "
            f"{daphne_cpu.read():.0f}%, clients process {own_cpu.read():.0f}% of one core, "
            f"whole machine {100 * (busy1 - busy0) / max(1.0, total1 - total0):.0f}% of 2 cores "
            "while sending")


def child_setup(clients: int, ids_path: str) -> None:
    django_setup()
    from generation.jobs.services import job_create

    user, key = bench_user()
    ids = []
    for index in range(clients):
        job, _ = job_create(user=user, model_slug=MODEL, inputs={"prompt": f"ws {index}"},
                            options={"width": 256, "height": 256})
        ids.append(str(job.pk))
    Path(ids_path).write_text(json.dumps(ids))
    print(json.dumps({"key": key, "user": user.pk}))


def child_trigger(ids_path: str, tag: str, count: int, rate: float, which: str,
                  part: str) -> None:
    """Send events like a worker does; ``which`` is all jobs per round, or one job.

    ``part`` "n/N": this sender takes every N-th job from the n-th, at rate/N.
    """
    django_setup()
    from generation.jobs.events import anotify_job_event
    from generation.models import Job

    index, total = (int(v) for v in part.split("/"))
    ids = json.loads(Path(ids_path).read_text())[index::total]
    rate = rate / total

    async def main() -> dict[str, Any]:
        jobs = [job async for job in Job.objects.filter(pk__in=ids).only("id", "user_id",
                                                                           "last_event_seq")]
        plan = [job for _ in range(count) for job in jobs] if which == "all" \
            else [jobs[0]] * count
        calls = []
        began = time.monotonic()
        for index, job in enumerate(plan):
            due = began + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.monotonic()
            await anotify_job_event(job=job, type="in_progress", payload={
                "status": "in_progress", "progress": None, "logs": [], "bench": tag,
                "sent_at": time.time()})
            calls.append(time.monotonic() - t0)
        return {"events": len(plan), "seconds": time.monotonic() - began,
                "call_ms": statistics.median(calls) * 1000}

    print(json.dumps(asyncio.run(main())))


# --- embedded -----------------------------------------------------------------------------------

def run_embedded(args: argparse.Namespace) -> None:
    config = {"latency": "fast", "runners": args.clients + 50, "dispatch_s": args.dispatch_s,
              "inference_s": 2.0}
    print(f"\n== embedded profile: daphne alone (SQLite, in-memory layer, jobs on daphne's loop), "
          f"{args.clients} real jobs created through the API, one client per job; emulator "
          f"{config}, poll interval 0.5s ==")
    daphne = emulator = None
    with tempfile.TemporaryDirectory(prefix="brenia-bench-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            emulator, url = start_fal_emulator(config, tmp / "emulator.log")
            env = brenia_env(tmp=tmp, fal_url=url, poll=0.5, extra={"BENCH_PATCHES": args.patch})
            manage(["migrate", "--noinput"], env)
            setup = run_child(THIS, ["child-setup", "0", str(tmp / "ids.json")], env)
            port = free_port()
            log = tmp / "daphne.log"
            daphne = subprocess.Popen(
                daphne_command(["-b", "127.0.0.1", "-p", str(port), "brenia.asgi:application"],
                               env),
                cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
            wait_http(f"http://127.0.0.1:{port}/readyz", daphne)
            asyncio.run(embedded_phase(args, port, setup["key"], daphne.pid))
            report_log(log)
        finally:
            stop_process(daphne)
            stop_process(emulator)


async def embedded_phase(args: argparse.Namespace, port: int, key: str, daphne_pid: int) -> None:
    import aiohttp

    clients = Clients(f"ws://127.0.0.1:{port}", key)
    daphne_cpu, own_cpu = Cpu(daphne_pid), Cpu(os.getpid())
    ids: list[str] = []
    began = time.monotonic()
    gate = asyncio.Semaphore(10)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        async def one(index: int) -> None:
            body = {"model": MODEL, "inputs": {"prompt": f"ws embedded {index}"},
                    "options": {"width": 256, "height": 256}}
            async with gate, http.post(f"http://127.0.0.1:{port}/api/images/generate",
                                       json=body) as response:
                body = await response.json()
                if response.status != 202:
                    clients.errors.append(f"POST {response.status}: {body}")
                    return
            ids.append(body["id"])
            await clients.connect([f"/ws/jobs/?job={body['id']}"], parallel=1)

        await asyncio.gather(*(one(i) for i in range(args.clients)))
    created = time.monotonic() - began
    print(f"created {len(ids)} jobs through the API and connected {len(clients.conns)} clients "
          f"in {created:.1f}s")
    deadline = time.monotonic() + args.embedded_timeout
    while time.monotonic() < deadline:
        done = {e["job_id"] for _, e in clients.received if e.get("type") in ("completed",
                                                                              "failed")}
        if len(done) >= len(ids):
            break
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - began
    events = [(now, e) for now, e in clients.received if e.get("type") != "snapshot"
              and "time" in e]
    latencies = [now - datetime.fromisoformat(e["time"]).timestamp() for now, e in events]
    by_type: dict[str, list[float]] = {}
    for (_now, e), latency in zip(events, latencies, strict=True):
        by_type.setdefault(e["type"], []).append(latency)
    finished = {e["job_id"]: e["type"] for _, e in events if e["type"] in ("completed", "failed")}
    summary("embedded, all events", latencies, None, clients.errors,
            f"\n    jobs seen finished by their client {len(finished)}/{len(ids)} "
            f"({sum(1 for t in finished.values() if t == 'completed')} completed) in "
            f"{elapsed:.1f}s; CPU: daphne {daphne_cpu.read():.0f}%, clients+API process "
            f"{own_cpu.read():.0f}% of one core")
    for kind, values in sorted(by_type.items()):
        ms = [v * 1000 for v in values]
        print(f"    {kind:12} n={len(ms):5d}  p50 {statistics.median(ms):7.1f}  "
              f"p99 {percentile(ms, 99):7.1f}  max {max(ms):7.1f} ms")
    await clients.close()


# --- main ---------------------------------------------------------------------------------------

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child-setup":
        child_setup(int(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "child-trigger":
        child_trigger(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]),
                      sys.argv[6], sys.argv[7])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--profile", choices=("scaleout", "embedded", "both"), default="scaleout",
                        help="both takes about 3 minutes; each alone about 1.5")
    parser.add_argument("--rounds", type=int, default=2, help="per-job: events per job")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="per-job: events per second, all senders together")
    parser.add_argument("--senders", type=int, default=1,
                        help="per-job: sender processes (like workers) sharing the jobs")
    parser.add_argument("--broadcast", type=int, default=10, help="broadcast: events")
    parser.add_argument("--broadcast-rate", type=float, default=2.0,
                        help="broadcast: events per second (each to every client)")
    parser.add_argument("--dispatch-s", type=float, default=4.0,
                        help="embedded: emulator queue time, so clients connect before work")
    parser.add_argument("--embedded-timeout", type=float, default=40.0,
                        help="embedded: seconds to wait for the jobs after creating them")
    parser.add_argument("--patch", default="",
                        help="what-if fixes in daphne and the event senders (db-pool, "
                             "pubsub-layer, persistent-db, shared-http); default none = Brenia "
                             "as it is")
    args = parser.parse_args()
    if args.patch:
        print(f"WHAT-IF RUN: bench-only patches {args.patch} in daphne and the event senders")
    limit = raise_nofile()
    print(f"open-files limit {limit}")
    began = time.monotonic()
    if args.profile in ("scaleout", "both"):
        run_scaleout(args)
    if args.profile in ("embedded", "both"):
        run_embedded(args)
    print(f"\n(total bench time {time.monotonic() - began:.0f}s)")


if __name__ == "__main__":
    main()
