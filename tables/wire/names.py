"""Names of the Kafka topics that are not in settings: the tables' changelogs."""
from __future__ import annotations

from typing import Protocol

from tables import ad_spend, campaigns, catalog, charged_tokens, item_stats, seen_events, user_profiles

TABLE_NAMES = (user_profiles.NAME, item_stats.NAME, catalog.NAME, seen_events.NAME,
               campaigns.NAME, ad_spend.NAME, charged_tokens.NAME)  # every table's changelog


class AppId(Protocol):
    @property
    def app_id(self) -> str: ...


class WithTopics(Protocol):
    """app/settings.py's `Settings`: its `topics` group holds the app id."""

    @property
    def topics(self) -> AppId: ...


def changelog_topic(settings: WithTopics, table_name: str) -> str:
    """Faust's name for a table's changelog topic (the gateway follows these without Faust)."""
    return f"{settings.topics.app_id}-{table_name}-changelog"
