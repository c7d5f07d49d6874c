"""`ensure_topics` on the real broker: inputs and changelogs, led and compacted, before a worker subscribes."""
from __future__ import annotations

import asyncio
import uuid

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from app.kafka_io import ensure_topics, make_admin
from tables.wire.names import TABLE_NAMES, changelog_topic


def test_ensure_topics_creates_inputs_and_compacted_changelogs_with_leaders(broker):
    run = f"it-{uuid.uuid4().hex[:8]}"
    settings = broker.replace(app_id=run, topic_prefix=run)
    created = set(asyncio.run(ensure_topics(settings)))
    changelogs = {changelog_topic(settings, table) for table in TABLE_NAMES}
    t = settings.topics
    assert changelogs | {t.events, t.catalog, t.samples, t.model_updates} <= created
    assert asyncio.run(ensure_topics(settings)) == []  # idempotent

    async def describe() -> tuple[dict[str, int], dict[str, str]]:
        admin = make_admin(settings)
        await admin.start()
        try:
            led = {d["topic"]: sum(p["leader"] >= 0 for p in d["partitions"])
                   for d in await admin.describe_topics(sorted(created))}
            configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in sorted(changelogs)])
            policy = {}
            for response in configs:
                for resource in response.to_object()["resources"]:
                    entries = {c["config_names"]: c["config_value"] for c in resource["config_entries"]}
                    policy[resource["resource_name"]] = entries.get("cleanup.policy")
            return led, policy
        finally:
            await admin.close()

    led, policy = asyncio.run(describe())
    # Every partition already has a leader when ensure_topics returns: what a worker's
    # metadata needs to see the changelog as large as its source topic.
    assert all(led[name] == settings.topics.partitions for name in changelogs | {t.events, t.catalog})
    assert led[t.samples] == led[t.model_updates] == 1
    assert policy == {name: "compact" for name in changelogs}
