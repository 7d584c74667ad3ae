"""Outgoing webhooks, delivered to a real HTTP receiver on 127.0.0.1.

In the embedded profile jobs and deliveries run on this process's background loop;
in the scale-out profile a worker process runs both. The receiver's loopback
address is allowed through ``BRENIA_WEBHOOK_ALLOWED_HOSTS`` (here and in the
worker); nothing else about the delivery path is special for tests.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from asgiref.sync import async_to_sync
from django.test import Client
from django.utils import timezone

from brenia.background import runner
from generation.emulators.server import EmulatorThread
from generation.jobs.lifecycle import job_finish
from generation.jobs.tasks import job_run_submit
from generation.models import AIModel, IllegalTransition, Job, JobStatus
from generation.outbound.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from generation.outbound.services import webhook_delivery_create
from tests.conftest import (
    ROOT,
    SCALEOUT,
    Persona,
    child_env,
    free_port,
    make_persona,
    start_worker,
)
from tests.generation.factories import make_job, make_prepared_job

pytestmark = pytest.mark.django_db(transaction=True)

MAX_ATTEMPTS = 4
TIMEOUT = 2.0
HANG = -1  # a scripted answer that comes only after the timeout
WEBHOOK_ENV = {
    "BRENIA_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "BRENIA_WEBHOOK_BACKOFF": "0.05",
    "BRENIA_WEBHOOK_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    "BRENIA_WEBHOOK_TIMEOUT": str(TIMEOUT),
}
# The worker also runs its recovery pass every second (scale-out profile).
WORKER_ENV = {**WEBHOOK_ENV, "BRENIA_RECOVERY_INTERVAL": "1"}


# --- the receiver ---------------------------------------------------------------------------

@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records every POST by path and answers each path from its script (else 200)."""

    def __init__(self) -> None:
        self.requests: dict[str, list[Received]] = {}
        self.scripts: dict[str, list[int]] = {}
        self.always: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server = EmulatorThread(self.app)

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            with self.lock:
                self.requests.setdefault(request.path, []).append(
                    Received(dict(request.headers), body))
                script = self.scripts.get(request.path) or []
                status = script.pop(0) if script else self.always.get(request.path, 200)
            if status == HANG:
                await asyncio.sleep(TIMEOUT + 2)
                status = 200
            return web.Response(status=status, text="ok" if status < 300 else "receiver broke")

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        return app

    def url(self, *, answers: list[int] | None = None, always: int | None = None) -> str:
        path = f"/hooks/{uuid.uuid4().hex}"
        with self.lock:
            self.scripts[path] = list(answers or [])
            if always is not None:
                self.always[path] = always
        return f"{self.server.base_url}{path}"

    def heal(self, url: str) -> None:
        """From now on ``url`` answers 200."""
        with self.lock:
            self.always.pop(url.removeprefix(self.server.base_url), None)

    def got(self, url: str) -> list[Received]:
        with self.lock:
            return list(self.requests.get(url.removeprefix(self.server.base_url), []))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.server.start()
    yield receiver
    receiver.server.stop()


@pytest.fixture(scope="module")
def deliverer(django_db_setup: Any, fal_emulator: EmulatorThread,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What runs jobs and deliveries: this process's background loop, or a worker process."""
    if not SCALEOUT:
        yield
        return
    tmp = tmp_path_factory.mktemp("webhooks")
    env = {**child_env(fal_emulator, tmp), **WORKER_ENV}
    log = tmp / "worker.log"
    worker = start_worker(env, log)
    yield
    worker.terminate()
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
    text = log.read_text(errors="replace")
    if "Traceback" in text:
        sys.stderr.write(f"--- worker.log\n{text[-4000:]}\n")


@pytest.fixture
def hooks(settings: Any, receiver: Receiver, deliverer: None) -> Receiver:
    """The receiver, allowed as a webhook target, with fast retries in this process."""
    settings.BRENIA_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.BRENIA_WEBHOOK_BACKOFF = 0.05
    settings.BRENIA_WEBHOOK_MAX_ATTEMPTS = MAX_ATTEMPTS
    settings.BRENIA_WEBHOOK_TIMEOUT = TIMEOUT
    return receiver


# --- helpers --------------------------------------------------------------------------------

def readme_verifier() -> Callable[..., bool]:
    """The verification snippet exactly as README.md's "Webhooks" section prints it."""
    section = (ROOT / "README.md").read_text().split("### Webhooks", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's Webhooks section has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)
    verify: Callable[..., bool] = namespace["verify_brenia_signature"]
    return verify


def wait_until(condition: Callable[[], Any], *, timeout: float = 20, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def settled(job: Job) -> WebhookDelivery:
    """The job's one delivery, once it is delivered or failed."""
    def done() -> WebhookDelivery | None:
        delivery = WebhookDelivery.objects.filter(job=job).first()
        return delivery if delivery and delivery.status != DeliveryStatus.PENDING else None
    delivery: WebhookDelivery = wait_until(done, what=f"the webhook of job {job.pk}")
    return delivery


def cancelled_job(persona: Persona, url: str) -> Job:
    """A queued job naming ``url``, cancelled through the API as an integration would."""
    # Slow at the provider, in case a worker's recovery pass runs it before the cancel.
    held = "held for cancelling [[fal:slow]]"
    model = AIModel.objects.get(slug="flux-schnell")
    job = Job.objects.create(user=persona.user, model=model, model_slug=model.slug,
                             model_version=model.version_label, inputs={"prompt": held},
                             provider_arguments={"prompt": held}, webhook_url=url)
    response = persona.api().post_json(f"/api/jobs/{job.pk}/cancel")
    assert response.status_code == 200, response.content
    return job


def secret_of(persona: Persona) -> str:
    response = persona.api().get_json("/api/account/webhook-secret")
    assert response.status_code == 200, response.content
    secret: str = response.json()["secret"]
    return secret


def staff_console() -> Client:
    operator = make_persona("operator", staff=True)
    console = Client()
    console.force_login(operator.user)
    return console


def redeliver(console: Client, delivery: WebhookDelivery) -> None:
    response = console.post("/admin/outbound/webhookdelivery/", {
        "action": "redeliver", "_selected_action": [str(delivery.pk)], "index": 0})
    assert response.status_code == 302, response.content


# --- tests ----------------------------------------------------------------------------------

def test_finished_job_is_delivered_once_with_its_final_state(
        owner: Persona, hooks: Receiver) -> None:
    url = hooks.url()
    job = make_prepared_job(owner, inputs={"prompt": f"webhook {uuid.uuid4()}"})
    Job.objects.filter(pk=job.pk).update(webhook_url=url)
    job_run_submit(job.pk)

    delivery = settled(job)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    [request] = hooks.got(url)
    body = request.json()
    assert body["type"] == "job.completed"
    assert body["job"]["status"] == JobStatus.COMPLETED and body["job"]["images"]
    assert body["job"] == owner.api().get_json(f"/api/jobs/{job.pk}").json()
    assert body["delivery_id"] == request.headers["Brenia-Delivery"] == str(delivery.pk)
    assert body["attempt"] == 1 and request.headers["Brenia-Event"] == "job.completed"

    # A second finish (a retried finalization) is refused whole: no second delivery.
    with pytest.raises(IllegalTransition):
        job_finish(job=job, status=JobStatus.COMPLETED, cost=None)
    assert WebhookDelivery.objects.filter(job=job).count() == 1
    assert len(hooks.got(url)) == 1


def test_signature_verifies_with_the_readme_snippet_and_nothing_else(
        owner: Persona, outsider: Persona, hooks: Receiver) -> None:
    verify = readme_verifier()
    url = hooks.url()
    settled(cancelled_job(owner, url))
    [request] = hooks.got(url)
    header = request.headers["Brenia-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert request.json()["type"] == "job.cancelled"

    secret = secret_of(owner)
    assert verify(secret, header, request.body)
    assert not verify(secret, header, request.body.replace(b"cancelled", b"completed"))
    assert not verify(secret_of(outsider), header, request.body)
    assert not verify(secret, header, request.body, tolerance=-1)  # too old
    assert not verify(secret, "v1=abc", request.body)


def test_receiver_failing_twice_gets_retries_and_ends_delivered(
        owner: Persona, hooks: Receiver) -> None:
    url = hooks.url(answers=[500, 500, 200])
    delivery = settled(cancelled_job(owner, url))

    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts == 3 and delivery.last_status_code == 200
    assert delivery.delivered_at is not None and delivery.last_error == ""
    assert [r.json()["attempt"] for r in hooks.got(url)] == [1, 2, 3]
    assert {r.headers["Brenia-Delivery"] for r in hooks.got(url)} == {str(delivery.pk)}
    assert [a.status_code for a in WebhookAttempt.objects.filter(delivery=delivery)] == \
        [500, 500, 200]


def test_receiver_always_failing_ends_failed_after_the_last_attempt(
        owner: Persona, hooks: Receiver) -> None:
    url = hooks.url(always=503)
    delivery = settled(cancelled_job(owner, url))

    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == MAX_ATTEMPTS and delivery.last_status_code == 503
    assert delivery.last_error == "HTTP 503: receiver broke"
    assert len(hooks.got(url)) == MAX_ATTEMPTS


def test_slow_and_unreachable_receivers_are_retried(owner: Persona, hooks: Receiver) -> None:
    slow = hooks.url(answers=[HANG, 200])
    closed = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    late, never = cancelled_job(owner, slow), cancelled_job(owner, closed)

    delivery = settled(late)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2
    first = WebhookAttempt.objects.filter(delivery=delivery).order_by("created_at").first()
    assert first is not None and first.status_code is None
    assert first.error == f"No answer within {TIMEOUT:g} s."
    failed = settled(never)
    assert failed.status == DeliveryStatus.FAILED and failed.attempts == MAX_ATTEMPTS
    assert failed.last_status_code is None and failed.last_error.startswith("Could not connect")


def test_operator_redelivers_from_the_admin(owner: Persona, hooks: Receiver) -> None:
    url = hooks.url(always=500)
    job = cancelled_job(owner, url)
    assert settled(job).status == DeliveryStatus.FAILED
    hooks.heal(url)

    console = staff_console()
    delivery = WebhookDelivery.objects.get(job=job)
    page = console.get(f"/admin/outbound/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200 and b"receiver broke" in page.content
    redeliver(console, delivery)

    wait_until(lambda: WebhookDelivery.objects.get(job=job).status == DeliveryStatus.DELIVERED,
               what="the redelivery")
    again = hooks.got(url)[MAX_ATTEMPTS:]
    assert [r.json()["attempt"] for r in again] == [1]
    assert again[0].headers["Brenia-Delivery"] == str(WebhookDelivery.objects.get(job=job).pk)
    assert WebhookDelivery.objects.get(job=job).attempts == 1


def test_rotating_the_secret_changes_the_signature(owner: Persona, hooks: Receiver) -> None:
    verify = readme_verifier()
    old = secret_of(owner)
    response = owner.api().post_json("/api/account/webhook-secret/rotate")
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new != old and response.json()["rotated_at"] and secret_of(owner) == new

    url = hooks.url()
    settled(cancelled_job(owner, url))
    [request] = hooks.got(url)
    assert verify(new, request.headers["Brenia-Signature"], request.body)
    assert not verify(old, request.headers["Brenia-Signature"], request.body)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://169.254.169.254/latest"])
def test_internal_webhook_url_is_refused_at_job_creation(
        owner: Persona, settings: Any, url: str) -> None:
    settings.BRENIA_WEBHOOK_ALLOWED_HOSTS = []
    response = owner.api().post_json("/api/images/generate", {
        "model": "flux-schnell", "inputs": {"prompt": "x"}, "webhook_url": url})
    assert response.status_code == 422, response.content
    assert "webhook_url" in [e["field"] for e in response.json()["errors"]]
    assert not Job.objects.exists()


def test_address_turned_internal_fails_the_delivery_unsent(
        owner: Persona, hooks: Receiver) -> None:
    # Accepted once (say its DNS then pointed at a public address), internal now.
    delivery = settled(cancelled_job(owner, "http://169.254.169.254/hook"))

    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.last_status_code is None
    assert delivery.last_error == "Not sent: the webhook URL points to an internal address."


def test_other_users_deliveries_and_secret_are_never_visible(
        owner: Persona, outsider: Persona, hooks: Receiver) -> None:
    job = cancelled_job(owner, hooks.url())
    delivery = settled(job)
    mine = owner.api().get_json("/api/account/webhook-deliveries").json()
    assert [(d["id"], d["status"]) for d in mine] == [(str(delivery.pk), "delivered")]

    theirs = outsider.api()
    assert theirs.get_json("/api/account/webhook-deliveries").json() == []
    response = theirs.get_json(f"/api/account/webhook-deliveries?job={job.pk}")
    assert response.status_code == 404 and response.json()["code"] == "job_not_found"
    assert secret_of(outsider) != secret_of(owner)
    assert Client().get("/api/account/webhook-secret").status_code == 401


def test_deliveries_a_dead_process_left_behind_are_sent_on_recovery(
        owner: Persona, hooks: Receiver) -> None:
    unsent = hooks.url()
    # A process died after committing a finished job and its delivery row, before
    # handing the delivery to anything. (A job never ends without its row: both are
    # written in the job's terminal transaction.)
    orphan = make_job(owner, status=JobStatus.COMPLETED, webhook_url=unsent,
                      finished_at=timezone.now())
    assert webhook_delivery_create(job=orphan, event_type="completed")

    if not SCALEOUT:
        async_to_sync(runner.recover)()  # what a restarted server does first
    # Scale-out: the worker's periodic recovery finds it.

    assert settled(orphan).status == DeliveryStatus.DELIVERED
    assert [r.json()["type"] for r in hooks.got(unsent)] == ["job.completed"]
