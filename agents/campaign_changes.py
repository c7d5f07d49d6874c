"""Campaign changes (keyed by campaign id): validate, keep the latest version of each campaign.

Per event, like the catalog: campaigns change rarely. A version that names another item than
the campaign's is refused (a dead letter): the campaign's spend row lives in its item's
partition (tables/ad_spend.py), and moving it would start a second row beside the first.
"""
from __future__ import annotations

from typing import Any

from agents.context import WorkerContext
from agents.dead_letters import send_dead_letter
from models.errors import ValidationError
from tables import campaigns
from tables.wire.records import decode_campaign


def register(worker: WorkerContext) -> Any:
    settings, metrics = worker.settings, worker.metrics

    @worker.app.agent(worker.campaigns_topic, name="campaign-changes")
    async def campaign_changes(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                campaign = decode_campaign(msg.value, settings.max_event_bytes)
                key = campaign.campaign_id.encode()
                if msg.key == key:
                    campaigns.check_update(worker.campaigns.get(campaign.campaign_id), campaign)
            except ValidationError as exc:
                await send_dead_letter(worker, "campaigns", event, exc.reason)
                continue
            if msg.key != key:
                # The table is partitioned by campaign id: keyed otherwise, the version goes
                # round again under its id, as catalog changes do by item.
                await worker.campaigns_topic.send(key=key, value=msg.value)
                continue
            worker.campaigns[campaign.campaign_id] = campaigns.to_value(campaign)
            metrics.campaign_changes.inc()

    return campaign_changes
