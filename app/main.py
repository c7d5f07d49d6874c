"""The worker process as `faust -A app worker` starts it: settings from the environment."""
from __future__ import annotations

import asyncio
import logging

from prometheus_client import start_http_server

from app.kafka_io import ensure_topics
from app.settings import Settings
from app import worker_dump
from app.threads import limit_threads
from app.worker import create_worker

settings = Settings.from_env()
limit_threads(settings.runtime.torch_threads)
if settings.kafka.faust_broker.startswith("kafka://"):
    # Before Faust subscribes (see ensure_topics): on a loop of its own, closed again, so
    # the worker's own loop is untouched.
    _loop = asyncio.new_event_loop()
    try:
        _loop.run_until_complete(ensure_topics(settings))
    finally:
        _loop.close()
worker = create_worker(settings)
faust_app = worker.app
log = logging.getLogger(__name__)


@faust_app.task
async def _dump_on_sigusr1() -> None:
    worker_dump.install(faust_app)  # consumer state, threads and tasks to the log


@faust_app.task
async def _serve_metrics() -> None:
    if settings.worker.metrics_port > 0:
        start_http_server(settings.worker.metrics_port, addr="127.0.0.1", registry=worker.metrics.registry)
        log.info("worker metrics on http://127.0.0.1:%d/metrics", settings.worker.metrics_port)
