"""A background process's CPU priority (the learner's: `LearnerSettings.cpu_priority`), and the
short CPU slice a latency-bound one asks for (the gateway's: `GatewaySettings.cpu_slice_ms`).

Linux shares the cores among groups first, then among the tasks of each group. With
autogroups on (`/proc/sys/kernel/sched_autogroup_enabled`, the default of most kernels),
every session (`setsid`) is a group, and groups at the same nice share evenly whatever
their tasks' policy: a SCHED_IDLE learner that heads a session of its own defers only to
itself. On this machine's kernel it was nearly as bad as no idle policy at all
(`bench/cpu_priority.py`: a gateway-like probe waited for a core 26% of its time beside it,
32% beside a learner at normal priority, 7% beside none). So a learner in its own session
lowers its group's nice (19) and its own instead (18% there); one in its launcher's session
(`make demo`, `app/processes.py`) is SCHED_IDLE (11%, against 5.5% beside none).

A container or a systemd unit is a cgroup, where the same holds and only the operator can
help: give the learner's cgroup a low `cpu.weight`, or `cpu.idle` 1.
"""
from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
from pathlib import Path

log = logging.getLogger(__name__)
LOW_NICE = 10  # "low", and the learner's own nice where it heads a session
GROUP_NICE = 19  # its session's autogroup: the group holds only the learner
AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_ENABLED = Path("/proc/sys/kernel/sched_autogroup_enabled")
# sched_setattr / sched_getattr: not in Python's os module
SCHED_ATTR_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}


def autogroups_on() -> bool:
    """True where the kernel groups processes by session."""
    try:
        return AUTOGROUP_ENABLED.read_text().strip() == "1"
    except OSError:  # not Linux, or a kernel without autogroups
        return False


def heads_own_autogroup() -> bool:
    """True where autogroups are on and this process heads its session: its group is its own."""
    return autogroups_on() and os.getsid(0) == os.getpid() and AUTOGROUP.exists()


def set_cpu_priority(priority: str) -> str:
    """Lower this process's CPU priority as `priority` ("idle", "low" or "normal") says, before
    it starts threads (they inherit it). Returns what it got: "idle" (SCHED_IDLE), "low" (nice
    10), "low, own autogroup" (nice 10 and its session's group at nice 19: an "idle" asked for
    in a session of its own), or "normal" where the OS refused."""
    if priority == "normal":
        return "normal"
    own_group = heads_own_autogroup()
    if priority == "idle" and hasattr(os, "SCHED_IDLE") and not own_group:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except OSError as exc:
            log.warning("no idle CPU priority (%s); trying nice %d", exc, LOW_NICE)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), LOW_NICE))
    except OSError as exc:
        log.warning("could not lower the CPU priority (%s); it runs at normal priority", exc)
        return "normal"
    if not own_group:
        return "low"
    try:
        AUTOGROUP.write_text(str(GROUP_NICE))
    except OSError as exc:
        log.warning("could not lower this session's autogroup (%s): it shares the cores evenly with the "
                    "gateway's", exc)
        return "low"
    log.info("heads its own session: its autogroup runs at nice %d (SCHED_IDLE would defer only to itself)",
             GROUP_NICE)
    return "low, own autogroup"


class _SchedAttr(ctypes.Structure):
    """struct sched_attr (linux/sched/types.h), its first version's fields and the clamps."""

    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
                ("nice", ctypes.c_int32), ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64),
                ("util_min", ctypes.c_uint32), ("util_max", ctypes.c_uint32)]


def _sched_attr(syscalls: tuple[int, int], libc: ctypes.CDLL) -> _SchedAttr:
    attr = _SchedAttr(size=ctypes.sizeof(_SchedAttr))
    if libc.syscall(syscalls[1], 0, ctypes.byref(attr), ctypes.sizeof(_SchedAttr), 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return attr


def request_cpu_slice(ms: float) -> float | None:
    """Ask the kernel to run this thread in slices of `ms` (0: leave the kernel's), before it
    starts threads (they inherit it). Returns the slice in effect, ms, or None where the kernel
    keeps no slice per task (not Linux, or Linux before 6.12).

    Linux's EEVDF scheduler (6.6+) runs the runnable task with the earliest virtual deadline,
    its eligible time plus its slice; since 6.12 a task may ask for its own slice, no privilege
    needed, and one that asks for a shorter slice than the running task's preempts it when it
    wakes. A gateway's loop sleeps until a request comes, works a fraction of a millisecond,
    and sleeps again: at the kernel's 1.4 ms it waits behind whatever a worker, a learner or
    a load generator started (`bench/cpu_priority.py`). Its own CPU share does not change, but
    when busy it is preempted sooner too: `bench/serve.py`'s live pass was slower at 0.2 ms, so
    a gateway asks for none unless `GatewaySettings.cpu_slice_ms` says so."""
    syscalls = SCHED_ATTR_SYSCALLS.get(platform.machine())
    if not sys.platform.startswith("linux") or syscalls is None:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        attr = _sched_attr(syscalls, libc)
        if attr.policy not in (os.SCHED_OTHER, os.SCHED_BATCH) or attr.runtime == 0:
            return None  # a kernel before 6.12 reports no slice for a fair task
        if ms > 0:
            attr.runtime, attr.flags = round(ms * 1e6), 0
            if libc.syscall(syscalls[0], 0, ctypes.byref(attr), 0) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            attr = _sched_attr(syscalls, libc)
    except OSError as exc:
        log.warning("could not set the CPU slice (%s): the kernel's is used", exc)
        return None
    return float(attr.runtime) / 1e6
