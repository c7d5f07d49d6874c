"""GET /v1/recommend, /v1/items/{id}/similar, /v1/search: ranked items from memory, with sponsored slots."""
from __future__ import annotations

import itertools
import os
import time
from typing import Any

from aiohttp import web

from app.gateway.errors import json_response
from app.gateway.keys import ADS, DENSE, READ_MODEL, SERVING
from app.gateway.params import float_param, id_param, int_param, path_id, text_param
from app.gateway.serving import Filters, Ranking
from models.ads.ctr import page_context
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


def _item(entries: dict[str, Any], item_id: str, score: float | None) -> dict[str, Any]:
    entry = entries.get(item_id)
    live = entry if catalog.is_live(entry) else None
    return {"item_id": item_id, "score": score,
            "title": live.get("title") if live is not None else None,
            "price": live.get("price") if live is not None else None}


def _ranked(request: web.Request, ranking: Ranking, **extra: object) -> web.Response:
    entries = request.app[READ_MODEL].tables[catalog.NAME]
    items = [_item(entries, item_id, score) for item_id, score in ranking.items]
    return _answer(items, ranking, extra)


def _answer(items: list[dict[str, Any]], ranking: Ranking, extra: dict[str, object]) -> web.Response:
    return json_response({"items": items, "model_version": ranking.version,
                          "request_id": f"{_ID_PREFIX}{next(_ID_COUNTER):016x}", **extra})


def _depth(request: web.Request, k: int) -> int:
    """How many organic results to ask for: with ads running, an ad's item may come from just
    below the page, and the page still holds k results once it is shown only as the ad."""
    ads = request.app[ADS]
    return k + ads.config.max_ads if ads.enabled and ads.campaigns else k


def _with_ads(request: web.Request, ranking: Ranking, k: int, context: str, text: str | None,
              filters: Filters, **extra: object) -> web.Response:
    """The page with its sponsored slots, added after the ranking (and its cache): each ad's
    token is signed for this answer alone."""
    ads = request.app[ADS]
    if not (ads.enabled and ads.campaigns) or ads.holds_no_ad(ranking.source):
        return _ranked(request, Ranking(ranking.items[:k], ranking.version, ranking.strategy), **extra)
    started = time.perf_counter()
    now = time.time()
    entries = ads.read_model.tables[catalog.NAME]

    def categories() -> list[str]:  # what the page is about, for campaigns that target categories
        if filters.category is not None:
            return [filters.category]
        return [c for i, _ in ranking.items[:k] if (c := (entries.get(i) or {}).get("category"))]

    results = ads.page(ranking.items, k, context, text, categories, now, ranking.source)
    if not results:  # most pages: no ad wins, the organic answer as it was
        ads.seconds += time.perf_counter() - started
        return _ranked(request, Ranking(ranking.items[:k], ranking.version, ranking.strategy), **extra)
    impressions = ads.impressions
    items = [_item(entries, item_id, score) for item_id, score, _, _ in results]
    for item, (item_id, _, campaign_id, price) in zip(items, results):
        if campaign_id is not None:
            item.update(sponsored=True, campaign_id=campaign_id, ad_token=ads.token(campaign_id, item_id, price, now))
            impressions[campaign_id] = impressions.get(campaign_id, 0) + 1
    ads.seconds += time.perf_counter() - started  # the page's entries too: an organic page builds them alike
    return _answer(items, ranking, extra)


async def recommend(request: web.Request) -> web.Response:
    user_id = id_param(request, "user_id")
    k = int_param(request, "k", default=10, lo=1, hi=MAX_K)
    filters = _filters(request)
    ranking = await request.app[SERVING].recommend(user_id, _depth(request, k), filters)
    return _with_ads(request, ranking, k, page_context(None), None, filters, user_id=user_id, strategy=ranking.strategy)


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
    n = _depth(request, k)
    model = dense.model if dense is not None else None  # read once: a request ranks with one version
    if dense is not None and model is not None:
        hits = await dense.rank(model, query, depth, serving.allow(filters), serving.item_signals)
        ranking = serving.search_ranked(hits, model.version, user_id, n)
    else:
        dense_hits = await dense.search(query, depth) if dense is not None else []
        ranking = serving.search(query, user_id, n, filters, dense_hits, dense.version if dense is not None else None)
    return _with_ads(request, ranking, k, page_context(query), query, filters,
                     query=query, user_id=user_id)
