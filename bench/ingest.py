"""Ingest throughput: events/s from the events topic into the tables, against a bare consumer.

Both read the same topic in the same run: a plain aiokafka consumer (the pipeline's upper
bound) and the Faust worker (validation, dedupe, profile and item-stat tables with RocksDB
changelogs, and the item repartition). The worker's rate is measured from its first processed
event (start-up and rebalance left out, by scraping its metrics) until the last event is in
the profiles and every forward it made is in the item stats (the worker group's committed
offsets on the item-events topic reach its end): with a backlog, Faust's fetcher serves the
events topic first, so stopping at the last user event would leave the item work unmeasured.
Last line: {"pipeline_eps": ..., "raw_eps": ..., "ratio": ...}
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.kafka_io import ensure_topics, make_admin, make_consumer, produce_events, wait_for_broker
from app.plot_dir import add_plots_argument, plot_dir, write_plots
from app.processes import free_port, scrape, wait_until, worker_process
from app.replay_data import read_sequences, sequence_events
from app.settings import ROOT, Settings
from models.errors import BrokerUnavailable
from run_topics import drop_run_topics


async def produce(settings: Settings, n: int) -> None:
    await ensure_topics(settings)
    events = itertools.islice(sequence_events(read_sequences(settings.runtime.data_dir / "amazon-beauty" / "Beauty.txt")), n)
    await produce_events(settings, events)


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (field 3, the state, first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads, from /proc."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_and_wait_seconds(pid: int) -> tuple[float, float]:
    """(CPU, run-queue wait) seconds of a process so far: its CPU as `cpu_seconds` (threads that
    ended included), and the time its threads were runnable and no core ran them, from their
    schedstat (the threads alive now: an ended thread's wait goes with it), which a loaded
    2-core machine shows where CPU figures cannot."""
    wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            wait += int((task / "schedstat").read_text().split()[1])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return cpu_seconds(pid), wait / 1e9


def local_broker_pid() -> int | None:
    """The broker's pid where it runs on this machine (scripts/kafka.sh); one elsewhere costs
    these cores nothing."""
    found = subprocess.run(["pgrep", "-f", "kafka.Kafka"], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


def major_faults(pid: int) -> int:
    """Page faults of a process that had to read from disk (a page the kernel had dropped or
    never loaded), from /proc: a process that waits on them is late without using its core."""
    return int(_stat(pid)[9])


def machine_cpu() -> tuple[float, float, float]:
    """(busy, stolen, all) CPU seconds of the whole machine so far, from /proc/stat: the
    hypervisor's steal is time a runnable process waited for a core another guest had."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return busy / tick, steal / tick, (busy + idle + iowait + steal) / tick


def machine_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> dict[str, float]:
    """Cores busy and cores stolen between two `machine_cpu` readings."""
    elapsed = (after[2] - before[2]) / (os.cpu_count() or 1)
    if elapsed <= 0:
        return {"busy_cores": 0.0, "stolen_cores": 0.0}
    return {"busy_cores": round((after[0] - before[0]) / elapsed, 2),
            "stolen_cores": round((after[1] - before[1]) / elapsed, 2)}


async def raw_consume(settings: Settings, n: int) -> tuple[float, float]:
    """(events/s, CPU s per 1000 events) of a bare consumer parsing each record."""
    consumer = make_consumer(settings, settings.topics.events,
                                group_id=f"bench-raw-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    seen, start, cpu0 = 0, None, 0.0
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                if start is None:
                    start, cpu0 = time.perf_counter(), time.process_time()
                for rec in records:
                    orjson.loads(rec.value)
                seen += len(records)
        rate = seen / (time.perf_counter() - start)  # type: ignore[operator]
        return rate, (time.process_time() - cpu0) / seen * 1000
    finally:
        await consumer.stop()


async def forwards_behind(settings: Settings) -> int:
    """Item-events records not yet committed by the worker group (Faust's group id is the app id)."""
    topic = settings.topics.item_events
    admin, consumer = make_admin(settings), make_consumer(settings)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.topics.app_id)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(settings.topics.partitions)])
        return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


def pipeline_rate(settings: Settings, n: int, workers: int) -> tuple[float, float, float]:
    """(events/s, worker CPU s per 1000 events, table rows expired) from the first processed event
    until the n-th is processed and every forward is in the item stats. Rows expire only with a
    dedup window shorter than the run (`STREAMRANK_WORKER_DEDUP_WINDOW_S=3`: the sweep's cost).

    Several workers join one consumer group and split the partitions; each has its own
    state folder (RocksDB) and metrics port.
    """
    configs = [settings.replace(state_dir=settings.runtime.state_dir / f"w{i}", worker_metrics_port=free_port())
               for i in range(workers)]
    procs = [worker_process(c, c.runtime.state_dir / "worker.log").start() for c in configs]

    def processed() -> float:
        return sum(scrape(c.worker.metrics_port).get("streamrank_events_processed_total", 0.0) for c in configs)

    def cpu() -> float:
        return sum(cpu_seconds(p.proc.pid) for p in procs)  # type: ignore[union-attr]

    try:
        wait_until(lambda: processed() > 0, 180, 0.05, "first event processed")
        start, last, cpu0 = time.perf_counter(), 0.0, cpu()
        while (last := processed()) < n:
            dead = [p for p in procs if not p.alive()]
            if dead:
                raise RuntimeError(f"worker died:\n{dead[0].tail()}")
            time.sleep(0.5)  # scraping costs the worker CPU: not too often
        while asyncio.run(forwards_behind(settings)) > 0:
            if not all(p.alive() for p in procs):
                raise RuntimeError("worker died before the item stats caught up")
            time.sleep(0.5)
        rate = (last - 1.0) / (time.perf_counter() - start)  # from the event that started the clock
        cpu_ms = (cpu() - cpu0) / (last - 1.0) * 1000
        expired = sum(scrape(c.worker.metrics_port).get("streamrank_table_rows_expired_total", 0.0) for c in configs)
        return rate, cpu_ms, expired
    finally:
        for p in procs:
            p.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--store", default="rocksdb://")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the partitions")
    add_plots_argument(parser)
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:8]
    base = Settings.from_env()
    settings = base.replace(app_id=f"bench-{run_id}", topic_prefix=f"bench-{run_id}", store=args.store,
                       state_dir=Path(tempfile.mkdtemp(prefix="streamrank-bench-")),
                       worker_metrics_port=free_port())
    try:
        asyncio.run(wait_for_broker(settings, timeout_s=5))
    except BrokerUnavailable:
        subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)
    asyncio.run(produce(settings, args.events))
    raw, raw_cpu = asyncio.run(raw_consume(settings, args.events))
    print(f"bare aiokafka consumer: {raw:,.0f} events/s, {raw_cpu:.3f} CPU s per 1000 events")
    try:
        pipe, pipe_cpu, expired = pipeline_rate(settings, args.events, args.workers)
    except BaseException:
        print(f"state and logs kept in {settings.runtime.state_dir}", file=sys.stderr)
        raise
    shutil.rmtree(settings.runtime.state_dir, ignore_errors=True)  # the workers' stores: only a failed run's are read
    drop_run_topics(settings)
    print(f"streamrank, {args.workers} worker(s) ({args.store}): {pipe:,.0f} events/s, "
          f"{pipe_cpu:.3f} CPU s per 1000 events; {expired:,.0f} rows expired (dedup window "
          f"{settings.worker.dedup_window_s:g} s)")
    # CPU per event is the figure that survives a busy machine; events/s is what users see.
    out = {"pipeline_eps": round(pipe, 1), "raw_eps": round(raw, 1), "ratio": round(pipe / raw, 4),
           "pipeline_cpu_ms_per_event": round(pipe_cpu, 3), "raw_cpu_ms_per_event": round(raw_cpu, 4),
           "events": args.events, "workers": args.workers, "store": args.store,
           "rows_expired": expired, "dedup_window_s": settings.worker.dedup_window_s}
    write_plots(plot_dir(base.runtime.state_dir, "bench-ingest", args.plots), out, lambda d: plot_rates(out, d))
    print(orjson.dumps(out).decode())


def plot_rates(out: dict, directory: Path) -> list[Path]:
    """rate.png: the pipeline's events/s beside the bare consumer's, same topic, same run."""
    from models.plots import plot_bars

    return [plot_bars({"bare aiokafka consumer": {"events/s": out["raw_eps"]},
                       f"streamrank worker x{out['workers']}": {"events/s": out["pipeline_eps"]}},
                      directory / "rate.png", "bench/ingest.py: ingest rate", "events/s")]


if __name__ == "__main__":
    main()
