"""The gateway's URL map."""
from __future__ import annotations

from aiohttp import web

from app.gateway.handlers import admin, campaigns, health, intake, openapi, pages, ranking, state


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/events", intake.post_events)
    app.router.add_post("/v1/catalog", intake.post_catalog)
    app.router.add_post("/v1/campaigns", intake.post_campaigns)
    app.router.add_get("/v1/campaigns/{campaign_id}", campaigns.get_campaign)
    app.router.add_get("/v1/users/{user_id}", state.get_user)
    app.router.add_get("/v1/items/popular", state.get_popular)
    app.router.add_get("/v1/items/{item_id}", state.get_item)
    app.router.add_get("/v1/items/{item_id}/similar", ranking.similar)
    app.router.add_get("/v1/recommend", ranking.recommend)
    app.router.add_get("/v1/search", ranking.search)
    app.router.add_get("/v1/admin/model", admin.model_status)
    app.router.add_post("/v1/admin/model", admin.model_command)
    app.router.add_get("/openapi.json", openapi.spec)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/", pages.storefront)
    app.router.add_get("/ops", pages.operations)
    app.router.add_get("/ops/metrics", pages.ops_metrics)
    app.router.add_get("/pages/{name}", pages.asset)
