"""What dropping expired dedup rows costs a worker, per event, against writing them.

At steady state every event the worker takes writes one `seen_events` row and, a window
later, the sweep visits about two rows and drops one (app/table_sweep.py), with a tombstone
to the changelog. This runs that on a real RocksDB holding `--rows` rows, half of them past
the window, through the worker's own batch writes (`BatchedWrites`): batches of `--batch`
new rows, first without a sweep (the baseline: what the worker paid before rows expired),
then with one, each over fresh copies of the same rows, CPU time per written row (one event)
for each. The changelog sends are counted, not sent (what Kafka's client costs a record is
in bench/ingest.py's figures). Last line: {"baseline_us_per_event": ..., "sweep_us_per_event":
..., "extra_us_per_event": ..., "dropped_per_event": ..., "tombstones_per_event": ...}.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
from prometheus_client import CollectorRegistry, Counter
from rocksdict import Options, Rdict, WriteBatch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.batched_writes import BatchedWrites
from app.table_sweep import TableSweep
from tables.expiry import stamped

KEEP_S = 86_400.0
NOW = 1_800_000_000.0
REGISTRY = CollectorRegistry()
DROPPED = Counter("dropped", "rows the sweep dropped", registry=REGISTRY)


class Store:
    def __init__(self, path: Path) -> None:
        self.db = Rdict(str(path), Options(raw_mode=True))

    def _db_for_partition(self, partition: int) -> Rdict:
        return self.db


def filled(path: Path, rows: int) -> Store:
    """`rows` seen rows with random-looking ids, every other one past the window."""
    store = Store(path)
    batch = WriteBatch(raw_mode=True)
    for i in range(rows):
        key = orjson.dumps(f"{(i * 2654435761) % 2**32:08x}-{i}")
        batch.put(key, orjson.dumps(stamped(0, i, NOW - (2 * KEEP_S if i % 2 else 60))))
        if i % 100_000 == 99_999:
            store.db.write(batch)
            batch = WriteBatch(raw_mode=True)
    store.db.write(batch)
    return store


def run(store: Store, sweep: TableSweep | None, batches: int, per_batch: int) -> tuple[float, int, int]:
    """(CPU s, rows dropped, tombstones) for `batches` batches of `per_batch` new rows each."""
    table = SimpleNamespace(name="seen_events", data=store, changelog_topic=SimpleNamespace(get_topic_name=lambda: "c"))
    tombstones = 0

    async def send(topic, partition, records):
        nonlocal tombstones
        tombstones += sum(value is None for _, value in records)

    async def batches_written() -> None:
        for b in range(batches):
            writes = BatchedWrites(send, {"seen_events": sweep} if sweep else {})
            rows = writes.rows(table)
            for i in range(per_batch):
                n = b * per_batch + i
                rows.set(f"new-{n:09d}", 0, stamped(0, n, NOW))
            await writes.flush()

    def dropped() -> float:  # the sweep's counter of rows dropped
        return (REGISTRY.get_sample_value("dropped_total") or 0.0) if sweep else 0.0

    dropped0 = dropped()
    cpu0 = time.process_time()
    asyncio.run(batches_written())
    cpu = time.process_time() - cpu0
    return cpu, int(dropped() - dropped0), tombstones


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table when the run starts")
    parser.add_argument("--batch", type=int, default=1000, help="rows a batch writes (the worker's batch_events)")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2, help="baseline and sweep runs, interleaved")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="streamrank-sweep-"))
    try:
        seed = work / "seed"
        filled(seed, args.rows).db.close()
        results: dict[str, list[float]] = {"baseline": [], "sweep": []}
        dropped = tombstones = 0
        for r in range(args.rounds):
            for name in ("baseline", "sweep"):
                copy = work / f"{name}-{r}"
                shutil.copytree(seed, copy)
                store = Store(copy)
                sweep = TableSweep(KEEP_S, DROPPED, clock=lambda: NOW) if name == "sweep" else None
                cpu, d, t = run(store, sweep, args.batches, args.batch)
                store.db.close()
                shutil.rmtree(copy)
                results[name].append(cpu / (args.batches * args.batch) * 1e6)
                if name == "sweep":
                    dropped, tombstones = d, t
                print(f"round {r + 1} {name:>8}: {results[name][-1]:.2f} CPU-us per event"
                      + (f", {d:,} rows dropped" if name == "sweep" else ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base, swept = min(results["baseline"]), min(results["sweep"])
    events = args.batches * args.batch
    out = {"baseline_us_per_event": round(base, 2), "sweep_us_per_event": round(swept, 2),
           "extra_us_per_event": round(swept - base, 2), "dropped_per_event": round(dropped / events, 3),
           "tombstones_per_event": round(tombstones / events, 3), "rows": args.rows, "batch": args.batch}
    print(f"writing a row: {base:.2f} CPU-us; with the sweep: {swept:.2f} (+{swept - base:.2f}), "
          f"{dropped / events:.2f} rows dropped per row written (best of {args.rounds} rounds each)")
    print(orjson.dumps(out).decode())


if __name__ == "__main__":
    main()
