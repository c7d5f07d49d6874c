"""`streamrank gateway`: the HTTP API on uvloop, state from the changelogs, events to Kafka."""
from __future__ import annotations

import argparse
import asyncio
import logging

import uvloop
from aiohttp import web

from app.allocator import tune_allocator
from app.cpu_priority import request_cpu_slice
from app.gateway.app import init_app
from app.gateway.loop_stalls import hand_over_gil_often
from app.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("gateway", help="serve the HTTP API")
    parser.add_argument("--host", help="bind address (default: settings.gateway.host)")
    parser.add_argument("--port", type=int, help="port (default: settings.gateway.port)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    tune_allocator(settings.gateway.malloc_arena_max, settings.gateway.malloc_mmap_threshold)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    hand_over_gil_often(settings.gateway.gil_switch_ms)
    asked = settings.gateway.cpu_slice_ms
    slice_ms = request_cpu_slice(asked)  # before any thread: they inherit it
    log.info("gateway CPU slice: %s (asked for %s)", "the kernel's (no slice per task)" if slice_ms is None
             else f"{slice_ms:g} ms", f"{asked:g} ms" if asked else "the kernel's")
    # reuse_port: several gateway processes can share one port; the kernel spreads connections.
    web.run_app(init_app(settings), host=args.host or settings.gateway.host,
                port=args.port or settings.gateway.port, access_log=None, reuse_port=True,
                backlog=settings.gateway.listen_backlog)
    return 0
