"""bench/run_topics.py on the real broker: a finished bench drops its own topics (its prefix's and
its app id's changelogs) and no one else's, and never the default prefix's."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from app.kafka_io import delete_run_topics, ensure_topics, make_admin
from app.settings import Settings
from tests.unit.test_plots import bench


async def _topics(settings: Settings) -> set[str]:
    admin = make_admin(settings)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_a_run_drops_its_own_topics_and_no_one_elses(broker):
    drop_run_topics = bench("run_topics").drop_run_topics
    run, other = (f"it-drop-{uuid.uuid4().hex[:8]}" for _ in range(2))
    mine = broker.replace(app_id=run, topic_prefix=run)
    theirs = broker.replace(app_id=other, topic_prefix=other)
    try:
        asyncio.run(ensure_topics(mine))
        asyncio.run(ensure_topics(theirs))
        before = asyncio.run(_topics(broker))
        expected = {t for t in before if t.startswith(f"{run}.") or t.startswith(f"{run}-")}
        assert f"{run}.events" in expected and any(t.startswith(f"{run}-") for t in expected)  # a changelog too
        assert set(drop_run_topics(mine)) == expected
        for _ in range(60):  # the broker deletes them a moment after it answered
            after = asyncio.run(_topics(broker))
            if not after & expected:
                break
            time.sleep(0.5)
        assert not after & expected
        assert {t for t in before if t.startswith(other)} <= after
    finally:
        asyncio.run(delete_run_topics(mine))
        asyncio.run(delete_run_topics(theirs))


def test_the_default_prefix_is_refused():
    with pytest.raises(ValueError, match="default"):
        bench("run_topics").drop_run_topics(Settings())
