"""A gateway's start to search over the whole Home Depot catalog, with its vectors on the topic.

Publishes the catalog (45,782 items) as the worker's catalog changelog and one vector per item
on the item-vectors topic, starts a real gateway process and times it until /readyz says
search is ready (every item with its vector) and a search answers. Beside it, in the same run,
the old restart path: a lone gateway (`search_encode_catalog`) reading every vector from its
own on-disk cache. The vectors are random unit vectors of the right tower and texts: what the
gateway does with them (decode, match, index) does not depend on their values.

Then the encoder's throughput: `ItemEncoder` over the first --encode items (real MiniLM) on a
fresh topic, in CPU ms per item beside `TextEncoder.encode` alone on the same texts.

Usage: .venv/bin/python bench/search_start.py [--encode 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import orjson
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.gateway.dense_search import item_model_key, vector_cache_path  # noqa: E402
from app.gateway.serving import item_text  # noqa: E402
from app.item_encoder import ItemEncoder  # noqa: E402
from app.kafka_io import ensure_topics, make_producer  # noqa: E402
from app.processes import free_port, gateway_process  # noqa: E402
from tables.wire.records import CatalogChange  # noqa: E402
from app.settings import Settings  # noqa: E402
from tables.wire.names import changelog_topic  # noqa: E402
from models.data.homedepot import load_homedepot  # noqa: E402
from models.encoder import DIM, TextEncoder  # noqa: E402
from models.item_vectors import encode_vector, model_digest  # noqa: E402
from models.vector_cache import VectorCache  # noqa: E402
from tables import catalog  # noqa: E402
from run_topics import drop_run_topics  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


RUNS: list[Settings] = []  # every run's settings: their topics go when the bench is done


def fresh(base: Settings, state: Path, **changes: object) -> Settings:
    run = f"bench-start-{uuid.uuid4().hex[:8]}"
    RUNS.append(base.replace(app_id=run, topic_prefix=run, state_dir=state, gateway_port=free_port(),
                             worker_metrics_port=free_port(), search_dense=True, **changes))  # type: ignore[arg-type]
    return RUNS[-1]


async def publish(settings: Settings, items: list[str], entries: list[dict], vectors: torch.Tensor | None) -> float:
    """The catalog changelog (and the item vectors, when given); returns seconds taken."""
    started = time.perf_counter()
    await ensure_topics(settings)
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        topic = changelog_topic(settings, catalog.NAME)
        for item, entry in zip(items, entries):
            await producer.send(topic, orjson.dumps(entry), key=orjson.dumps(item))
        if vectors is not None:
            model = model_digest(item_model_key(settings))
            for item, entry, vector in zip(items, entries, vectors):
                await producer.send(settings.topics.item_vectors, encode_vector(model, item_text(entry), vector),
                                    key=item.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def readyz(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return json.loads(r.read())
    except OSError as exc:  # not listening yet, or 503 while the changelogs load
        body = getattr(exc, "read", None)
        return json.loads(body()) if callable(body) else {}


def time_gateway(settings: Settings, n_items: int, label: str, timeout_s: float = 600.0) -> dict:
    """Start a gateway process; seconds (wall, CPU) until ready, and until search over every item."""
    gateway = gateway_process(settings, settings.runtime.state_dir / f"{label}.log")
    started = time.perf_counter()
    gateway.start()
    out: dict = {}
    try:
        while time.perf_counter() - started < timeout_s:
            body = readyz(settings.gateway.port)
            if body.get("ready") and "ready_s" not in out:
                out["ready_s"] = time.perf_counter() - started
            search = body.get("search", {})
            if search.get("ready") and search.get("items") == n_items:
                out["search_ready_s"] = time.perf_counter() - started
                out["cpu_s"] = cpu_s(gateway.proc.pid)  # type: ignore[union-attr]
                break
            time.sleep(0.25)
        else:
            raise TimeoutError(f"{label}: search not ready in {timeout_s:.0f}s: {readyz(settings.gateway.port)}\n{gateway.tail()}")
        url = f"http://127.0.0.1:{settings.gateway.port}/v1/search?q=cordless+drill&k=5"
        with urllib.request.urlopen(url, timeout=30) as r:
            out["version"] = json.loads(r.read())["model_version"]
        return out
    finally:
        gateway.stop()


async def encoder_rate(base: Settings, state: Path, items: list[str], entries: list[dict]) -> dict:
    """CPU ms per item of the encoder process's core (Kafka in and out included) and of encoding alone."""
    settings = fresh(base, state)
    await publish(settings, items, entries, None)
    tower = TextEncoder(max_length=settings.encoder.max_length).for_serving()
    texts = [item_text(e) for e in entries]
    cpu = time.process_time()
    tower.encode(texts, settings.encoder.batch_size)
    alone = time.process_time() - cpu
    encoder = ItemEncoder(settings, lambda t: tower.encode(t, settings.encoder.batch_size), tower.model_key)
    wall, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(encoder.run())
    while encoder.sent < len(items):
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {"items": len(items), "items_per_s": len(items) / wall, "cpu_ms_per_item": 1000 * cpu / len(items),
            "encode_alone_cpu_ms_per_item": 1000 * alone / len(items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encode", type=int, default=1000, help="items the encoder rate is measured on (0: skip)")
    args = parser.parse_args()
    base = Settings.from_env()
    data = load_homedepot(base.runtime.data_dir / "homedepot" / "train.csv.gz")
    items = list(data.items)
    entries = [catalog.to_item(CatalogChange("upsert", i, 1.0, title=t)) for i, t in zip(items, data.titles)]
    vectors = F.normalize(torch.randn(len(items), DIM), dim=1)
    state = Path(tempfile.mkdtemp(prefix="streamrank-search-start-"))
    results: dict = {"items": len(items)}
    try:
        topic = fresh(base, state / "topic")
        results["publish_s"] = asyncio.run(publish(topic, items, entries, vectors))
        results["from_topic"] = time_gateway(topic, len(items), "from-topic")
        print("vectors on the topic:", results["from_topic"], flush=True)

        # The old restart: a lone gateway with every vector in its own cache file.
        lone = fresh(base, state / "lone", search_encode_catalog=True)
        cache = VectorCache(vector_cache_path(lone, SimpleNamespace(model_key=item_model_key(lone))), DIM)  # type: ignore[arg-type]
        cache.put([item_text(e) for e in entries], vectors)
        cache.save()
        asyncio.run(publish(lone, items, entries, None))
        results["own_cache_baseline"] = time_gateway(lone, len(items), "own-cache")
        print("own vector cache (old path):", results["own_cache_baseline"], flush=True)
        if args.encode:
            results["encoder"] = asyncio.run(encoder_rate(base, state / "encoder", items[: args.encode],
                                                          entries[: args.encode]))
            print("encoder:", results["encoder"], flush=True)
        print(json.dumps(results, indent=1))
        drop_run_topics(*RUNS)  # kept where the run failed, with the broker's record of it
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
