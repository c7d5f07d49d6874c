"""GET /v1/recommend, /v1/items/{id}/similar, /v1/search: ranked items from memory."""
from __future__ import annotations

import itertools
import os

from aiohttp import web

from app.gateway.errors import json_response
from app.gateway.keys import DENSE, READ_MODEL, SERVING
from app.gateway.params import float_param, id_param, int_param, path_id, text_param
from app.gateway.serving import Filters, Ranking
from models.errors import ValidationError
from tables import catalog

MAX_K = 100
MAX_QUERY_CHARS = 512
# Request ids: a random prefix per process and a counter (unique across gateways and
# restarts, and a tenth of the cost of uuid4 on every answer).
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


def _filters(request: web.Request) -> Filters:
    in_stock = request.query.get("in_stock", "false").lower()
    if in_stock not in ("true", "false", "1", "0"):
        raise ValidationError("'in_stock' must be true or false")
    return Filters(in_stock=in_stock in ("true", "1"), category=text_param(request, "category"),
                   min_price=float_param(request, "min_price"), max_price=float_param(request, "max_price"))


def _ranked(request: web.Request, ranking: Ranking, **extra: object) -> web.Response:
    entries = request.app[READ_MODEL].tables[catalog.NAME]
    items = []
    for item_id, score in ranking.items:
        entry = entries.get(item_id)
        live = entry if catalog.is_live(entry) else None
        items.append({"item_id": item_id, "score": score,
                      "title": live.get("title") if live is not None else None,
                      "price": live.get("price") if live is not None else None})
    return json_response({"items": items, "model_version": ranking.version,
                          "request_id": f"{_ID_PREFIX}{next(_ID_COUNTER):016x}", **extra})


async def recommend(request: web.Request) -> web.Response:
    user_id = id_param(request, "user_id")
    k = int_param(request, "k", default=10, lo=1, hi=MAX_K)
    ranking = await request.app[SERVING].recommend(user_id, k, _filters(request))
    return _ranked(request, ranking, user_id=user_id, strategy=ranking.strategy)


async def similar(request: web.Request) -> web.Response:
    item_id = path_id(request, "item_id")
    k = int_param(request, "k", default=10, lo=1, hi=MAX_K)
    return _ranked(request, await request.app[SERVING].similar(item_id, k, _filters(request)), item_id=item_id)


async def search(request: web.Request) -> web.Response:
    query = (text_param(request, "q", MAX_QUERY_CHARS) or "").strip()
    if not query:
        raise ValidationError("'q' is required")
    user_id = id_param(request, "user_id")
    k = int_param(request, "k", default=10, lo=1, hi=MAX_K)
    filters = _filters(request)
    serving, dense = request.app[SERVING], request.app.get(DENSE)
    depth = max(5 * k, 50)  # room for the filters and the personal nudge
    model = dense.model if dense is not None else None  # read once: a request ranks with one version
    if dense is not None and model is not None:
        hits = await dense.rank(model, query, depth, serving.allow(filters), serving.item_signals)
        ranking = serving.search_ranked(hits, model.version, user_id, k)
    else:
        dense_hits = await dense.search(query, depth) if dense is not None else []
        ranking = serving.search(query, user_id, k, filters, dense_hits, dense.version if dense is not None else None)
    return _ranked(request, ranking, query=query, user_id=user_id)
