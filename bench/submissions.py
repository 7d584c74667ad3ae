"""How fast Brenia accepts work: ``POST /api/images/generate`` next to a hello-world POST.

The target (performance issue): on the scale-out profile, accepted submissions per
second at least 0.5x what a hello-world django-ninja POST gets from the same daphne in
the same run, and p99 < 100 ms, at 32 connections.

Scale-out profile, DEBUG off: a throw-away PostgreSQL database, Redis on 127.0.0.1:6379
(a prefix of this run's own), ``BRENIA_JOBS=procrastinate``, ONE daphne process, ONE
``manage.py worker`` running the jobs, the fal emulator in a process of its own. daphne
serves Brenia with ``bench/`` on its ``PYTHONPATH`` and
``DJANGO_SETTINGS_MODULE=_hello_settings``: Brenia's settings, plus ``POST
/bench/hello`` (``bench/_hello_urls.py``: a Schema-parsed JSON body, a JSON answer).

Load: ``wrk`` (``bench/_submissions.lua``), 32 keep-alive connections, 2 threads;
phases of --seconds each after a warm-up, alternating hello / generate / hello /
generate so drift in the machine's load hits both. generate: a bearer API key of a
user on an explicitly unlimited plan, flux-schnell at 512x512, a unique prompt per
request (the result cache never answers). Only 202s count as accepted; every other
status is reported with its count.

wrk is Debian's ``wrk`` package: if ``/usr/bin/wrk`` is missing the bench runs
``apt-get install -y wrk`` (as root) itself. It costs a few percent of a core where a
Python client at 32 connections would take most of one of this machine's two.

``--profile S`` then records daphne with py-spy (installed with pip into
/tmp/brenia-bench-tools, not into .venv) for S seconds of generate load, and prints
where daphne's samples go along the submission path.

    .venv/bin/python bench/submissions.py [--seconds 15] [--warmup 5] [--rounds 2]
                                          [--connections 32] [--profile 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import (
    ROOT,
    TempDatabase,
    bench_user,
    brenia_env,
    daphne_command,
    django_setup,
    free_port,
    keep_log,
    manage,
    manage_command,
    raise_nofile,
    redis_cleanup,
    run_child,
    start_fal_emulator,
    stop_process,
    wait_http,
)
from _report import result as report
from _submissions_load import (
    BENCH,
    THIS,
    Meter,
    ensure_pyspy,
    ensure_wrk,
    line,
    phase,
    profile,
    redis_server_pids,
)

# --- setup child ---------------------------------------------------------------------------------

def child_setup() -> None:
    """In a child with the bench's environment: the user, its key, an unlimited plan."""
    django_setup()
    from brenia.billing.models import Account, Plan

    user, key = bench_user("bench-submissions")
    # Explicit: no rate, no concurrency cap, no budget, every model; whatever the default.
    plan, _ = Plan.objects.update_or_create(name="bench-unlimited", defaults=dict(
        is_default=False, daily_high_res_cap=None, requests_per_minute=None,
        concurrent_jobs_per_user=None, concurrent_jobs_per_team=None,
        monthly_budget_soft=None, monthly_budget_hard=None))
    plan.allowed_models.clear()
    Account.objects.update_or_create(user=user, defaults={"plan": plan})
    teams = user.memberships.count() if hasattr(user, "memberships") else 0
    print(json.dumps({"key": key, "user": user.pk, "plan": plan.name, "teams": teams}))


# --- main -----------------------------------------------------------------------------------------

def one_request(base: str, key: str) -> tuple[int, str]:
    body = {"model": "flux-schnell", "inputs": {"prompt": f"bench probe {time.time()}"},
            "options": {"width": 512, "height": 512}}
    request = urllib.request.Request(
        f"{base}/api/images/generate", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()[:300]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()[:300]


def hello_probe(base: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{base}/bench/hello", data=b'{"name": "probe"}', method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read().decode()[:300]


def tracebacks(log: Path) -> Counter[str]:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    finals: Counter[str] = Counter()
    for index, text in enumerate(lines):
        if text.startswith("Traceback"):
            for follow in lines[index + 1:]:
                if follow and not follow.startswith((" ", "Traceback", "During", "The above")):
                    finals[follow[:160]] += 1
                    break
    return finals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="hello+generate pairs")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--profile", type=float, default=0,
                        help="then py-spy daphne for this many seconds of generate load")
    parser.add_argument("--idle", action="store_true",
                        help="py-spy --idle: wall time of every thread, not only CPU")
    parser.add_argument("--patch", default="", help="BENCH_PATCHES for daphne and the worker")
    args = parser.parse_args()
    raise_nofile()
    wrk = ensure_wrk()
    pyspy = ensure_pyspy() if args.profile else ""
    pid = os.getpid()
    prefix = f"brenia-bench-sub-{pid}"
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), platform.processor())
    load1 = os.getloadavg()
    print(f"== submissions: scale-out profile, {args.connections} connections, "
          f"{args.rounds} x (hello {args.seconds:g}s, generate {args.seconds:g}s) after "
          f"{args.warmup:g}s warm-ups ==")
    print(f"machine: nproc {os.cpu_count()}, {model}; load average before "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    fal = daphne = worker = None
    db: TempDatabase | None = None
    with tempfile.TemporaryDirectory(prefix="brenia-bench-sub-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            db = TempDatabase(f"brenia_bench_sub_{pid}")
            fal, fal_url = start_fal_emulator({}, tmp / "fal.log")
            env = brenia_env(tmp=tmp, fal_url=fal_url, database_url=db.url,
                             redis_prefix=prefix, jobs="procrastinate",
                             extra={"BENCH_PATCHES": args.patch} if args.patch else None)
            manage(["migrate", "--noinput"], env)
            setup = run_child(THIS, ["child-setup"], env, timeout=120)
            key = setup["key"]
            print(f"user: plan {setup['plan']} (no rate, cap, concurrency or budget limit), "
                  f"teams {setup['teams']}")
            wlog = tmp / "worker.log"
            worker = subprocess.Popen(manage_command(["worker"], env), cwd=ROOT, env=env,
                                      stdout=wlog.open("ab"), stderr=subprocess.STDOUT)
            denv = {**env, "DJANGO_SETTINGS_MODULE": "_hello_settings",
                    "PYTHONPATH": os.pathsep.join(
                        p for p in (str(BENCH), str(ROOT), env.get("PYTHONPATH", "")) if p)}
            port = free_port()
            dlog = tmp / "daphne.log"
            daphne = subprocess.Popen(
                daphne_command(["-b", "127.0.0.1", "-p", str(port), "brenia.asgi:application"],
                               denv),
                cwd=ROOT, env=denv, stdout=dlog.open("ab"), stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/readyz", daphne)
            status, text = hello_probe(base)
            print(f"probe hello: {status} {text}")
            status, text = one_request(base, key)
            print(f"probe generate: {status} {text[:160]}")
            if status != 202:
                raise SystemExit("the probe was not accepted; see above")

            daphne_pid, worker_pid, fal_pid = daphne.pid, worker.pid, fal.pid

            def pg_pids() -> list[int]:
                assert db is not None
                return [row[0] for row in db.query(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")]

            meter = Meter({"daphne": lambda: [daphne_pid], "worker": lambda: [worker_pid],
                           "fal": lambda: [fal_pid], "postgres": pg_pids,
                           "redis": redis_server_pids})
            common = dict(base=base, key=key, connections=args.connections)
            for mode in ("hello", "generate"):
                phase(wrk, meter, mode=mode, seconds=args.warmup, tag=f"{pid}-warm",
                      **common)
            results: dict[str, list[dict[str, Any]]] = {"hello": [], "generate": []}
            for index in range(args.rounds):
                for mode in ("hello", "generate"):
                    result = phase(wrk, meter, mode=mode, seconds=args.seconds,
                                   tag=f"{pid}-{index}", **common)
                    results[mode].append(result)
                    print(line(result), flush=True)
            if args.rounds:
                summarise(results)
            jobs = db.query("SELECT count(*) FROM generation_job")[0][0]
            accepted = sum(r["ok"] for rs in results.values() for r in rs
                           if r["mode"] == "generate")
            print(f"database: {jobs} jobs (measured phases accepted {accepted}; plus the "
                  "warm-up's and the probe's)")
            if args.profile:
                profile(pyspy, wrk, meter, daphne_pid, tmp, args, common)
            finals = tracebacks(dlog)
            print(f"tracebacks in daphne log: {sum(finals.values())}")
            for final, count in finals.most_common(4):
                print(f"    {count:4d} x {final}")
            keep_log(dlog)
            keep_log(wlog)
        finally:
            stop_process(daphne)
            stop_process(worker)
            stop_process(fal)
            if db is not None:
                db.drop()
            left = redis_cleanup(prefix)
            load2 = os.getloadavg()
            print(f"cleanup: dropped {db.name if db else '-'}, deleted {left} Redis keys under "
                  f"{prefix}; load average after {load2[0]:.2f} {load2[1]:.2f} {load2[2]:.2f}")


def summarise(results: dict[str, list[dict[str, Any]]]) -> None:
    def total(mode: str) -> tuple[float, list[float]]:
        rs = results[mode]
        rate = sum(r["ok"] for r in rs) / sum(r["seconds"] for r in rs)
        return rate, [max(r["latency_us"]["p99"] for r in rs) / 1000]

    hello, _ = total("hello")
    generate, _ = total("generate")
    worst_p99 = max(r["latency_us"]["p99"] for r in results["generate"]) / 1000
    cpu = {k: sum(r["cpu"][k] for r in results["generate"]) / len(results["generate"])
           for k in results["generate"][0]["cpu"]}
    hcpu = {k: sum(r["cpu"][k] for r in results["hello"]) / len(results["hello"])
            for k in results["hello"][0]["cpu"]}
    ours = ("daphne", "worker", "postgres", "redis", "fal", "client")
    print(f"hello     {hello:7.1f}/s   generate (202s) {generate:7.1f}/s   ratio "
          f"generate/hello {generate / hello:.2f} (target >= 0.5)   generate p99 (worst "
          f"phase) {worst_p99:.1f} ms (target < 100)")
    for name, c in (("hello", hcpu), ("generate", cpu)):
        rest = c["machine"] - sum(c[k] for k in ours)
        print(f"  during {name:<8}: machine {c['machine']:.0f}% of {100 * (os.cpu_count() or 1)}"
              f"; ours daphne {c['daphne']:.0f} + worker {c['worker']:.0f} + postgres "
              f"{c['postgres']:.0f} + redis {c['redis']:.0f} + fal {c['fal']:.0f} + client "
              f"{c['client']:.0f}; the rest (other people's work, kernel) {rest:.0f}")
    report(f"submissions: accepted/s next to a hello-world POST ({hello:.0f}/s)",
           f"{generate / hello:.2f}x ({generate:.0f}/s)", ">= 0.5x", generate / hello >= 0.5)
    report("submissions: p99 latency, 32 connections (worst phase)", f"{worst_p99:.0f} ms",
           "< 100 ms", worst_p99 < 100)
    ms_cpu = 10 * cpu["daphne"] / generate if generate else float("nan")
    hms_cpu = 10 * hcpu["daphne"] / hello if hello else float("nan")
    # daphne gets what share of the cores the others leave it; its CPU per request
    # moves less with that share than requests/s do, so this ratio is the steadier one.
    print(f"  daphne CPU per request: hello {hms_cpu:.2f} ms, generate {ms_cpu:.2f} ms; "
          f"their ratio hello/generate {hms_cpu / ms_cpu:.2f} (what the ratio above would be "
          "if daphne were CPU-bound alike in both)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child-setup"]:
        child_setup()
    else:
        main()
