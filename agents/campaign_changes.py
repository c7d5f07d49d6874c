"""Campaign changes (keyed by campaign id): validate, keep the latest version of each campaign.

Per event, like the catalog: campaigns change rarely. A version that names another item than
the campaign's is refused (a dead letter): the campaign's spend row lives in its item's
partition (tables/ad_spend.py), and moving it would start a second row beside the first.
"""
from __future__ import annotations

from typing import Any

from agents.context import WorkerContext
from agents.keyed_changes import register_keyed_changes
from models.ads.campaigns import Campaign
from tables import campaigns
from tables.wire.records import decode_campaign


def register(worker: WorkerContext) -> Any:
    settings, metrics = worker.settings, worker.metrics

    def apply(campaign: Campaign) -> None:
        campaigns.check_update(worker.campaigns.get(campaign.campaign_id), campaign)  # ValidationError: a dead letter
        worker.campaigns[campaign.campaign_id] = campaigns.to_value(campaign)
        metrics.campaign_changes.inc()

    return register_keyed_changes(worker, worker.campaigns_topic, "campaign-changes", "campaigns",
                                  lambda msg: decode_campaign(msg.value, settings.limits.event_bytes),
                                  lambda campaign: campaign.campaign_id, apply)
