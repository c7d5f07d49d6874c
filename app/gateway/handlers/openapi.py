"""GET /openapi.json: the API described for clients and for schemathesis."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from app.gateway.errors import json_response
from app.records import CATALOG_OPS, EVENT_TYPES

ERROR = {"$ref": "#/components/schemas/Error"}
RANKED = {"$ref": "#/components/schemas/Ranked"}


def _param(name: str, schema: dict[str, Any], where: str = "query", required: bool = False, doc: str = "") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": doc}


K = _param("k", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}, doc="how many items")
FILTERS = [
    _param("in_stock", {"type": "string", "enum": ["true", "false", "1", "0"]}, doc="only items with stock > 0"),
    _param("category", {"type": "string"}, doc="only items of this catalog category"),
    _param("min_price", {"type": "number", "minimum": 0}),
    _param("max_price", {"type": "number", "minimum": 0}),
]


def _get(summary: str, params: list[dict[str, Any]], ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for code in codes:
        responses[str(code)] = {"description": "error", "content": {"application/json": {"schema": ERROR}}}
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


def _post(summary: str, schema_ref: str) -> dict[str, Any]:
    item = {"$ref": f"#/components/schemas/{schema_ref}"}
    body = {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]}
    responses = {"202": {"description": "accepted and produced to Kafka",
                         "content": {"application/json": {"schema": {"type": "object", "properties": {
                             "accepted": {"type": "integer"}}}}}}}
    for code in (400, 413, 503):
        responses[str(code)] = {"description": "error", "content": {"application/json": {"schema": ERROR}}}
    return {"post": {"summary": summary, "requestBody": {"required": True, "content": {
        "application/json": {"schema": body}}}, "responses": responses}}


OBJ = {"type": "object"}
SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "streamrank gateway", "version": "1"},
    "paths": {
        "/v1/events": _post("Send user events (all or none are accepted)", "Event"),
        "/v1/catalog": _post("Send catalog changes (all or none are accepted)", "CatalogChange"),
        "/v1/users/{user_id}": _get("A user's profile", [_param("user_id", {"type": "string"}, "path", True)], OBJ, 404),
        "/v1/items/popular": _get("Items by time-decayed popularity", [K], OBJ, 400),
        "/v1/items/{item_id}": _get("An item's catalog entry and statistics",
                                    [_param("item_id", {"type": "string"}, "path", True)], OBJ, 404),
        "/v1/items/{item_id}/similar": _get("Items people take after this one",
                                            [_param("item_id", {"type": "string"}, "path", True), K, *FILTERS],
                                            RANKED, 400),
        "/v1/recommend": _get("Recommendations for a user (trending when the user is unknown)",
                              [_param("user_id", {"type": "string"}), K, *FILTERS], RANKED, 400),
        "/v1/search": _get("Search the catalog, personalised when user_id is given",
                           [_param("q", {"type": "string", "minLength": 1, "maxLength": 512}, required=True),
                            _param("user_id", {"type": "string"}), K, *FILTERS], RANKED, 400),
        "/healthz": _get("Liveness", [], OBJ),
        "/readyz": _get("Readiness: caught up with the table changelogs", [], OBJ, 503),
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
            "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": _get("This document", [], OBJ),
        "/v1/admin/model": {
            "get": {"summary": "The online model version served and the versions held (admin token)",
                    "security": [{"bearer": []}], "responses": {
                        "200": {"description": "OK", "content": {"application/json": {"schema": OBJ}}},
                        **{str(c): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
                           for c in (401, 403)}}},
            "post": {"summary": "Ask the learner to serve a held version again (rollback or promote; admin token)",
                     "security": [{"bearer": []}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "$ref": "#/components/schemas/ModelCommand"}}}},
                     "responses": {
                         "202": {"description": "sent to the learner",
                                 "content": {"application/json": {"schema": OBJ}}},
                         **{str(c): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
                            for c in (400, 401, 403, 503)}}},
        },
    },
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": {
        "ModelCommand": {"type": "object", "required": ["action", "version"], "properties": {
            "action": {"type": "string", "enum": ["rollback", "promote"]},
            "version": {"type": "integer", "minimum": 1}}},
        "Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "invalid": {"type": "array", "items": OBJ}}},
        "Ranked": {"type": "object", "required": ["items", "model_version", "request_id"], "properties": {
            "items": {"type": "array", "items": {"type": "object", "required": ["item_id", "score"], "properties": {
                "item_id": {"type": "string"}, "score": {"type": "number"},
                "title": {"type": "string", "nullable": True}, "price": {"type": "number", "nullable": True}}}},
            "model_version": {"type": "string"}, "request_id": {"type": "string"}}},
        "Event": {"type": "object", "required": ["event_id", "user_id", "type"], "properties": {
            "event_id": {"type": "string"}, "user_id": {"type": "string"},
            "type": {"type": "string", "enum": list(EVENT_TYPES)}, "item_id": {"type": "string"},
            "query": {"type": "string"}, "position": {"type": "integer", "minimum": 0},
            "request_id": {"type": "string"}, "ts": {"type": "number", "minimum": 0}}},
        "CatalogChange": {"type": "object", "required": ["item_id"], "properties": {
            "op": {"type": "string", "enum": list(CATALOG_OPS)}, "item_id": {"type": "string"},
            "title": {"type": "string"}, "category": {"type": "string"}, "price": {"type": "number", "minimum": 0},
            "stock": {"type": "integer", "minimum": 0}, "attributes": OBJ, "ts": {"type": "number"}}},
    }},
}


async def spec(request: web.Request) -> web.Response:
    return json_response(SPEC)
