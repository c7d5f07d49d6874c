"""GET /openapi.json: the API described for clients and for schemathesis."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from app.gateway.errors import json_response
from app.gateway.guards import API_KEY_HEADER
from app.gateway.serving import FILTER_SCAN
from tables.wire.records import CATALOG_OPS, EVENT_TYPES, MAX_ID_CHARS, MAX_TEXT_CHARS, MAX_TARGETS

ERROR = {"$ref": "#/components/schemas/Error"}
RANKED = {"$ref": "#/components/schemas/Ranked"}


def _param(name: str, schema: dict[str, Any], where: str = "query", required: bool = False, doc: str = "") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": doc}


ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}
K = _param("k", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}, doc="how many items")
FILTERS = [
    _param("in_stock", {"type": "string", "enum": ["true", "false", "1", "0"]}, doc="only items with stock > 0"),
    _param("category", {"type": "string", "maxLength": MAX_TEXT_CHARS}, doc="only items of this catalog category"),
    _param("min_price", {"type": "number", "minimum": 0}),
    _param("max_price", {"type": "number", "minimum": 0}),
]
FILTERED = (f"Filters are applied to the best {FILTER_SCAN} candidates of each model, never to the whole catalog: "
            "a filter that few of them pass returns fewer than k items.")
# Intake and read routes: `X-API-Key` when the gateway has STREAMRANK_API_KEYS, else open.
KEYED = [{"apiKey": []}, {}]


def _error(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": "error", "content": {"application/json": {"schema": ERROR}}} for code in codes}


def _get(summary: str, params: list[dict[str, Any]], ok: dict[str, Any], *codes: int, keyed: bool = True,
         doc: str = "") -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}},
                                 **_error(*codes, *((401,) if keyed else ()))}
    operation = {"summary": summary, "description": doc, "parameters": params, "responses": responses}
    return {"get": {**operation, "security": KEYED} if keyed else operation}


def _page(summary: str, kind: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A page or one of its files (no key needed: the page sends the API key it is given)."""
    ok = {"200": {"description": "OK", "content": {kind: {"schema": {"type": "string"}}}}}
    return {"get": {"summary": summary, "parameters": params or [], "responses": {**ok, **_error(404)}}}


def _post(summary: str, schema_ref: str) -> dict[str, Any]:
    item = {"$ref": f"#/components/schemas/{schema_ref}"}
    body = {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]}
    responses = {"202": {"description": "accepted and produced to Kafka",
                         "content": {"application/json": {"schema": {"type": "object", "properties": {
                             "accepted": {"type": "integer"}}}}}}}
    responses.update(_error(400, 401, 413, 415, 503))
    return {"post": {"summary": summary, "security": KEYED, "requestBody": {"required": True, "content": {
        "application/json": {"schema": body}}}, "responses": responses}}


OBJ = {"type": "object"}
SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "streamrank gateway", "version": "1"},
    "paths": {
        "/v1/events": _post("Send user events (all or none are accepted)", "Event"),
        "/v1/catalog": _post("Send catalog changes (all or none are accepted)", "CatalogChange"),
        "/v1/campaigns": _post("Create or replace sponsored-products campaigns (all or none are accepted)",
                               "Campaign"),
        "/v1/campaigns/{campaign_id}": _get("A campaign and today's spend, clicks and budget left",
                                            [_param("campaign_id", ID, "path", True)], OBJ, 400, 404),
        "/v1/users/{user_id}": _get("A user's profile", [_param("user_id", ID, "path", True)], OBJ, 400, 404),
        "/v1/items/popular": _get("Items by time-decayed popularity", [K], OBJ, 400),
        "/v1/items/{item_id}": _get("An item's catalog entry and statistics",
                                    [_param("item_id", ID, "path", True)], OBJ, 400, 404),
        "/v1/items/{item_id}/similar": _get("Items people take after this one",
                                            [_param("item_id", ID, "path", True), K, *FILTERS],
                                            RANKED, 400, doc=FILTERED),
        "/v1/recommend": _get("Recommendations for a user (trending when the user is unknown)",
                              [_param("user_id", ID), K, *FILTERS], RANKED, 400, doc=FILTERED),
        "/v1/search": _get("Search the catalog, personalised when user_id is given",
                           [_param("q", {"type": "string", "minLength": 1, "maxLength": 512}, required=True),
                            _param("user_id", ID), K, *FILTERS], RANKED, 400),
        "/healthz": _get("Liveness", [], OBJ, keyed=False),
        "/readyz": _get("Readiness: caught up with the table changelogs", [], OBJ, 503, keyed=False),
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": _get("This document", [], OBJ, keyed=False),
        "/": _page("The storefront page: search, a shopper's recommendations, trending", "text/html"),
        "/ops": _page("The operations page: events, lag, dead letters, model versions, rollback", "text/html"),
        "/ops/metrics": _get("The metrics the operations page draws, from this gateway's and the worker's and "
                             "learner's /metrics", [], OBJ, keyed=False),
        "/pages/{name}": _page("A static file of the pages (script, style)", "text/plain",
                               [_param("name", {"type": "string"}, "path", True)]),
        "/v1/admin/model": {
            "get": {"summary": "The online model version served and the versions held (admin token)",
                    "security": [{"bearer": []}], "responses": {
                        "200": {"description": "OK", "content": {"application/json": {"schema": OBJ}}},
                        **_error(401, 403)}},
            "post": {"summary": "Ask the learner to serve a held version again (rollback or promote; admin token)",
                     "security": [{"bearer": []}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "$ref": "#/components/schemas/ModelCommand"}}}},
                     "responses": {
                         "202": {"description": "sent to the learner",
                                 "content": {"application/json": {"schema": OBJ}}},
                         **_error(400, 401, 403, 415, 503)}},
        },
    },
    "components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "description": "STREAMRANK_ADMIN_TOKEN"},
        "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                   "description": "One of STREAMRANK_API_KEYS, needed by the intake and read routes when the "
                                  "gateway has keys (401 without); health, readiness, metrics and this "
                                  "document are always open"}}, "schemas": {
        "ModelCommand": {"type": "object", "required": ["action", "version"], "properties": {
            "action": {"type": "string", "enum": ["rollback", "promote"]},
            "version": {"type": "integer", "minimum": 1}}},
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "invalid": {"type": "array", "items": OBJ}}},
        "Ranked": {"type": "object", "required": ["items", "model_version", "request_id"], "properties": {
            "items": {"type": "array", "items": {"type": "object", "required": ["item_id", "score"], "properties": {
                "item_id": {"type": "string"}, "score": {"type": "number"},
                "title": {"type": "string", "nullable": True}, "price": {"type": "number", "nullable": True},
                # sponsored results only: send ad_token back on the click event
                "sponsored": {"type": "boolean"}, "campaign_id": {"type": "string"},
                "ad_token": {"type": "string"}}}},
            "model_version": {"type": "string"}, "request_id": {"type": "string"}}},
        "Event": {"type": "object", "required": ["event_id", "user_id", "type"], "properties": {
            "event_id": {"type": "string"}, "user_id": {"type": "string"},
            "type": {"type": "string", "enum": list(EVENT_TYPES)}, "item_id": {"type": "string"},
            "query": {"type": "string"}, "position": {"type": "integer", "minimum": 0},
            "request_id": {"type": "string"}, "ts": {"type": "number", "minimum": 0},
            "ad_token": {"type": "string", "description": "a click on a sponsored result: the result's ad_token"}}},
        "Campaign": {"type": "object", "required": ["campaign_id", "item_id", "bid_per_click", "daily_budget"],
                     "properties": {
            "campaign_id": ID, "item_id": ID, "bid_per_click": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
            "daily_budget": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
            "keywords": {"type": "array", "maxItems": MAX_TARGETS, "items": ID},
            "categories": {"type": "array", "maxItems": MAX_TARGETS, "items": ID},
            "start_ts": {"type": "number", "minimum": 0}, "stop_ts": {"type": "number", "minimum": 0}}},
        "CatalogChange": {"type": "object", "required": ["item_id"], "properties": {
            "op": {"type": "string", "enum": list(CATALOG_OPS)}, "item_id": {"type": "string"},
            "title": {"type": "string"}, "category": {"type": "string"}, "price": {"type": "number", "minimum": 0},
            "stock": {"type": "integer", "minimum": 0}, "attributes": OBJ, "ts": {"type": "number"}}},
    }},
}


async def spec(request: web.Request) -> web.Response:
    return json_response(SPEC)
