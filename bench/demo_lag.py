"""The demo's processing lag (issue 12 item 7): `make demo` on topics and a state dir of its own, as on
a fresh clone (the search fine-tune runs beside it), for `--minutes` once the worker has processed
its first event; then the worker's `streamrank_event_processing_lag_seconds` histogram (event
time to processed, every event of the run): mean, and p50/p95/p99 as the bucket bounds they fall
under; then the demo is stopped.

Usage: .venv/bin/python bench/demo_lag.py [--minutes 5]
Last line: {"minutes": ..., "events": ..., "mean_s": ..., "p50_at_most_s": ..., "p95_at_most_s": ...,
"p99_at_most_s": ..., "over_5s": ...}.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from app.metrics import sample_sum
from app.processes import wait_until
from app.settings import ROOT, Settings
from run_topics import drop_run_topics

LAG = "streamrank_event_processing_lag_seconds"


def histogram(text: str) -> tuple[dict[float, float], float, float]:
    """(bucket bound -> events at or under it, count, sum) of the lag, summed over its labels."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == f"{LAG}_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    return buckets, sample_sum(text, f"{LAG}_count"), sample_sum(text, f"{LAG}_sum")


def quantile_bound(buckets: dict[float, float], count: float, q: float) -> float:
    return min(le for le, n in buckets.items() if n >= q * count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    run = f"demolag{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, STREAMRANK_STATE_DIR=f"/tmp/{run}", STREAMRANK_TOPIC_PREFIX=run, STREAMRANK_APP_ID=run)
    port = env.get("STREAMRANK_WORKER_METRICS_PORT", "9101")
    log = Path(env["STREAMRANK_STATE_DIR"] + ".log")
    # A session of its own: stopped as Ctrl-C stops it, Kafka left running (`scripts/demo.sh stop` stops that too)
    demo = subprocess.Popen(["make", "demo"], cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)

    def scrape() -> tuple[dict[float, float], float, float]:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return histogram(r.read().decode())

    finished = False
    try:
        t0 = time.monotonic()
        while True:
            try:
                if scrape()[1] > 0:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 900 or demo.poll() is not None:
                sys.exit(f"no event processed in {time.monotonic() - t0:.0f} s (see {log})")
            time.sleep(5)
        print(f"events flowing {time.monotonic() - t0:.0f} s after start; measuring {args.minutes} min", flush=True)
        time.sleep(args.minutes * 60)
        buckets, count, total = scrape()
        out = {"minutes": args.minutes, "events": count, "mean_s": round(total / count, 4),
               **{f"p{round(q * 100)}_at_most_s": quantile_bound(buckets, count, q) for q in (0.5, 0.95, 0.99)},
               "over_5s": count - max((n for le, n in buckets.items() if le <= 5.0), default=0.0)}
        print(json.dumps(out), flush=True)
        finished = True
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=120)
        if finished:  # the demo's state, logs and topics; kept where the run failed
            shutil.rmtree(env["STREAMRANK_STATE_DIR"], ignore_errors=True)
            log.unlink(missing_ok=True)
            # Its processes are told to stop, not waited for: a worker still running asks for its
            # topics again and the broker makes them anew (seen: the changelogs came back).
            try:
                wait_until(lambda: not group_alive(demo.pid), 60, 0.5, "the demo's processes gone")
                drop_run_topics(Settings.from_env(env))
            except TimeoutError as exc:
                print(f"{exc}: its topics ({run}*) stay", file=sys.stderr)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    main()
