"""bench/submissions.py's instruments: wrk and py-spy (fetched once into /tmp), the
CPU meter of every process involved, one load phase, and the daphne profile."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import (
    PY,
    cpu_seconds,
    machine_cpu,
)

THIS = Path(__file__).resolve().parent / "submissions.py"
BENCH = THIS.parent
LUA = BENCH / "_submissions.lua"
TOOLS = Path("/tmp/brenia-bench-tools")
PYSPY_VERSION = "0.4.3"


# --- tools --------------------------------------------------------------------------------------

def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: apt-get install -y wrk (Debian's package)")
    print("installing wrk: apt-get install -y wrk", flush=True)
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get install wrk did not give a wrk binary")
    return found


def ensure_pyspy() -> str:
    binary = TOOLS / "py-spy" / "bin" / "py-spy"
    if not binary.exists():
        print(f"installing py-spy {PYSPY_VERSION} into {binary.parent.parent}", flush=True)
        subprocess.run([PY, "-m", "pip", "install", "--quiet", "--target",
                        str(binary.parent.parent), f"py-spy=={PYSPY_VERSION}"], check=True)
    return str(binary)


# --- CPU of everything involved ----------------------------------------------------------------

def redis_server_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


class Meter:
    """CPU seconds of named process groups and of the whole machine over one phase."""

    def __init__(self, groups: dict[str, Any]) -> None:
        # name -> callable returning the pids of that group now
        self.groups = groups

    def _read(self) -> dict[str, dict[int, float]]:
        return {name: {pid: cpu_seconds(pid) for pid in pids()}
                for name, pids in self.groups.items()}

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.machine0 = machine_cpu()
        self.cpu0 = self._read()

    def stop(self) -> dict[str, float]:
        """Percent of one core per group, plus ``machine`` (all cores) and ``others``."""
        cpu1 = self._read()
        dt = time.monotonic() - self.t0
        busy1, total1 = machine_cpu()
        busy0, total0 = self.machine0
        ncpu = os.cpu_count() or 1
        out: dict[str, float] = {}
        for name, now in cpu1.items():
            before = self.cpu0.get(name, {})
            used = sum(max(0.0, sec - before.get(pid, 0.0)) for pid, sec in now.items())
            out[name] = 100 * used / dt
        out["machine"] = 100 * ncpu * (busy1 - busy0) / max(1.0, total1 - total0)
        return out


# --- load ---------------------------------------------------------------------------------------

def run_wrk(wrk: str, *, base: str, mode: str, key: str, seconds: float, connections: int,
            tag: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_MODE": mode, "BENCH_KEY": key, "BENCH_TAG": tag}
    proc = subprocess.Popen([wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s",
                             "--timeout", "10s", "-s", str(LUA), base],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, Any] = json.loads(line[len("WRKJSON "):])
            break
    else:
        raise RuntimeError(f"wrk printed no result (rc {proc.returncode}):\n{out}\n{err}")
    result["seconds"] = result["duration_us"] / 1e6
    result["mode"] = mode
    return result


def phase(wrk: str, meter: Meter, *, base: str, mode: str, key: str, seconds: float,
          connections: int, tag: str) -> dict[str, Any]:
    meter.start()
    # wrk's own CPU: RUSAGE_CHILDREN grows by each reaped child's time.
    import resource

    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_wrk(wrk, base=base, mode=mode, key=key, seconds=seconds,
                     connections=connections, tag=tag)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = meter.stop()
    cpu["backends"] = float(len(meter.groups["postgres"]()))
    client = (children1.ru_utime + children1.ru_stime - children0.ru_utime
              - children0.ru_stime)
    cpu["client"] = 100 * client / result["seconds"]
    result["cpu"] = cpu
    ok = "202" if mode == "generate" else "200"
    result["ok"] = result["statuses"].get(ok, 0)
    result["ok_per_s"] = result["ok"] / result["seconds"]
    return result


def line(result: dict[str, Any]) -> str:
    lat = result["latency_us"]
    cpu = result["cpu"]
    others = {k: v for k, v in result["statuses"].items()
              if k != ("202" if result["mode"] == "generate" else "200")}
    errors = {k: v for k, v in result["errors"].items() if v}
    extra = ""
    if others:
        extra += f"  OTHER STATUSES {others}"
    if errors:
        extra += f"  SOCKET ERRORS {errors}"
    return (f"{result['mode']:<8} {result['ok_per_s']:7.1f}/s ok "
            f"({result['ok']} in {result['seconds']:.1f}s)  "
            f"p50 {lat['p50'] / 1000:6.1f}  p95 {lat['p95'] / 1000:6.1f}  "
            f"p99 {lat['p99'] / 1000:6.1f}  max {lat['max'] / 1000:6.1f} ms   "
            f"CPU% daphne {cpu['daphne']:3.0f} worker {cpu['worker']:3.0f} "
            f"postgres {cpu['postgres']:3.0f} redis {cpu['redis']:3.0f} "
            f"fal {cpu['fal']:3.0f} client {cpu['client']:3.0f} | machine {cpu['machine']:3.0f}"
            f"/{100 * (os.cpu_count() or 1)}; {cpu['backends']:.0f} PostgreSQL backends{extra}")


# --- profile --------------------------------------------------------------------------------------

# (label, function name, file fragment): a sample goes to the innermost frame of its stack
# that one of these names; earlier entries win on the same frame.
PROFILE_MARKERS: list[tuple[str, str, str]] = [
    ("auth: API key lookup", "api_key_for_raw", "accounts/auth.py"),
    ("team for submission", "team_for_submission", "accounts/services.py"),
    ("validation: generation_check", "generation_check", "jobs/services.py"),
    ("idempotency fingerprint", "request_fingerprint", "idempotency.py"),
    ("canary lookup", "_canary_choice", "jobs/services.py"),
    ("result-cache key/lookup", "cache_key", "routing/cache.py"),
    ("result-cache key/lookup", "cached_source", "routing/cache.py"),
    ("billing: plan_check (plan, locks, hold)", "plan_check", "billing/services.py"),
    ("event row (notify_job_event)", "notify_job_event", "jobs/events.py"),
    ("procrastinate defer (job_run_submit)", "job_run_submit", "jobs/tasks.py"),
    ("channel-layer publish", "apublish", "jobs/events.py"),
    ("channel-layer publish", "publish", "jobs/events.py"),
    ("job_create: Job insert, transaction, commit", "job_create", "jobs/services.py"),
    ("_generate (rest)", "_generate", "api/routes.py"),
    ("ninja: body parse + Schema", "_get_values", "ninja/operation.py"),
    ("ninja: response render", "_result_to_response", "ninja/operation.py"),
    ("ninja operation (rest)", "run", "ninja/operation.py"),
    ("hello", "hello", "_hello_urls.py"),
    ("metrics middleware", "__call__", "brenia/metrics.py"),
    ("metrics middleware", "__acall__", "brenia/metrics.py"),
    ("logging", "emit", "logging/__init__.py"),
    ("logging", "handle", "logging/__init__.py"),
    ("Django request handling (middleware, URL)", "get_response_async", "core/handlers"),
    ("Django request handling (middleware, URL)", "handle", "core/handlers/asgi.py"),
    ("daphne/twisted HTTP", "dataReceived", "twisted"),
    ("daphne/twisted HTTP", "write", "twisted"),
    ("asyncio/twisted loop (other)", "run_forever", "asyncio"),
    ("asyncio/twisted loop (other)", "run", "twisted"),
    ("asgiref thread hop", "run", "concurrent/futures/thread.py"),
    ("asgiref thread hop", "_worker", "concurrent/futures/thread.py"),
]
WAIT_FRAMES = ("psycopg", "socket", "select", "recv", "_ssl", "wait (threading.py)",
               "acquire")


def profile_report(raw: Path, top: int = 25) -> None:
    """Print the samples of a py-spy ``--format raw`` file by PROFILE_MARKERS label."""
    labels: Counter[str] = Counter()
    db: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for row in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = row.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        label = "other"
        for frame in reversed(frames):  # innermost first
            name, _, where = frame.partition(" (")
            hit = next((lab for lab, fn, frag in PROFILE_MARKERS
                        if name == fn and frag in where), None)
            if hit:
                label = hit
                break
        labels[label] += count
        if any("psycopg" in f for f in frames):
            db[label] += count
        leaves[frames[-1][:110]] += count
    if not total:
        print("profile: no samples")
        return
    print(f"profile: {total} samples of daphne (py-spy; --gil: the GIL holder's stack, i.e."
          " Python CPU; --idle: every thread); share by innermost labelled frame, of it in"
          " psycopg (DB driver):")
    for label, count in labels.most_common():
        share, in_db = 100 * count / total, 100 * db[label] / total
        print(f"  {share:5.1f}%  {label:<48} (psycopg {in_db:4.1f}%)")
    print("  hottest leaf frames:")
    for leaf, count in leaves.most_common(top):
        print(f"    {100 * count / total:5.1f}%  {leaf}")


def profile(pyspy: str, wrk: str, meter: Meter, daphne_pid: int, tmp: Path,
            args: argparse.Namespace, common: dict[str, Any]) -> None:
    raw = tmp / "daphne.pyspy.txt"
    # --gil: only the thread holding the GIL, i.e. daphne's Python CPU (a thread waiting
    # on the database or Redis has let it go); --idle instead: every thread's wall time.
    cmd = [pyspy, "record", "-p", str(daphne_pid), "-d", f"{int(args.profile)}", "-r", "100",
           "-f", "raw", "-o", str(raw), "--nonblocking", "--idle" if args.idle else "--gil"]
    spy = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    result = phase(wrk, meter, mode="generate", seconds=args.profile + 1,
                   tag=f"{os.getpid()}-prof", **common)
    out, _ = spy.communicate(timeout=60)
    print(line(result) + "   (under py-spy)")
    if not raw.exists():
        print(f"py-spy wrote nothing:\n{out[-2000:]}")
        return
    keep = os.environ.get("BENCH_KEEP_LOGS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(raw, Path(keep) / f"daphne-pyspy-{os.getpid()}.txt")
    profile_report(raw)
