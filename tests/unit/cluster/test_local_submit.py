"""`flyhpc submit` with the local executor returns as soon as the jobs are started, also when its output goes
into a pipe (`flyhpc submit ... | tail`): the jobs must not hold the caller's stdout/stderr open until they end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from flyhpc.cluster import slurm
from flyhpc.cluster.status import status

from tests.integration.test_quick_grid import write_tiny_connectome

ROOT = Path(__file__).resolve().parents[3]


def test_a_piped_local_submit_returns_while_its_tasks_still_run(tmp_path):
    conn = write_tiny_connectome(tmp_path / "conn", n_neurons=300, n_edges=5000, seed=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "flyhpc", "submit", "--grid", "quick", "--backend", "native", "--experiment",
            "index:0,1@200", "--t-run", "0.05", "--n-run", "1", "--rounds", "4", "--connectome", str(conn),
            "--results-root", str(tmp_path / "results"), "--run-label", "pipe"]
    t0 = time.monotonic()
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=600)
    returned_s = time.monotonic() - t0
    assert proc.returncode == 0 and "submitted 4 task(s)" in proc.stdout, proc.stderr
    still = status(tmp_path / "results", "pipe")
    assert still.active > 0, f"every task had ended before the pipe closed ({returned_s:.1f} s)"
    final = slurm.wait(tmp_path / "results", "pipe", timeout_s=300, poll_s=1)
    assert final.complete
