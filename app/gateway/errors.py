"""Turning failures into JSON HTTP errors, and timing every request."""
from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from models.errors import BrokerUnavailable, NotFound, PayloadTooLarge, ValidationError
from app.gateway.keys import METRICS, SETTINGS

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **extra}, status=status)


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    try:
        response = await handler(request)
    except PayloadTooLarge as exc:
        response = error_response(413, exc.reason)
    except ValidationError as exc:
        response = error_response(400, exc.reason)
    except NotFound as exc:
        response = error_response(404, str(exc))
    except BrokerUnavailable as exc:
        response = error_response(503, str(exc))
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].limits.request_bytes
        response = error_response(413, f"request body over the limit of {limit} bytes")
    except web.HTTPException as exc:
        response = error_response(exc.status, exc.reason)
    except Exception:  # a bug must answer 500 in JSON, never drop the connection
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_response(500, "internal error; see the gateway log")
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    count, latency = request.app[METRICS].http_request(name, request.method, response.status)
    count.inc()
    latency.observe(time.perf_counter() - start)
    return response
