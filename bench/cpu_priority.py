"""What a busy learner costs a gateway on shared cores, by how the processes are started.

A gateway-like probe (0.5 ms of work, then a 0.5 ms timer, over and over: half a core) runs
beside two bursty processes (about a third of a core each, in bursts of 0.2-3 ms, as the
worker and the event stream are) and a learner that wants every core it can get. Each case
starts all of them one way:
- `own sessions, SCHED_IDLE`: as app/processes.py did before (each child a session of its
  own, so an autogroup of its own) with the learner SCHED_IDLE, as the learner set itself;
- `own sessions, set_cpu_priority`: the same, with the learner's priority as
  app/cpu_priority.py sets it now (it heads a session: nice 10, its autogroup nice 19);
- `one session, set_cpu_priority`: as app/processes.py and `make demo` start them now (one
  session; the learner SCHED_IDLE);
- `one session, normal learner`: a learner at normal priority, for scale;
and `... no learner`: each layout without the learner, the baseline. Each one-session case
runs again with the probe asking for a short CPU slice (`..., slice 0.2 ms`: what a gateway
asks for with `STREAMRANK_GATEWAY_CPU_SLICE_MS=0.2`, through `request_cpu_slice`); its
baseline is the same case at the kernel's slice.

Figures per case (the median of `--rounds` rounds, the cases interleaved): the share of the
probe's wall time spent waiting for a core (runnable, not run: /proc schedstat), its timer's
lateness p99 in ms, and the cores the learner got. Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest import cpu_seconds  # the learner's CPU from /proc, as bench/serve.py counts each process's
from app.cpu_priority import autogroups_on, request_cpu_slice

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, time
seconds = float(sys.argv[1])
if len(sys.argv) > 2:
    from app.cpu_priority import request_cpu_slice
    assert request_cpu_slice(float(sys.argv[2])) is not None, "this kernel keeps no slice per task"
def sched():
    return [int(x) for x in open("/proc/thread-self/schedstat").read().split()[:2]]
late = []
(run0, wait0), started = sched(), time.perf_counter()
while time.perf_counter() - started < seconds:
    t = time.perf_counter()
    while time.perf_counter() - t < 0.0005:
        pass
    t = time.perf_counter()
    time.sleep(0.0005)
    late.append((time.perf_counter() - t - 0.0005) * 1000)
(run1, wait1), wall = sched(), time.perf_counter() - started
late.sort()
print(json.dumps({"wait_share": (wait1 - wait0) / 1e9 / wall, "run_share": (run1 - run0) / 1e9 / wall,
                  "late_p99_ms": late[int(0.99 * len(late))]}))
"""
BURSTY = """
import random, sys, time
r = random.Random(int(sys.argv[1]))
while True:
    work = r.uniform(0.0002, 0.003)
    t = time.perf_counter()
    while time.perf_counter() - t < work:
        pass
    time.sleep(work * 1.8)
"""
LEARNER = """
import os, sys
if sys.argv[1] == "sched_idle":
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
elif sys.argv[1] == "set_cpu_priority":
    from app.cpu_priority import set_cpu_priority
    set_cpu_priority("idle")
x = 0
while True:
    x += 1
"""
# name: (each child a session of its own, the learner's priority or None for no learner,
# whether the probe asks for the gateway's slice)
CASES = {
    "own sessions, no learner": (True, None, False),
    "own sessions, SCHED_IDLE": (True, "sched_idle", False),
    "own sessions, set_cpu_priority": (True, "set_cpu_priority", False),
    "one session, no learner": (False, None, False),
    "one session, set_cpu_priority": (False, "set_cpu_priority", False),
    "one session, normal learner": (False, "normal", False),
}
SHORT_SLICE_MS = 0.2
SLICED = {f"{name}, slice {SHORT_SLICE_MS:g} ms": (own, priority, True) for name, (own, priority, _) in CASES.items() if not own}


def start(code: str, *args: str, own_session: bool) -> subprocess.Popen:  # type: ignore[type-arg]
    session = {"start_new_session": True} if own_session else {"process_group": 0}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            **session)  # type: ignore[call-overload]


def one_case(own_session: bool, learner_priority: str | None, sliced: bool, seconds: float) -> dict[str, float]:
    others = [start(BURSTY, str(i), own_session=own_session) for i in range(2)]
    if learner_priority is not None:
        others.append(start(LEARNER, learner_priority, own_session=own_session))
    try:
        time.sleep(0.5)
        learner_cpu, started = (cpu_seconds(others[-1].pid) if learner_priority else 0.0), time.monotonic()
        slice_ms = [str(SHORT_SLICE_MS)] if sliced else []
        probe = start(PROBE, str(seconds), *slice_ms, own_session=own_session)
        out = json.loads(probe.communicate()[0])
        if learner_priority is not None:
            out["learner_cores"] = (cpu_seconds(others[-1].pid) - learner_cpu) / (time.monotonic() - started)
        return out
    finally:
        for p in others:
            p.kill()
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="each probe's run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every case, interleaved")
    args = parser.parse_args()
    cases = {**CASES, **(SLICED if request_cpu_slice(0) is not None else {})}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for round_ in range(args.rounds):
        for name, (own_session, priority, sliced) in cases.items():
            runs[name].append(one_case(own_session, priority, sliced, args.seconds))
            print(f"round {round_ + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
    result = {name: {key: round(statistics.median(r[key] for r in rs), 3) for key in rs[0]}
              for name, rs in runs.items()}
    slice_ms = {"kernel": request_cpu_slice(0), "short": SHORT_SLICE_MS}
    print(json.dumps({"cases": result, "autogroups": autogroups_on(), "cores": os.cpu_count(), "slice_ms": slice_ms,
                      "rounds": args.rounds, "seconds": args.seconds}))


if __name__ == "__main__":
    main()
