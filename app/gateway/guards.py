"""What every request must pass before its handler: readable text, an API key where the
shop set keys, and a JSON body on every POST.

- A URL whose percent-escapes decode to bytes that are not UTF-8 is refused: aiohttp would
  hand handlers U+FFFD in the query and the raw escapes in the path, so two different ids
  would silently name one thing. Header bytes that are not UTF-8 are refused too: they
  reach handlers as lone surrogates, which no encoder accepts.
- With `STREAMRANK_API_KEYS` set, the intake and read routes (every `/v1/` route but the
  admin API, which keeps its bearer token) need `X-API-Key` with one of the keys. Health,
  readiness, metrics and the API document stay open for probes and scrapers.
- A POST must say `Content-Type: application/json`: a web page may send `text/plain`,
  form or multipart bodies to any address without asking (no CORS preflight), so a shop's
  staff opening a hostile page would otherwise write events with their browser.
"""
from __future__ import annotations

import hmac
from urllib.parse import unquote_to_bytes

from aiohttp import web

from app.gateway.errors import Handler, error_response
from app.gateway.keys import SETTINGS

API_KEY_HEADER = "X-API-Key"
KEYED_PREFIX = "/v1/"
ADMIN_PREFIX = "/v1/admin/"
JSON = "application/json"


@web.middleware
async def guards(request: web.Request, handler: Handler) -> web.StreamResponse:
    refused = _unreadable(request) or _unauthorised(request) or _not_json(request)
    return refused if refused is not None else await handler(request)


def _unreadable(request: web.Request) -> web.Response | None:
    url = request.rel_url
    for part, raw in (("path", url.raw_path), ("query string", url.raw_query_string)):
        if "%" in raw and not _utf8(unquote_to_bytes(raw)):
            return error_response(400, f"the {part} has percent-escapes that are not UTF-8; "
                                       "encode text as UTF-8 before percent-encoding it")
    for name, value in request.headers.items():
        if not value.isascii() and not _utf8_text(value):
            return error_response(400, f"header {name!r} is not valid UTF-8")
    return None


def _unauthorised(request: web.Request) -> web.Response | None:
    keys = request.app[SETTINGS].gateway.api_key_list
    path = request.path
    if not keys or not path.startswith(KEYED_PREFIX) or path.startswith(ADMIN_PREFIX):
        return None
    # bytes, not str: compare_digest refuses non-ASCII text; every key is compared, so the
    # time taken does not tell which key a guess came close to
    given = request.headers.get(API_KEY_HEADER, "").encode("utf-8", "surrogateescape")
    if not any([hmac.compare_digest(given, key.encode()) for key in keys]):
        return error_response(401, f"a valid '{API_KEY_HEADER}' header is required: "
                                   "one of the keys in the gateway's STREAMRANK_API_KEYS")
    return None


def _not_json(request: web.Request) -> web.Response | None:
    if request.method != "POST" or request.match_info.http_exception is not None:
        return None  # no such route (or method): the router's 404 or 405 says so
    charset = request.charset
    if request.content_type != JSON or (charset is not None and charset.lower() not in ("utf-8", "utf8")):
        got = request.headers.get("Content-Type", "none")
        return error_response(415, f"the body must be sent as 'Content-Type: {JSON}' (UTF-8); got {got[:60]!r}")
    return None


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _utf8_text(value: str) -> bool:
    """Whether a header value aiohttp decoded holds only what UTF-8 bytes decode to (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
