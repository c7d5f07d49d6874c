"""Kafka with authentication and ACLs: scripts/kafka.sh with KAFKA_SASL=1, a broker of this
module's own (own KAFKA_HOME, port and passwords), never the shared plaintext one.

Shows that a client without valid credentials is refused, that only the learner's principal
may write model-updates, and that a Faust worker runs under its own principal.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from app.kafka_io import Role, ensure_topics, make_consumer, make_producer, model_update_records
from app.processes import free_port, worker_process
from tables.wire.records import UserEvent
from app.settings import ROOT, Settings
from tables.wire.names import changelog_topic
from tables import user_profiles

USERS = ("admin", "worker", "gateway", "learner")


def _two_free_ports() -> int:
    """A free port whose successor (the controller's) is free too."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


@dataclass(frozen=True)
class SaslBroker:
    admin: Settings  # the broker's address and a run's own topics, as the admin principal
    passwords: dict[str, str]

    def as_user(self, user: str) -> Settings:
        return self.admin.replace(kafka_username=user, kafka_password=self.passwords[user])


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory) -> Iterator[SaslBroker]:
    """The SASL broker, stopped after the module even on failure."""
    home = tmp_path_factory.mktemp("kafka-sasl")
    port = _two_free_ports()
    run = f"auth-{uuid.uuid4().hex[:8]}"
    passwords = {user: secrets.token_hex(8) for user in USERS}
    env = {**os.environ, "KAFKA_SASL": "1", "KAFKA_HOME": str(home / "kafka"), "KAFKA_PORT": str(port),
           "STREAMRANK_TOPIC_PREFIX": run, "STREAMRANK_APP_ID": run,
           **{f"KAFKA_{user.upper()}_PASSWORD": pw for user, pw in passwords.items()}}
    if (ROOT / ".kafka" / "lib").is_dir():
        env["KAFKA_LIB"] = str(ROOT / ".kafka" / "lib")  # the default broker's jars: no second fetch

    def kafka(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ROOT / "scripts" / "kafka.sh"), command], env=env,
                              capture_output=True, text=True, timeout=180)

    try:
        started = kafka("start")
        if started.returncode != 0:  # fail, never skip: the SASL mode is what is under test
            pytest.fail(f"the SASL broker did not start:\n{started.stdout}\n{started.stderr}")
        admin = Settings().replace(kafka_broker=f"127.0.0.1:{port}", app_id=run, topic_prefix=run,
                         state_dir=home / "state", kafka_security_protocol="SASL_PLAINTEXT",
                         kafka_sasl_mechanism="SCRAM-SHA-256", kafka_username="admin",
                         kafka_password=passwords["admin"], learner_enabled=False)
        yield SaslBroker(admin, passwords)
    finally:
        kafka("stop")


async def send(settings: Settings, topic: str, value: bytes, role: Role = "process") -> None:
    producer = make_producer(settings, role=role, request_timeout_ms=10_000)
    try:
        await producer.start()
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def test_clients_without_valid_credentials_are_refused(sasl_broker, caplog):
    admin = sasl_broker.admin
    await ensure_topics(admin)  # the right credentials get in (the control for what follows)

    with pytest.raises(KafkaConnectionError):  # no SASL at all: the broker hangs up
        await send(admin.replace(kafka_security_protocol="PLAINTEXT"), admin.topics.events, b"{}")

    wrong = sasl_broker.as_user("worker").replace(kafka_password="not-the-password")
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        await send(wrong, admin.topics.events, b"{}")
    assert "SaslAuthenticationFailed" in caplog.text and "invalid credentials" in caplog.text

    with pytest.raises(KafkaConnectionError):  # a name the broker does not know
        await send(wrong.replace(kafka_username="mallory"), admin.topics.events, b"{}")

    host, port = admin.kafka.bootstrap_servers.rsplit(":", 1)  # nor is the controller's port an open door
    with pytest.raises(KafkaConnectionError):
        await send(admin.replace(kafka_broker=f"{host}:{int(port) + 1}", kafka_security_protocol="PLAINTEXT"),
                   admin.topics.events, b"{}")


async def test_only_the_learner_may_write_model_updates(sasl_broker):
    admin = sasl_broker.admin
    worker, gateway = sasl_broker.as_user("worker"), sasl_broker.as_user("gateway")
    await ensure_topics(worker)  # the worker's principal sets up its topics at start
    topic = admin.topics.model_updates

    await send(worker, admin.topics.events, b"{}")  # both may write elsewhere...
    await send(gateway, admin.topics.events, b"{}")
    for principal in (worker, gateway):  # ...but not model versions
        with pytest.raises(TopicAuthorizationFailedError):
            await send(principal, topic, b'{"forged": true}')

    # The worker process with the learner's principal set: only role="learner" clients use it.
    in_worker = worker.replace(learner_kafka_username="learner",
                        learner_kafka_password=sasl_broker.passwords["learner"])
    with pytest.raises(TopicAuthorizationFailedError):
        await send(in_worker, topic, b'{"forged": true}')
    await send(in_worker, topic, b'{"version": 1}', role="learner")

    # The gateway reads what the learner wrote, and nothing else got there.
    assert [r.value for r in await model_update_records(gateway)] == [b'{"version": 1}']


async def changelog_keys(settings: Settings, topic: str, want: str, timeout_s: float) -> set[str]:
    consumer = make_consumer(settings, topic, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    keys: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while want not in keys and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                keys.update(orjson.loads(r.key) for r in records)
    finally:
        await consumer.stop()
    return keys


async def test_faust_worker_runs_under_its_own_principal(sasl_broker, tmp_path: Path):
    admin = sasl_broker.admin
    worker_settings = sasl_broker.as_user("worker").replace(worker_metrics_port=free_port())
    gateway = sasl_broker.as_user("gateway")
    await ensure_topics(worker_settings)
    event = UserEvent(event_id="e-auth-1", user_id="u-auth", type="view", ts=time.time(), item_id="i1")
    await send(gateway, admin.topics.events, event.to_json())

    worker = worker_process(worker_settings, tmp_path / "worker.log").start()
    try:
        keys = await changelog_keys(gateway, changelog_topic(admin, user_profiles.NAME), "u-auth", timeout_s=90)
        assert "u-auth" in keys, f"no profile of u-auth in the changelog\n{worker.tail()}"
        assert worker.alive(), worker.tail()
        assert "AuthorizationFailed" not in worker.log_path.read_text(errors="replace"), worker.tail()
    finally:
        worker.stop()
