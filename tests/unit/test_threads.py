"""Thread pools are capped whatever was imported first (each case runs in a fresh interpreter)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.settings import ROOT

# What the child reports: torch's intra-op threads and the thread count of every BLAS loaded.
REPORT = """
import json, torch
from threadpoolctl import threadpool_info
print(json.dumps([torch.get_num_threads(), [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]]))
"""
ORDERS = {
    "numpy first": "import numpy\nfrom app.threads import limit_threads\nlimit_threads(2)\n",
    "torch first": "import torch\nfrom app.threads import limit_threads\nlimit_threads(2)\n",
    "limits first": "from app.threads import limit_threads\nlimit_threads(2)\nimport numpy\n",
}


@pytest.mark.parametrize("order", ORDERS)
def test_blas_and_torch_threads_are_capped_whatever_the_import_order(order):
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "4"}  # settings win over these
    out = subprocess.run([sys.executable, "-c", ORDERS[order] + REPORT], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    torch_threads, blas = json.loads(out.splitlines()[-1])
    assert torch_threads == 2
    assert blas and set(blas) == {1}
