"""bench/cpu_priority.py, short: every case runs and reports the probe's share of waiting and
the learner's cores (its figures are the bench's to print, not a test's to time)."""
import json
import subprocess
import sys
from pathlib import Path

from app.cpu_priority import request_cpu_slice

ROOT = Path(__file__).resolve().parents[2]


def test_every_case_reports_the_probes_wait_and_the_learners_cores():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "cpu_priority.py"), "--seconds", "0.3", "--rounds", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    cases = result["cases"]
    one_session = {"one session, no learner", "one session, set_cpu_priority", "one session, normal learner"}
    # a short slice is tried where the kernel keeps one per task (Linux 6.12+; this machine's)
    sliced = {f"{name}, slice 0.2 ms" for name in one_session} if request_cpu_slice(0) is not None else set()
    assert set(cases) == {"own sessions, no learner", "own sessions, SCHED_IDLE", "own sessions, set_cpu_priority",
                          *one_session, *sliced}
    assert result["slice_ms"]["kernel"] == request_cpu_slice(0)
    for name, case in cases.items():
        assert 0.0 < case["run_share"] <= 1.0 and 0.0 <= case["wait_share"] <= 1.0, name
        assert case["late_p99_ms"] >= 0.0, name
        assert ("learner_cores" in case) == ("no learner" not in name), name
        if "learner_cores" in case:
            assert case["learner_cores"] > 0.0, name  # it ran: some core was free some of the time
