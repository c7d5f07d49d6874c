"""GET /, /ops, /pages/*: the storefront and operations pages, and /ops/metrics, the JSON
view of the metrics the operations page draws.

The pages are static files calling the public API from the browser, so they show exactly
what a client gets. /ops/metrics holds no state of its own: it reads this gateway's
registry and scrapes the worker's and the learner's /metrics (their ports in settings, on
this host, as `make demo` runs them), keeping the few families the page uses; rates and
the charts' history are computed in the page from successive reads.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Metric

from app.gateway.errors import json_response
from app.gateway.keys import DENSE, METRICS, SETTINGS
from models.errors import NotFound

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
# Scripts and styles come only from this gateway (the pages hold no inline script), so an
# item title that smuggled markup past the page's escaping still could not run code.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
# What the operations page reads (family names, without `_total`).
FAMILIES = frozenset({
    "streamrank_events_processed", "streamrank_event_processing_lag_seconds", "streamrank_dead_letters",
    "streamrank_http_events_accepted", "streamrank_http_events_rejected", "streamrank_online_metric",
    "streamrank_model_decisions", "streamrank_learner_serving_version", "streamrank_gateway_online_version",
    "streamrank_model_swaps", "streamrank_model_records_rejected", "streamrank_model_load_failures",
    "streamrank_gateway_state_records",
})
ASSETS = {"common.js": "text/javascript; charset=utf-8", "shop.js": "text/javascript; charset=utf-8",
          "ops.js": "text/javascript; charset=utf-8", "pages.css": "text/css; charset=utf-8"}
SCRAPE_TIMEOUT_S = 0.5  # a stopped worker or learner must not stall the page's refresh


async def storefront(request: web.Request) -> web.FileResponse:
    return _page("shop.html")


async def operations(request: web.Request) -> web.FileResponse:
    return _page("ops.html")


async def asset(request: web.Request) -> web.FileResponse:
    """A script or style of the pages: only the files listed in ASSETS (no path tricks)."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise NotFound(f"no page file {name!r}")
    return web.FileResponse(PAGES_DIR / name, headers={**SECURITY_HEADERS, "Content-Type": ASSETS[name]})


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(PAGES_DIR / name, headers={**SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8"})


async def ops_metrics(request: web.Request) -> web.Response:
    """{"ts": s, "sources": {name: {"up": bool, "error"?: str, "samples": [[name, labels, value]]}}, "search_version"}."""
    settings = request.app[SETTINGS]
    sources: dict[str, dict[str, Any]] = {
        "gateway": {"up": True, "samples": _samples(request.app[METRICS].registry.collect())}}
    for name, port in (("worker", settings.worker.metrics_port), ("learner", settings.learner.metrics_port)):
        sources[name] = await _scrape(port)
    dense = request.app.get(DENSE)  # what /v1/search answers as model_version
    return json_response({"ts": time.time(), "sources": sources,
                          "search_version": dense.status().get("model_version") if dense is not None else None})


async def _scrape(port: int) -> dict[str, Any]:
    if port <= 0:
        return {"up": False, "error": "no metrics port set", "samples": []}
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)) as session:
            async with session.get(url) as response:
                text = await response.text()
        return {"up": True, "samples": _samples(text_string_to_metric_families(text))}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"up": False, "error": f"{url}: {type(exc).__name__} {exc}"[:200], "samples": []}


def _samples(families: Iterable[Metric]) -> list[list[Any]]:
    return [[s.name, s.labels, s.value] for family in families if family.name.removesuffix("_total") in FAMILIES
            for s in family.samples if not s.name.endswith("_created")]
