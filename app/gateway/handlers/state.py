"""GET /v1/users/{id}, /v1/items/{id}, /v1/items/popular: table state from memory."""
from __future__ import annotations

from aiohttp import web

from app.gateway.errors import json_response
from app.gateway.keys import READ_MODEL
from app.gateway.params import int_param, path_id
from models.errors import NotFound
from tables import catalog


async def get_user(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    view = request.app[READ_MODEL].user(user_id)
    if view is None:
        raise NotFound(f"no events seen for user {user_id!r}")
    return json_response(view)


async def get_item(request: web.Request) -> web.Response:
    item_id = path_id(request, "item_id")
    view = request.app[READ_MODEL].item(item_id)
    if view is None:
        raise NotFound(f"item {item_id!r} is neither in the catalog nor in any event")
    return json_response(view)


async def get_popular(request: web.Request) -> web.Response:
    k = int_param(request, "k", default=10, lo=1, hi=100)
    model = request.app[READ_MODEL]
    entries = model.tables[catalog.NAME]
    items = []
    for item_id, score in model.popular(k):
        entry = entries.get(item_id)
        live = catalog.is_live(entry)
        items.append({"item_id": item_id, "score": score, "title": entry.get("title") if live else None,
                      "price": entry.get("price") if live else None})
    return json_response({"items": items, "as_of_ts": model.clock})
