"""Liveness, readiness and Prometheus metrics."""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.gateway.errors import json_response
from app.gateway.keys import DENSE, FOLLOWER, METRICS, READ_MODEL, SETTINGS


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready once the read model has caught up with the changelogs (serving no stale start).

    Search readiness (every item with its vector) is reported beside it, not part of it: a
    gateway without item vectors still answers searches, by text.
    """
    follower = request.app.get(FOLLOWER)
    ready = follower is None or follower.caught_up.is_set()
    body = {"ready": ready, "records": request.app[READ_MODEL].sizes()}
    dense = request.app.get(DENSE)
    if dense is not None:
        body["search"] = dense.status()
    elif request.app[SETTINGS].search.dense:
        body["search"] = {"ready": False}  # the query encoder is still loading
    return json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
