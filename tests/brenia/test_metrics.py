"""Prometheus metrics: what /metrics shows after real work, who may read it, that the
series of every process add up, and the alert rules and dashboard checked by promtool.

Live tests give their Brenia processes a metrics folder of their own, so the counts
they read are theirs alone. In-process tests read this process's own values from
prometheus_client's default registry (other test runs share the default folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml
from channels.db import database_sync_to_async
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from brenia import metrics
from generation.emulators.server import EmulatorThread
from generation.jobs import runner
from generation.jobs.runner import run_job
from generation.models import Job, JobStatus
from tests.conftest import ROOT, SCALEOUT, LiveBrenia, Persona
from tests.emulators.fal_support import WebhookReceiver, webhook_receiver_fixture
from tests.generation.factories import make_prepared_job

__all__ = ["webhook_receiver_fixture"]  # a fixture these tests use

TOKEN = "metrics-test-token"
DEPLOY = ROOT / "deploy"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- reading /metrics -------------------------------------------------------------------

def scrape(url: str, token: str = TOKEN) -> Samples:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"},
                         timeout=30)
    assert response.status_code == 200, response.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_until(url: str, ready: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``ready``: a job's end is counted just after it commits, which a
    client may see first."""
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(url)
        if ready(samples):
            return samples
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


# --- live Brenia with a metrics folder of its own ---------------------------------------

@pytest.fixture
def metrics_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "metrics"
    directory.mkdir()
    # Inherited by the processes live_brenia starts (and by any this test starts).
    monkeypatch.setenv("BRENIA_METRICS_DIR", str(directory))
    monkeypatch.setenv("BRENIA_METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("BRENIA_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    return directory


@pytest.fixture
def live(transactional_db: Any, metrics_dir: Path, request: pytest.FixtureRequest) -> LiveBrenia:
    """``live_brenia``, started once the environment above is set. (Named here, the
    transactional database is what the personas are made in, so daphne sees them.)"""
    live_brenia: LiveBrenia = request.getfixturevalue("live_brenia")
    return live_brenia


def counted_in_file(path: Path, name: str) -> float:
    """What one process's own file holds for series ``name`` (summed over labels)."""
    return sum(found for key, found, _stamp, _pos in MmapedDict.read_all_values_from_file(
        str(path)) if json.loads(key)[1] == name)


@pytest.mark.e2e
def test_a_job_and_its_requests_show_on_metrics_whichever_process_ran_them(
        live: LiveBrenia, metrics_dir: Path, owner: Persona,
        webhook_receiver: Callable[..., WebhookReceiver]) -> None:
    receiver = webhook_receiver()
    client = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {owner.key}"},
                          timeout=60)
    done = client.post("/api/images/generate?wait=30", json={
        "model": "flux-schnell", "inputs": {"prompt": f"counted {uuid.uuid4()}"},
        "webhook_url": receiver.url})
    assert done.status_code == 200, done.text
    job_id = done.json()["id"]
    assert client.get(f"/api/jobs/{job_id}").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.COMPLETED and job.cost

    finished = {"model": "flux-schnell", "provider": "fal", "arm": "main",
                "status": "completed"}
    samples = scrape_until(live.url, lambda s: (
        value(s, "brenia_jobs_finished_total", **finished) == 1
        and value(s, "brenia_webhook_attempts_total", outcome="delivered") == 1
        and value(s, "brenia_jobs_in_flight") == 0), "the job counted, delivered and done")

    assert value(samples, "brenia_http_requests_total", route="/api/images/generate",
                 method="POST", status="200") == 1
    assert value(samples, "brenia_http_requests_total", route="/api/jobs/<job_id>",
                 method="GET", status="200") == 1
    assert value(samples, "brenia_http_requests_total", route="unmatched", method="GET",
                 status="404") == 1
    assert value(samples, "brenia_http_request_duration_seconds_count",
                 route="/api/images/generate", method="POST") == 1
    assert not any(job_id in label for _name, labels in samples for _k, label in labels)
    assert value(samples, "brenia_job_run_seconds_count", model="flux-schnell") == 1
    assert value(samples, "brenia_job_run_seconds_sum", model="flux-schnell") > 0
    assert value(samples, "brenia_job_queue_wait_seconds_count", model="flux-schnell") == 1
    assert value(samples, "brenia_job_cost_usd_total", model="flux-schnell") == pytest.approx(
        float(job.cost))
    assert value(samples, "brenia_webhook_attempts_total", outcome="failed") == 0

    worker = live.worker()
    if SCALEOUT:
        # The worker ran the job and sent the webhook; daphne, which answered the
        # scrape, added the worker's file to its own.
        assert worker is not None
        counter_file = metrics_dir / f"counter_{worker.pid}.db"
        assert counted_in_file(counter_file, "brenia_jobs_finished_total") == 1
        assert counted_in_file(metrics_dir / f"counter_{live.processes[0].pid}.db",
                               "brenia_jobs_finished_total") == 0
        worker.terminate()
        worker.wait(timeout=30)
        # Gone with the worker: its gauges. Kept: its counts.
        assert not (metrics_dir / f"gauge_livesum_{worker.pid}.db").exists()
        after = scrape(live.url)
        assert value(after, "brenia_jobs_finished_total", **finished) == 1


OTHER_PROCESS = """
import sys
import django
django.setup()
from brenia import metrics
metrics.cache_lookup(hit=True)
metrics.JOBS_IN_FLIGHT.inc()
print("counted", flush=True)
sys.stdin.read()  # until the test lets go
"""


async def open_socket(url: str, key: str) -> tuple[aiohttp.ClientSession, Any]:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url.replace("http://", "ws://") + "/ws/jobs/", headers={
        "Authorization": f"Bearer {key}", "Origin": "http://127.0.0.1"})
    assert json.loads((await ws.receive()).data)["type"] == "snapshot"
    return session, ws


@pytest.mark.e2e
def test_series_of_other_processes_add_up_and_their_gauges_end_with_them(
        live: LiveBrenia, owner: Persona) -> None:
    other = subprocess.Popen([sys.executable, "-c", OTHER_PROCESS], cwd=ROOT,
                             env={**os.environ, "DJANGO_SETTINGS_MODULE": "brenia.settings"},
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert other.stdout is not None and other.stdin is not None
    try:
        assert other.stdout.readline() == b"counted\n"
        while_alive = scrape(live.url)
    finally:
        other.stdin.close()
        other.wait(timeout=30)
    assert value(while_alive, "brenia_cache_requests_total", result="hit") == 1
    assert value(while_alive, "brenia_cache_requests_total", result="miss") == 0
    assert value(while_alive, "brenia_jobs_in_flight") == 1
    after = scrape(live.url)
    assert value(after, "brenia_cache_requests_total", result="hit") == 1  # counts stay
    assert value(after, "brenia_jobs_in_flight") == 0  # a dead process holds no job

    async def sockets() -> tuple[Samples, Samples]:
        session, ws = await open_socket(live.url, owner.key)
        try:
            opened = await asyncio.to_thread(scrape, live.url)
        finally:
            await ws.close()
            await session.close()
        closed = await asyncio.to_thread(
            scrape_until, live.url, lambda s: value(s, "brenia_websocket_connections") == 0,
            "the socket closed")
        return opened, closed

    opened, closed = asyncio.run(sockets())
    assert value(opened, "brenia_websocket_connections") == 1
    assert value(closed, "brenia_websocket_connections") == 0


# --- who may read /metrics --------------------------------------------------------------

def test_metrics_refuses_a_missing_or_wrong_token(settings: Any) -> None:
    settings.BRENIA_METRICS_TOKEN = "the-right-token"
    client = Client()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    for header in ("Bearer the-wrong-token", "Basic the-right-token", "Bearer"):
        assert client.get("/metrics", headers={"Authorization": header}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": "Bearer the-right-token"})
    assert allowed.status_code == 200
    assert allowed["Content-Type"].startswith("text/plain")
    assert b"# TYPE brenia_http_requests_total counter" in allowed.content
    assert client.post("/metrics", headers={
        "Authorization": "Bearer the-right-token"}).status_code == 405


def test_metrics_is_off_without_a_token(settings: Any) -> None:
    settings.BRENIA_METRICS_TOKEN = ""
    client = Client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


PRODUCTION_PROBE = """
import django
django.setup()
from django.conf import settings
from django.test import Client
client = Client(HTTP_HOST="brenia.example.com")
bearer = {"Authorization": "Bearer " + (settings.BRENIA_METRICS_TOKEN or "none")}
print(client.get("/metrics", headers=bearer).status_code, client.get("/metrics").status_code,
      client.get("/api/models").status_code)
"""


@pytest.mark.parametrize(("token", "answers"), [
    ("", "404 404 301"),  # no token: off, never open; not redirected to https either
    ("prod-token", "200 401 301"),
])
def test_production_metrics_need_a_token_and_answer_plain_http(
        tmp_path: Path, token: str, answers: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST", "BRENIA_", "DEBUG", "SECRET_KEY"))}
    env.update({"BRENIA_ENV": "production", "SECRET_KEY": "s" * 60,
                "ALLOWED_HOSTS": "brenia.example.com", "BRENIA_DATA_DIR": str(tmp_path),
                "BRENIA_METRICS_TOKEN": token, "DJANGO_SETTINGS_MODULE": "brenia.settings"})
    result = subprocess.run([sys.executable, "-c", PRODUCTION_PROBE], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == answers.split()
    assert not (tmp_path / "metrics_token").exists()  # production never makes one up


# --- provider errors, counted by the runner in this process -----------------------------

def own(name: str, **labels: str) -> float:
    """This process's own value of a series (not the folder's sum)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "BACKOFF_BASE", 0.01)
    monkeypatch.setattr(runner, "BACKOFF_CAP", 0.05)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("fault", "error_class", "attempts", "status"), [
    ("content_policy", "permanent", 1, JobStatus.FAILED),
    ("malformed", "malformed", 1, JobStatus.ERRORED),
    ("runner_error", "transient", runner.MAX_ATTEMPTS, JobStatus.ERRORED),
])
async def test_provider_errors_are_counted_by_class_once_per_attempt(
        owner: Persona, fal_emulator: EmulatorThread, quick_retries: None, fault: str,
        error_class: str, attempts: int, status: str) -> None:
    before = own("brenia_provider_errors_total", provider="fal", error_class=error_class)
    ended = {"model": "flux-schnell", "provider": "fal", "arm": "main", "status": status}
    ended_before = own("brenia_jobs_finished_total", **ended)
    job = await database_sync_to_async(make_prepared_job)(
        owner, inputs={"prompt": f"fault {uuid.uuid4()} [[fal:{fault}]]"})
    await run_job(job.pk)
    assert (await Job.objects.aget(pk=job.pk)).status == status
    assert own("brenia_provider_errors_total", provider="fal",
               error_class=error_class) - before == attempts
    assert own("brenia_jobs_finished_total", **ended) - ended_before == 1
    assert own("brenia_jobs_in_flight") == 0


# --- the alert rules and the dashboard --------------------------------------------------

def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: `make promtool` installs Debian's prometheus "
                    "package, which has it (`make test` does so itself)")
    return subprocess.run(["promtool", *args], cwd=DEPLOY / "prometheus", capture_output=True,
                          text=True, timeout=120, check=False)


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    config = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def exported_series() -> set[str]:
    """Every series name brenia.metrics can export."""
    suffixes = {"counter": ("_total",), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum")}
    names = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "brenia.json").read_text())
    return [target["expr"] for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


def test_dashboard_queries_parse_and_every_query_names_real_series(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    # Grafana's variables, as Grafana would fill them in, make plain PromQL.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{n}",
         "expr": query.replace("$__rate_interval", "1m").replace("$instance", ".*")}
        for n, query in enumerate(queries)]}]}
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(rule_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    named = set(re.findall(r"\bbrenia_[a-z_]+", "\n".join(queries) + alerts))
    assert named <= exported_series(), named - exported_series()
    assert {"brenia_http_requests_total", "brenia_jobs_finished_total",
            "brenia_job_run_seconds_bucket", "brenia_job_cost_usd_total",
            "brenia_cache_requests_total", "brenia_webhook_attempts_total",
            "brenia_websocket_connections", "brenia_jobs_in_flight",
            "brenia_provider_errors_total", "brenia_job_queue_wait_seconds_bucket"} <= named


def test_dead_processes_files_go_at_start_and_live_ones_stay(
        settings: Any, tmp_path: Path) -> None:
    settings.BRENIA_METRICS_DIR = tmp_path
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = [tmp_path / f"{kind}_{finished.pid}.db"
            for kind in ("counter", "histogram", "gauge_livesum")]
    alive = [tmp_path / f"{kind}_{os.getpid()}.db" for kind in ("counter", "gauge_livesum")]
    for path in dead + alive:
        path.write_bytes(b"")
    metrics.forget_dead_processes()
    assert [path.exists() for path in dead] == [False] * 3
    assert [path.exists() for path in alive] == [True] * 2
