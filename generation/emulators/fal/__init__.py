"""fal.ai queue API emulator: the stock fal-client cannot tell it from queue.fal.run.

Follows /work/shared/protocols/fal-queue.md. Public interface::

    app = create_app(FalEmulatorConfig(latency="fast", faults=None, api_keys=None,
                                       runners=2, cache_size=2))
    state = app[FAL_STATE]   # FalEmulatorState: stats(), set_faults(), reset(), …

Modules: ``app`` (queue routes), ``control`` (``/_emulator/*``), ``config`` (latency
profiles), ``queue`` (lanes, runners, caches, dispatch), ``models`` + ``validation``
(input schemas, outputs), ``render`` (Pillow), ``media`` (input fetch, file store),
``webhooks`` (signing, delivery), ``faults`` (fault plan; its docstring is the spec),
``records`` (request record, outcomes), ``state`` (everything together).

Choices made where the spec is UNCONFIRMED (§8 and inline) — change them here if the
real service turns out to differ:

1.  Result before completion: ``400 {"detail": "Request is still in progress"}``.
2.  Cancel: a queued request leaves the queue and becomes COMPLETED with
    ``error_type: "client_cancelled"``; its result is ``499 {"detail", "error_type":
    "client_cancelled"}``. A running request gets 202 too and stops at its next step
    (cold load or progress tick) with the same outcome. Cancelling anything COMPLETED
    (cancelled ones included) is ``400 {"status": "ALREADY_COMPLETED"}``.
3.  Unknown request id — or one submitted with another key id, or asked for under
    another app's path — is ``404 {"status": "NOT_FOUND"}`` on every request route.
    Unknown app: ``404 {"detail": "Application '<owner/alias>' not found"}``; known
    app with an unknown path: ``404 {"detail": "Endpoint '<id>' not found"}``; both at
    submit, no request created. Other paths: ``404 {"detail": "Not Found"}``.
4.  Submit never validates the input (only auth, endpoint, headers, query): it is
    accepted and fails on the runner as COMPLETED with ``error: "Invalid status code:
    422"`` and ``error_type`` = the first detail item's ``type``; a non-JSON body gives
    a ``json_invalid`` item. Bad ``X-Fal-Queue-Priority`` / ``X-Fal-Request-Timeout``
    (≤ 0.1 s or not a number) / ``fal_max_queue_length`` are ``400`` bad_request.
5.  SSE stream: one ``data:`` event per change (status, queue position, new logs);
    each event's ``logs`` holds only the entries new since the previous event
    (deltas); ``: ping`` every ``keepalive_s`` (15 s); closed after COMPLETED.
6.  ``timings`` is ``{"inference": seconds}``. Preset sizes 1024², 512², 768x1024,
    576x1024, 1024x768, 1024x576. ``ImageSize`` sides 1…14142, default 512. flux-lora:
    steps 1-50, guidance 0-35; image-to-image: steps 1-50 (default 40), guidance 1-20,
    strength 0.01-1, num_images 1-4, output the input's size; ``seed`` any int.
    face-swap takes only ``base_image_url``, ``swap_image_url``, ``sync_mode`` and
    answers PNG. birefnet v2 accepts ``operating_resolution`` ``"2304x2304"`` too.
    The ``image_size`` union reports a plain ``literal_error`` (strings, other types) or
    nested ``ImageSize`` errors (objects), not pydantic's per-member union errors.
7.  Webhooks: sent for every completion (OK, ERROR, cancelled, timed out);
    ``gateway_request_id`` = ``request_id``; ``X-Fal-Webhook-User-Id`` = the key id
    (``bearer-<hash>`` for Bearer tokens); any 2xx acknowledges, anything else
    (3xx included) or a network error is retried; loopback targets are allowed.
    Attempts in total (first included): instant 4, fast 5, realistic 11; delay before
    retry n is ``backoff·2^(n-1)`` capped at 60 s (0.02 / 0.05 / 2 s); per-attempt
    timeout 5 / 5 / 15 s. Each attempt is signed afresh (new timestamp).
8.  Nothing expires: results stay; files stay until ``max_files`` newer ones exist.
9.  Auth: missing, malformed (``Key`` without ``id:secret``) and refused keys all get
    the documented ``401 {"detail": "No user found for Key ID and Secret"}``; keyless
    calls are not accepted. Requests are private to the key id that submitted them.
10. IN_QUEUE statuses carry no ``logs`` key; COMPLETED always carries ``metrics``
    (``{}`` when no runner ever started the request).
11. ``fal_max_queue_length=N``: 429 (plain ``detail``) when N or more requests already
    wait in the app's queue, both lanes counted.
12. One queue and one runner pool per app (``[ns/]owner/alias``), not per endpoint;
    ``queue_position`` counts the requests ahead, all normal ones included for a low one.
13. Start timeout expiry: COMPLETED with ``error_type: "request_timeout"``; result
    ``504 {"detail", "error_type": "request_timeout"}`` with ``X-Fal-Request-Timeout-Type:
    user`` and ``X-Fal-Error-Type``. Server-side re-queueing of failed runner attempts
    is not emulated (nothing to retry), so ``gateway_request_id`` never differs.
14. Fault answers: 429 is ``concurrent_requests_limit`` + ``X-Fal-Needs-Retry: 1``;
    hard 500/502/503/504 carry ``internal_error`` / ``runner_incomplete_response`` /
    ``runner_connection_error`` / ``startup_timeout``; a runner error is 500
    ``runner_server_error``; a hang gives up as 504 ``generation_timeout``.
15. ``X-Fal-Runner-Hints`` (the runner's cached keys) is sent on successful results.
16. Cache keys: each LoRA path of the request, else the endpoint id; hints match
    exactly. Without a matching idle runner the request goes to the free runner idle
    longest (the "standard routing").
17. NSFW fault: ``has_nsfw_concepts`` is true; images are black only while
    ``enable_safety_checker`` is on. Content-policy refusal: 422 item
    ``{"type": "content_policy_violation", "loc": ["body", "prompt"] (or the first
    field), "msg", "input", "ctx": {"reason"}}``.
"""

from .app import create_app
from .config import FalEmulatorConfig
from .state import FAL_STATE, FalEmulatorState

__all__ = ["FAL_STATE", "FalEmulatorConfig", "FalEmulatorState", "create_app"]
