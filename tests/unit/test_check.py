"""`flyhpc check`: the contract part passes a correct backend and fails a broken one (exit 4), GPU backends without
a GPU take their CPU path or only build, parity and timing on a small network, the collected table, the Slurm
array script, and the reports written.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from flyhpc import backends, check, contract
from flyhpc.backends.native.backend import NativeBackend
from flyhpc.cli import cli
from flyhpc.cluster.profiles import profile_from_dict
from flyhpc.spikes import SpikeTable

BROKEN = f"{__name__}:LateNativeBackend"


class LateNativeBackend(NativeBackend):
    """native with every spike reported one step late: must fail the contract and parity."""

    name = "late"

    def _collect(self) -> SpikeTable:
        t = super()._collect()
        keep = t.step + 1 < self._n_steps
        return SpikeTable.from_arrays(t.trial[keep], t.step[keep] + 1, t.neuron[keep])


@pytest.fixture
def with_broken(monkeypatch):
    monkeypatch.setattr(backends, "REGISTRY", {**backends.REGISTRY, "late": BROKEN})


def test_contract_part_passes_native_and_writes_both_reports(tmp_path):
    plan = check.CheckPlan(parts=("contract",), work_root=tmp_path / "builds")
    reports, bad = check.run_check(["native"], plan, tmp_path / "out", asked=True, log=lambda _m: None)
    assert not bad and reports[0]["status"] == "passed"
    part = reports[0]["parts"]["contract"]
    assert part["passed"] == part["n_scenarios"] == len(contract.SCENARIOS) == 13
    stem = f"check-native-{check.host_name()}"
    saved = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
    assert saved["parts"]["contract"]["passed"] == 13
    assert "13/13 passed" in (tmp_path / "out" / f"{stem}.md").read_text()


def test_broken_backend_fails_the_check_with_exit_4(tmp_path, with_broken):
    result = CliRunner().invoke(cli, ["check", "--backend", "late", "--part", "contract", "--out", str(tmp_path)])
    assert result.exit_code == 4, result.output
    saved = json.loads(next(tmp_path.glob("check-late-*.json")).read_text())
    failed = {s["name"] for s in saved["parts"]["contract"]["scenarios"] if s["status"] == "failed"}
    assert {"kick_gives_spike_one_step_later", "delay_is_18_steps"} <= failed
    assert "failed: kick_gives_spike_one_step_later" in result.output


def test_a_backend_asked_for_that_cannot_run_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("NESTGPU_LIB", str(tmp_path / "missing.so"))
    result = CliRunner().invoke(cli, ["check", "--backend", "nestgpu", "--part", "contract", "--out", str(tmp_path)])
    assert result.exit_code == 4 and "nestgpu: unavailable" in result.output


def test_gpu_backends_without_a_gpu_use_their_cpu_path_or_only_build():
    assert check.mode_of("native", gpu=False) == ("cpu", {})
    assert check.mode_of("genn", gpu=False) == ("cpu fallback", {"genn_backend": "single_threaded_cpu"})
    assert check.mode_of("brian2genn", gpu=False) == ("cpu fallback", {"use_gpu": False})
    assert check.mode_of("brian2cuda", gpu=False) == ("build only", {})
    assert check.mode_of("nestgpu", gpu=False) == ("build only", {})
    assert check.mode_of("genn", gpu=True) == ("gpu", {})


def _small_inputs(plan):
    inputs = check._Inputs(plan)
    inputs._spec = contract.contract_spec()
    return inputs


def test_parity_and_timing_parts_on_a_small_network(tmp_path, with_broken):
    plan = check.CheckPlan(parts=("parity", "timing"), parity_n_runs=(1, 2), timing_t_runs=(0.05,), timing_n_runs=(1, 2),
                           work_root=tmp_path)
    inputs = _small_inputs(plan)
    good = check._parity("pytorch", {}, inputs, tmp_path, log=lambda _m: None)
    assert good["status"] == "passed" and [r["verdict"] for r in good["runs"]] == ["identical", "identical"]
    late = check._parity("late", {}, inputs, tmp_path, log=lambda _m: None)  # same rates, spikes one step late
    assert late["status"] == "passed" and late["runs"][0]["verdict"] == "within the seed's parity"
    assert not late["runs"][0]["identical"] and late["runs"][0]["jaccard"] == 1.0
    timing = check._timing("native", {}, inputs, tmp_path, log=lambda _m: None)
    assert [(r["t_run_s"], r["n_run"]) for r in timing["grid"]] == [(0.05, 1), (0.05, 2)]
    assert all(r["sim"] > 0 and r["realtime_ratio"] > 0 and r["spikes"] > 0 for r in timing["grid"])


def test_parity_metrics_against_the_seed_parity():
    a = SpikeTable.from_arrays(np.zeros(6, np.int32), np.arange(6), np.array([1, 2, 2, 3, 3, 3], np.int32))
    assert check.parity_metrics(a, a, 1.0, 1)["verdict"] == "identical"
    b = SpikeTable.from_arrays(np.zeros(6, np.int32), np.arange(6) + 1, np.array([1, 2, 2, 3, 3, 3], np.int32))
    m = check.parity_metrics(a, b, 1.0, 1)  # same counts per neuron, other times: within the seed's parity
    assert not m["identical"] and m["jaccard"] == 1.0 and m["verdict"] == "within the seed's parity"
    c = SpikeTable.from_arrays(np.zeros(3, np.int32), np.arange(3), np.array([1, 2, 9], np.int32))
    assert check.parity_metrics(a, c, 1.0, 1)["verdict"] == "below the seed's parity"


def test_collect_makes_one_table_and_fails_on_a_failed_report(tmp_path):
    for backend, status in (("genn", "passed"), ("nestgpu", "failed")):
        report = {"backend": backend, "host": "node7", "gpus": ["NVIDIA H100"], "mode": "gpu", "status": status,
                  "parts": {"contract": {"status": status, "scenarios": [{}], "passed": 13, "n_scenarios": 13},
                            "parity": {"status": "passed", "runs": [{"n_run": 1, "verdict": "identical", "jaccard": 1.0,
                                                                     "pearson": 1.0}]},
                            "timing": {"status": "passed", "grid": [{"t_run_s": 1.0, "n_run": 1, "sim": 0.5}]}}}
        (tmp_path / f"check-{backend}-node7.json").write_text(json.dumps(report))
    result = CliRunner().invoke(cli, ["check", "collect", str(tmp_path)])
    assert result.exit_code == 4
    assert "| genn | node7 | NVIDIA H100 | gpu | passed | 13/13 | 1: identical, 1, 1 | 0.5 |" in result.output
    assert (tmp_path / "check-summary.md").read_text().count("node7") == 2


def test_submit_script_is_one_array_task_per_gpu_image(tmp_path):
    profile = profile_from_dict({
        "cluster": {"executor": "slurm", "partition": "gpu", "account": "fly", "container": True,
                    "image_dir": "/img", "binds": ["/project"], "slurm_setup": ["module load apptainer"]},
        "default": {"gpus": 1, "cpus": 8, "mem_gb": 64},
        "backends": {b: {"image": f"flyhpc-{b}.sif"} for b in check.gpu_backends()}}, "site")
    script = check.submit_script(profile, check.gpu_backends(), tmp_path, time_min=40)
    assert sorted(check.gpu_backends()) == ["brian2cuda", "brian2genn", "genn", "nestgpu"]
    assert "#SBATCH --array=0-3" in script and "#SBATCH --gres=gpu:1" in script and "#SBATCH --time=40" in script
    assert "#SBATCH --partition=gpu" in script and "module load apptainer" in script
    for i, b in enumerate(check.gpu_backends()):
        assert f"  {i}) apptainer exec --nv --bind /project,{tmp_path} /img/flyhpc-{b}.sif flyhpc check --backend {b} " \
               f"--out {tmp_path} ;;" in script
    result = CliRunner().invoke(cli, ["check", "submit", "--profile", "example-site", "--out", str(tmp_path),
                                      "--dry-run"])
    assert result.exit_code == 0 and "#SBATCH --array=0-3" in result.output and "flyhpc-genn.sif" in result.output


def test_timing_grid_runs_cheapest_first_and_stops_at_the_time_budget(tmp_path):
    plan = check.CheckPlan(parts=("timing",), timing_t_runs=(0.05, 0.01), timing_n_runs=(2, 1), work_root=tmp_path)
    inputs = _small_inputs(plan)
    out = check._timing("native", {}, inputs, tmp_path, log=lambda _m: None)
    assert [(r["t_run_s"], r["n_run"]) for r in out["grid"]] == [(0.01, 1), (0.01, 2), (0.05, 1), (0.05, 2)]
    spent = check._timing("native", {}, inputs, tmp_path, log=lambda _m: None, deadline=0.0)
    assert spent["grid"] == [] and len(spent["skipped"]) == 4 and spent["status"] == "passed"
    assert "Skipped (time budget)" in check.markdown({"backend": "x", "host": "h", "status": "passed", "flyhpc": "0",
                                                      "python": "3", "started": "-", "parts": {"timing": spent}})
