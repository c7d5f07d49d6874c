"""Sponsored-products campaigns, keyed by campaign id: the latest version of each.

The value is the campaign's JSON object (`Campaign.to_dict()`), the same shape the campaigns
topic carries, so the gateway reads it with the same check as the intake (`parse_campaign`).
A campaign's advertised item never changes: its spend row (tables/ad_spend.py) lives in the
item's partition, where the clicks on that item are counted.
"""
from __future__ import annotations

from typing import Any

from models.ads.campaigns import Campaign
from models.errors import ValidationError
from tables.wire.records import parse_campaign

NAME = "campaigns"


def to_value(campaign: Campaign) -> dict[str, Any]:
    return campaign.to_dict()


def from_value(value: Any) -> Campaign:
    """The campaign a changelog value holds; ValidationError when it is not one."""
    return parse_campaign(value)


def check_update(current: Any, campaign: Campaign) -> None:
    """Refuse an update that moves a campaign to another item (its spend would split over partitions)."""
    if current is not None and current.get("item_id") != campaign.item_id:
        raise ValidationError(f"campaign {campaign.campaign_id[:40]!r} advertises item "
                              f"{str(current.get('item_id'))[:40]!r}; its item cannot change")


def validate(value: Any) -> None:
    """Refuse a changelog value that is not a campaign (ValidationError says what is wrong)."""
    try:
        parse_campaign(value)
    except ValidationError as exc:
        raise ValidationError(f"a {NAME} value must be a campaign: {exc.reason}") from None
