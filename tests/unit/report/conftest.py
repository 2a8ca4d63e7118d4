"""A generated, collected label for the report tests: three backends, two rounds, a failure and a missing task.

Records and parquets are written as the worker writes them (real parquets via flyhpc.results.spikes, the
record fields the worker sets), the plan is recorded as `flyhpc bench` records it, and the real
`flyhpc.collect.collect` writes manifest.csv, benchmark-results.csv and checksums. brian2cpp and
native get identical spikes; pytorch loses a few; timings differ per backend, round and point.
"""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc import collect
from flyhpc.bundle import BundlePaths
from flyhpc.files import sha256_file, write_json_atomic
from flyhpc.results.spikes import SpikeTable, write_spikes
from tests.unit.bundles import make_task, plan

LABEL = "lab"
IDS = 720575940600000000 + np.arange(60, dtype=np.int64) * 7919
BACKENDS = ("brian2cpp", "native", "pytorch")
T_RUNS = (0.05, 0.1)
N_RUNS = (1, 2)
ROUNDS = (1, 2)
SIM_PER_TRIAL_S = {"brian2cpp": 8.0, "native": 0.1, "pytorch": 2.5}  # wall s per simulated trial-second
SOURCE = "synthetic:60n:900e:seed1"


def spikes_for(t_run_s: float, n_run: int, rnd: int, drop: int = 0) -> SpikeTable:
    """Poisson-like spikes of 60 neurons (10 silent), the same for the same point and round."""
    rng = np.random.default_rng([int(t_run_s * 1000), n_run, rnd])
    rates = np.where(np.arange(60) < 50, rng.gamma(2.0, 40.0, 60), 0.0)
    trial, step, neuron = [], [], []
    for k in range(n_run):
        counts = rng.poisson(rates * t_run_s)
        for i in np.flatnonzero(counts):
            steps = rng.choice(int(round(t_run_s / 1e-4)), size=min(counts[i], 400), replace=False)
            trial += [k] * steps.size
            step += steps.tolist()
            neuron += [int(i)] * steps.size
    table = SpikeTable.from_arrays(trial, step, neuron)
    if drop:
        keep = np.ones(len(table), bool)
        keep[np.linspace(0, len(table) - 1, drop).astype(int)] = False  # exactly `drop` spikes
        table = SpikeTable(table.trial[keep], table.step[keep], table.neuron[keep])
    return table


def write_result(task, status: str = "success", node: str = "node-a") -> None:
    """A task's parquet and record as the worker leaves them (phases depend on backend, point, round)."""
    paths = BundlePaths(task.results_root, task.run_label)
    sim = SIM_PER_TRIAL_S[task.backend] * task.t_run_s * task.n_run * (1.0 + 0.25 * (task.round - 1))
    phases = {"load": 0.4, "build": 3.0 if task.backend == "brian2cpp" else 0.5, "setup": 0.3, "sim": sim,
              "collect": 0.01, "write": 0.02}
    phases["total"] = sum(phases.values())
    framework = {"brian2cpp": "Brian2 (CPU)", "native": "native (CPU)", "pytorch": "PyTorch (CPU)"}[task.backend]
    rec = {"record_format": 1, "key": task.key, "run_label": task.run_label, "round": task.round,
           "backend": task.backend, "framework": framework, "experiment": "Sugar GRNs (200 Hz)",
           "experiment_key": "sugar", "t_run_s": task.t_run_s, "n_run": task.n_run, "seed": 0,
           "trials": list(range(task.n_run)), "status": status, "phases_s": phases, "node": node, "device": "cpu",
           "connectome_source": SOURCE, "connectome_digest": "ab" * 32, "synthetic_connectome": True,
           "flyhpc_version": "0.1.0", "python": "3.11.7", "versions": {"numpy": "2.3.5"},
           "started_utc": "2026-01-02T03:04:00Z", "finished_utc": "2026-01-02T03:04:05Z", "drive": "events",
           "dtype": "float64", "job_id": f"77{task.round}"}
    if status == "success":
        table = spikes_for(task.t_run_s, task.n_run, task.round, drop=5 if task.backend == "pytorch" else 0)
        write_spikes(paths.parquet(task), table, IDS, 0.1, task.stem)
        rec.update(spikes=len(table), active_neurons=int(np.unique(table.neuron).size),
                   parquet_sha256=sha256_file(paths.parquet(task)), parquet_bytes=paths.parquet(task).stat().st_size)
    write_json_atomic(paths.record(task), rec)


def make_label(root, label: str = LABEL, failures: bool = True) -> list:
    """Plan, write and collect a label; with `failures`, one pytorch task errs and one native task is missing."""
    tasks = [make_task(root, b, t, n, r, label) for r in ROUNDS for b in BACKENDS for t in T_RUNS for n in N_RUNS]
    plan(*tasks)
    for task in tasks:
        if failures and (task.backend, task.t_run_s, task.n_run, task.round) == ("native", 0.1, 2, 2):
            continue  # never ran: missing
        failed = failures and (task.backend, task.t_run_s, task.n_run, task.round) == ("pytorch", 0.05, 1, 2)
        write_result(task, "error: RuntimeError: out of luck" if failed else "success",
                     node="node-b" if task.backend == "pytorch" else "node-a")
    collect.collect(root, label)
    return tasks


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """results root holding `lab` (partial: 22 of 24 done) and `full` (complete), both collected."""
    root = tmp_path_factory.mktemp("results")
    make_label(root, LABEL)
    make_label(root, "full", failures=False)
    return root
