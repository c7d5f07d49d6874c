"""bench/version_install.py on a small shop: every version goes through the gateway's follower."""
from __future__ import annotations

import json
import sys

from tests.unit.test_plots import bench


def test_the_install_bench_serves_every_version_and_times_the_loop(monkeypatch, capsys):
    module = bench("version_install")
    monkeypatch.setenv("STREAMRANK_STATE_DIR", "unset")  # the bench sets both: put back after
    monkeypatch.setenv("STREAMRANK_MODEL_SIGNING_KEY", "k" * 64)
    monkeypatch.setattr(sys, "argv", ["version_install.py", "--events", "6000", "--items", "300", "--shoppers", "400",
                                      "--version-every", "1000", "--pause", "0.05"])
    before = sys.getswitchinterval()
    try:
        module.main()  # asserts that the follower served every version
        assert sys.getswitchinterval() == 0.0005  # as `streamrank gateway` sets it
    finally:
        sys.setswitchinterval(before)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["versions"] >= 5 and out["rank"] is True and out["switch_interval_ms"] == 0.5
    # on the event loop in slices, the same with replaced versions freed in a thread, and built in a thread
    for way in ("loop", "loop, release in a thread", "thread"):
        built = out[way]
        assert built["measured_versions"] == out["versions"] - out["versions"] // 2
        assert built["installing"]["probes"] > 0 and built["idle"]["probes"] > 0
        assert 0 <= built["idle"]["p50_ms"] <= built["idle"]["max_ms"] and built["version_mb"] > 0
        assert built["install_wall_ms"] > 0
