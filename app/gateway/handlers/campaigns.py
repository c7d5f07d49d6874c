"""GET /v1/campaigns/{id}: a campaign as the gateway holds it, with today's spend (POST is intake's)."""
from __future__ import annotations

import time

from aiohttp import web

from app.gateway.ads import today
from app.gateway.errors import json_response
from app.gateway.keys import READ_MODEL
from app.gateway.params import path_id
from models.ads.pacing import day_start
from models.errors import NotFound
from tables import campaigns as campaign_table


async def get_campaign(request: web.Request) -> web.Response:
    campaign_id = path_id(request, "campaign_id")
    read_model = request.app[READ_MODEL]
    value = read_model.tables[campaign_table.NAME].get(campaign_id)
    if value is None:
        raise NotFound(f"no campaign {campaign_id!r} (a new one shows once the worker has taken it)")
    campaign = campaign_table.from_value(value)
    now = time.time()
    spent = today(read_model, campaign_id, now)
    return json_response({
        "campaign": campaign.to_dict(),
        "running": campaign.is_running(now),
        "today": {"day": day_start(now), "spend": spent.spend, "clicks": spent.clicks, "refused": spent.refused,
                  "budget_left": max(0.0, campaign.daily_budget - spent.spend)},
    })
