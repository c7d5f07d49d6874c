"""Starting and stopping streamrank processes (worker, learner, gateway) for the demo, tests and benchmarks."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from app.metrics import sample_totals
from app.settings import ROOT, Settings, env_name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read the same settings."""
    env = dict(os.environ)
    defaults = Settings().values()
    for key, value in settings.values().items():
        if value == defaults[key] and key not in ALWAYS_PASSED:
            continue
        env[env_name(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# Passed even at their defaults: a parent's environment must not override what it was given.
ALWAYS_PASSED = ("kafka_broker", "app_id", "topic_prefix", "topic_partitions", "state_dir", "store",
                 "worker_metrics_port", "gateway_port", "learner_metrics_port")


@dataclass
class Process:
    """A child process with its log file; `kill()` is SIGKILL, `stop()` a clean SIGTERM."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)  # type: ignore[type-arg]

    def start(self) -> "Process":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        # A process group of its own (stopped whole by killpg), in this session: a session of its
        # own would be an autogroup of its own, where the learner's SCHED_IDLE defers to nothing
        # outside it (app/cpu_priority.py).
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, process_group=0)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
            self.proc.wait()  # type: ignore[union-attr]

    def stop(self, timeout_s: float = 30.0) -> None:
        if not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout_s)  # type: ignore[union-attr]
        except subprocess.TimeoutExpired:
            self.kill()

    def dump_tasks(self, wait_s: float = 3.0) -> str:
        """A Faust worker's threads and asyncio tasks (mode prints them on SIGUSR1), for a stall."""
        if not self.alive():
            return self.tail()
        os.kill(self.proc.pid, signal.SIGUSR1)  # type: ignore[union-attr]
        time.sleep(wait_s)
        return self.tail(400)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def worker_process(settings: Settings, log_path: Path) -> Process:
    faust = str(Path(sys.executable).with_name("faust"))
    return Process([faust, "-A", "app", "worker", "--without-web", "-l", "info"], settings_env(settings), log_path)


def learner_process(settings: Settings, log_path: Path) -> Process:
    """`streamrank learner`: the active learner, or a hot standby while another one holds the lock."""
    return Process([sys.executable, "-m", "app.cli", "learner"], settings_env(settings), log_path)


def gateway_process(settings: Settings, log_path: Path) -> Process:
    return Process([sys.executable, "-m", "app.cli", "gateway"], settings_env(settings), log_path)


def scrape(port: int, timeout_s: float = 2.0) -> dict[str, float]:
    """Prometheus text from 127.0.0.1:port, summed per metric name (labels dropped)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as resp:
        text = resp.read().decode()
    return sample_totals(text)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.25, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass  # a server not listening yet
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not reached in {timeout_s:.0f}s")
