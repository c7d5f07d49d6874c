"""Integration tests run against a real Kafka broker: the one at KAFKA_BROKER, else the
project's own (started here with scripts/kafka.sh if it is not up). They never skip: a
broker that cannot be reached or started fails the run."""
from __future__ import annotations

import asyncio
import subprocess
import uuid
from dataclasses import replace

import pytest

from app.kafka_io import ensure_topics, wait_for_broker
from app.processes import free_port
from app.settings import ROOT, Settings
from models.errors import BrokerUnavailable


@pytest.fixture(scope="session")
def broker() -> Settings:
    settings = Settings.from_env()
    try:
        asyncio.run(wait_for_broker(settings, timeout_s=3))
    except BrokerUnavailable:
        started = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], capture_output=True, text=True)
        if started.returncode != 0:
            pytest.fail(f"no Kafka at {settings.bootstrap_servers} and it could not be started:\n"
                        f"{started.stdout}\n{started.stderr}")
        asyncio.run(wait_for_broker(settings, timeout_s=60))
    return settings


@pytest.fixture
def stack_settings(broker: Settings, tmp_path) -> Settings:
    """Fresh topics, consumer group and state for one test, on the shared broker."""
    run = f"it-{uuid.uuid4().hex[:8]}"
    settings = replace(broker, app_id=run, topic_prefix=run, state_dir=tmp_path / "state",
                       worker_metrics_port=free_port(), gateway_port=free_port(), store="rocksdb://")
    asyncio.run(ensure_topics(settings))
    return settings
