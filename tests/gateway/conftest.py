"""The real gateway app, with an in-memory sink in place of Kafka and a read model fed by hand."""
from __future__ import annotations

import pytest

from app.gateway.app import init_app
from app.gateway.read_model import ReadModel
from app.records import CatalogChange, UserEvent
from app.settings import Settings


class MemorySink:
    def __init__(self) -> None:
        self.events: list[UserEvent] = []
        self.catalog: list[CatalogChange] = []
        self.commands: list[bytes] = []
        self.command_headers: list[list[tuple[str, bytes]]] = []
        self.dead_letters: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def send_events(self, events: list[UserEvent]) -> None:
        self.events.extend(events)

    async def send_catalog(self, changes: list[CatalogChange]) -> None:
        self.catalog.extend(changes)

    async def send_model_command(self, command: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.commands.append(command)
        self.command_headers.append(headers)

    async def send_dead_letter(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self.dead_letters.append((key, value, headers))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(max_event_bytes=1024, max_request_bytes=16 * 1024, max_batch_events=50,
                    state_dir=tmp_path, model_poll_s=0.05, search_dense=False)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def read_model(settings) -> ReadModel:
    return ReadModel(settings)


@pytest.fixture
async def client(aiohttp_client, settings, sink, read_model):
    app = init_app(settings, sink=sink, read_model=read_model, follow_changelogs=False)
    return await aiohttp_client(app)
