"""``/_emulator/*``: inspect and steer a running emulator over HTTP (no auth).

GET  /_emulator/stats              counters, queues, runners, cold loads, webhooks, faults
GET  /_emulator/requests           every request's snapshot (``?endpoint=`` filters)
GET  /_emulator/requests/{id}      one request's snapshot, with its logs
GET  /_emulator/runners            per app: each runner's hints, cold loads, busy flag
GET  /_emulator/webhooks           webhook deliveries and their attempts
GET  /_emulator/faults             the live fault plan
POST /_emulator/faults             ``{target: spec | null, …}`` sets (null clears) targets;
                                   ``?replace=1`` replaces the whole plan
POST /_emulator/reset              forget requests/counters/files/caches, faults back to config
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .state import FAL_STATE


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAL_STATE].stats())


async def requests(request: web.Request) -> web.Response:
    endpoint = request.query.get("endpoint")
    items = [item for item in request.app[FAL_STATE].request_list()
             if endpoint is None or item["endpoint"] == endpoint]
    return web.json_response({"requests": items})


async def request_detail(request: web.Request) -> web.Response:
    state = request.app[FAL_STATE]
    record = state.requests.get(request.match_info["request_id"])
    if record is None:
        return web.json_response({"detail": "Request not found"}, status=404)
    return web.json_response({**record.snapshot(), "logs": record.logs,
                              "metrics": record.metrics})


async def runners(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAL_STATE].runner_stats())


async def webhooks(request: web.Request) -> web.Response:
    return web.json_response({"deliveries": request.app[FAL_STATE].webhook_deliveries()})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAL_STATE].faults.snapshot())


async def set_faults(request: web.Request) -> web.Response:
    state = request.app[FAL_STATE]
    try:
        plan: Any = await request.json()
    except ValueError:
        return web.json_response({"detail": "body must be JSON"}, status=400)
    if not isinstance(plan, dict):
        return web.json_response({"detail": "body must be an object of target → spec"},
                                 status=400)
    try:
        if request.query.get("replace") in ("1", "true"):
            state.replace_faults(plan)
        else:
            for target, spec in plan.items():
                state.set_faults(str(target), spec)
    except (ValueError, TypeError) as exc:
        return web.json_response({"detail": str(exc)}, status=400)
    return web.json_response(state.faults.snapshot())


async def reset(request: web.Request) -> web.Response:
    await request.app[FAL_STATE].areset()
    return web.json_response({"status": "reset"})


def add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/stats", stats)
    app.router.add_get("/_emulator/requests", requests)
    app.router.add_get("/_emulator/requests/{request_id}", request_detail)
    app.router.add_get("/_emulator/runners", runners)
    app.router.add_get("/_emulator/webhooks", webhooks)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_post("/_emulator/faults", set_faults)
    app.router.add_post("/_emulator/reset", reset)
