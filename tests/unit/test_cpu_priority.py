"""The learner's CPU priority (app/cpu_priority.py) and the session its launcher gives it
(app/processes.py): SCHED_IDLE where it shares its launcher's session, a low nice and a
low autogroup where it heads a session of its own (SCHED_IDLE would defer only to itself).
And the gateway's CPU slice (request_cpu_slice): in effect for the thread that asks and the
threads it starts, policy and nice unchanged, where the kernel keeps a slice per task."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from app.cpu_priority import GROUP_NICE, LOW_NICE, autogroups_on
from app.processes import Process
from app.settings import ROOT

# Prints what set_cpu_priority got, the policy, the nice, and the autogroup line (or null).
CHILD = """
import json, os, sys
from pathlib import Path
from app.cpu_priority import set_cpu_priority
got = set_cpu_priority(sys.argv[1])
group = Path("/proc/self/autogroup")
print(json.dumps([got, os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0),
                  group.read_text().strip() if group.exists() else None, os.getsid(0), os.getpgid(0)]))
"""


def _child(priority: str, own_session: bool) -> list:
    out = subprocess.run([sys.executable, "-c", CHILD, priority], cwd=ROOT, capture_output=True, text=True,
                         check=True, start_new_session=own_session)
    return json.loads(out.stdout)


def test_a_learner_in_its_launchers_session_is_idle() -> None:
    """The test process keeps its own priority: each case runs in a child (no raising it back)."""
    got, policy, _, _, _, _ = _child("idle", own_session=False)
    assert (got, policy) == ("idle", os.SCHED_IDLE)


def test_a_learner_heading_its_own_session_lowers_its_autogroup_instead() -> None:
    got, policy, nice, group, sid, _ = _child("idle", own_session=True)
    assert sid != os.getsid(0)
    if autogroups_on():
        assert got == "low, own autogroup"
        assert policy == os.SCHED_OTHER and nice >= LOW_NICE
        assert group.endswith(f"nice {GROUP_NICE}")
    else:  # no autogroups: the session is no group, and SCHED_IDLE defers to every other process
        assert (got, policy) == ("idle", os.SCHED_IDLE)


def test_low_and_normal_as_set() -> None:
    low = _child("low", own_session=False)
    assert low[0] == "low" and low[1] == os.SCHED_OTHER and low[2] >= LOW_NICE
    normal = _child("normal", own_session=False)
    assert normal[:3] == ["normal", os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)]
    if autogroups_on():  # "low" in its launcher's session leaves the group (the launcher's) alone
        assert low[3] == Path("/proc/self/autogroup").read_text().strip()


def test_processes_stay_in_this_session_in_a_group_of_their_own(tmp_path: Path) -> None:
    """The demo's, tests' and benches' children share the launcher's session (so its autogroup),
    and stop() still stops a child's own children (its process group)."""
    script = ("import os, subprocess, sys, time; "
              "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              "print(os.getsid(0), os.getpgid(0), kid.pid, flush=True); time.sleep(60)")
    proc = Process([sys.executable, "-c", script], dict(os.environ), tmp_path / "child.log").start()
    try:
        for _ in range(200):
            text = (tmp_path / "child.log").read_text()
            if text.strip():
                break
            time.sleep(0.05)
        sid, pgid, grandchild = map(int, text.split())
        assert sid == os.getsid(0)
        assert pgid == proc.proc.pid != os.getpgid(0)
    finally:
        proc.stop(timeout_s=5)
    assert proc.proc.poll() is not None
    for _ in range(100):
        if not _running(grandchild):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the child's own child outlived stop()")


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# Prints what request_cpu_slice returned, then for the asking thread and a thread it starts
# after: the slice the kernel reports (/proc .../sched, ns), the policy and the nice.
SLICE_CHILD = """
import json, os, sys, threading
from app.cpu_priority import request_cpu_slice
def seen():
    lines = open(f"/proc/self/task/{threading.get_native_id()}/sched").read().splitlines()
    slices = [int(line.split(":")[1]) for line in lines if line.split(":")[0].strip() == "se.slice"]
    return [slices[0] if slices else None, os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)]
before = seen()
got = request_cpu_slice(float(sys.argv[1]))
later = []
thread = threading.Thread(target=lambda: later.append(seen()))
thread.start(); thread.join()
print(json.dumps([got, before, seen(), later[0]]))
"""


def _kernel_keeps_a_slice_per_task() -> bool:
    """Linux 6.12 or later (EEVDF with sched_attr.sched_runtime as a fair task's slice)."""
    if not sys.platform.startswith("linux"):
        return False
    version = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return version is not None and (int(version[1]), int(version[2])) >= (6, 12)


def _slice_child(ms: float) -> list:
    out = subprocess.run([sys.executable, "-c", SLICE_CHILD, str(ms)], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_a_gateway_slice_holds_for_its_thread_and_the_threads_it_starts() -> None:
    got, before, after, thread = _slice_child(0.2)
    if not _kernel_keeps_a_slice_per_task():
        assert got is None and after == before
        return
    assert got == 0.2
    assert after == thread == [200_000, before[1], before[2]]  # the slice, nothing else
    assert before[0] != 200_000


def test_no_slice_asked_leaves_the_kernels_and_reports_it() -> None:
    got, before, after, _ = _slice_child(0)
    assert after == before
    assert got == (before[0] / 1e6 if _kernel_keeps_a_slice_per_task() else None)
