"""`flyhpc check`: the contract part passes a correct backend and fails a broken one (exit 4), GPU backends without
a GPU take their CPU path or only build (gpu_verified false; --require-gpu exits 4 and names a container started
without --nv), parity is judged per trial (a doubled, tripled or trial-scrambled copy of a real native result fails,
a step-shifted one is "not identical" with its first difference named), timing on a small network, the arrays
`check submit` plans, and the reports written (`check collect` and `check submit` themselves:
tests/unit/cli/test_check_cmd.py; submitted to the real Slurm: tests/integration/test_schedulers.py).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from flyhpc import backends, check, check_submit, check_verdicts, contract
from flyhpc.backends.native.backend import NativeBackend
from flyhpc.cli import cli
from flyhpc.cluster import executors
from flyhpc.cluster.profiles import profile_from_dict
from flyhpc.errors import ConfigError
from flyhpc.results.spikes import SpikeTable

BROKEN = f"{__name__}:LateNativeBackend"


class LateNativeBackend(NativeBackend):
    """native with every spike reported one step late: must fail the contract and parity."""

    name = "late"

    def _collect(self) -> SpikeTable:
        t = super()._collect()
        keep = t.step + 1 < self._n_steps
        return SpikeTable.from_arrays(t.trial[keep], t.step[keep] + 1, t.neuron[keep])


class TwiceNativeBackend(NativeBackend):
    """native whose recording window is read twice: every spike reported two times."""

    name = "twice"

    def _collect(self) -> SpikeTable:
        t = super()._collect()
        return SpikeTable.from_arrays(*(np.repeat(a, 2) for a in (t.trial, t.step, t.neuron)))


@pytest.fixture
def with_broken(monkeypatch):
    monkeypatch.setattr(backends, "REGISTRY", {**backends.REGISTRY, "late": BROKEN,
                                               "twice": f"{__name__}:TwiceNativeBackend"})


def test_contract_part_passes_native_and_writes_both_reports(tmp_path):
    plan = check.CheckPlan(parts=("contract",), work_root=tmp_path / "builds")
    reports, bad = check.run_check(["native"], plan, tmp_path / "out", asked=True, log=lambda _m: None)
    assert not bad and reports[0]["status"] == "passed"
    part = reports[0]["parts"]["contract"]
    assert part["passed"] == part["n_scenarios"] == len(contract.SCENARIOS) == 14
    stem = f"check-native-{check.host_name()}"
    saved = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
    assert saved["parts"]["contract"]["passed"] == 14
    assert "14/14 passed" in (tmp_path / "out" / f"{stem}.md").read_text()


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
    pytest.importorskip("torch", reason="the pytorch backend (torch: pip install -e '.[torch]') is the one "
                                        "that matches native here")
    plan = check.CheckPlan(parts=("parity", "timing"), parity_n_runs=(1, 2), timing_t_runs=(0.05,), timing_n_runs=(1, 2),
                           work_root=tmp_path)
    inputs = _small_inputs(plan)
    good = check._parity("pytorch", {}, inputs, tmp_path, log=lambda _m: None)
    assert good["status"] == "passed" and [r["verdict"] for r in good["runs"]] == ["identical", "identical"]
    assert all(r["first_difference"] is None and r["matched_within_one_step"] == 1.0 for r in good["runs"])
    lines = []
    late = check._parity("late", {}, inputs, tmp_path, log=lines.append)  # same rates, spikes one step late
    first = late["runs"][0]
    assert first["verdict"] == "not identical; within the seed's parity" and not first["identical"]
    native, other = first["first_difference"]["native"], first["first_difference"]["backend"]
    assert first["first_difference"]["index"] == 0 and other["step"] == native["step"] + 1
    assert (other["trial"], other["neuron"]) == (native["trial"], native["neuron"])
    assert first["matched_within_one_step"] == 1.0 and late["status"] == "passed"
    assert any("first difference at spike #0: native trial 0" in line for line in lines)
    twice = check._parity("twice", {}, inputs, tmp_path, log=lines.append)
    assert twice["status"] == "failed" and [r["passed"] for r in twice["runs"]] == [False, False]
    assert "twice:   " in lines[-1] and "count ratio 2.0000" in lines[-1]
    timing = check._timing("native", {}, inputs, tmp_path, log=lambda _m: None)
    assert [(r["t_run_s"], r["n_run"]) for r in timing["grid"]] == [(0.05, 1), (0.05, 2)]
    assert all(r["sim"] > 0 and r["realtime_ratio"] > 0 and r["spikes"] > 0 for r in timing["grid"])


@pytest.fixture(scope="module")
def native_3(tmp_path_factory):
    """A real native result: the contract network, 1 s, 3 trials of the seeded drive."""
    inputs = _small_inputs(check.CheckPlan(parts=("parity",)))
    table = inputs.native(int(round(1000.0 / inputs.spec().params.dt_ms)), 3, tmp_path_factory.mktemp("native"))
    assert len(table) > 100 and set(np.unique(table.trial)) == {0, 1, 2}
    return table


def _metrics(reference, other):
    return check_verdicts.parity_metrics(reference, other, 1.0, 3, dt_ms=0.1)


@pytest.mark.parametrize("copies", [2, 3])
def test_every_spike_twice_or_three_times_fails(native_3, copies):
    t = native_3
    m = _metrics(t, SpikeTable.from_arrays(*(np.repeat(a, copies) for a in (t.trial, t.step, t.neuron))))
    assert not m["passed"] and m["verdict"] == "not identical; outside the seed's parity"
    assert m["count_ratio"] == copies and m["jaccard"] == 1.0 and m["matched_within_one_step"] == 1.0
    assert m["failures"][0].endswith(f"(count ratio {copies:.4f}, allowed 1 ± 0.02)")
    assert all(not row["passed"] for row in m["trials"])


def test_trials_mixed_up_fail(native_3):
    t = native_3
    m = _metrics(t, SpikeTable.from_arrays(np.zeros_like(t.trial), t.step, t.neuron))  # every spike in trial 0
    assert not m["passed"] and m["count_ratio"] == 1.0  # pooled counts cannot see it
    assert [row["passed"] for row in m["trials"]] == [False, False, False]
    assert m["trials"][1]["spikes"] == 0 and any(f.startswith("trial 1: 0 spikes vs native") for f in m["failures"])
    shifted = _metrics(t, SpikeTable.from_arrays(t.trial + 1, t.step, t.neuron))  # trial k labelled k + 1
    assert not shifted["passed"] and any("spikes in trials outside 0..2" in f for f in shifted["failures"])


def test_step_shifted_is_not_identical_and_names_its_first_difference(native_3):
    t = native_3
    m = _metrics(t, SpikeTable.from_arrays(t.trial, t.step + 1, t.neuron))
    assert not m["identical"] and m["passed"] and m["verdict"] == "not identical; within the seed's parity"
    first = m["first_difference"]
    assert first["index"] == 0 and first["native"]["step"] + 1 == first["backend"]["step"]
    assert first["backend"]["time_ms"] == pytest.approx(first["native"]["time_ms"] + 0.1)
    assert m["matched_within_one_step"] == 1.0 and m["count_ratio"] == 1.0
    two = _metrics(t, SpikeTable.from_arrays(t.trial, t.step + 2, t.neuron))  # the same counts, two steps late
    assert two["passed"] and two["matched_within_one_step"] < 0.5
    assert _metrics(t, t)["verdict"] == "identical" and _metrics(t, t)["first_difference"] is None


def test_one_missing_spike_is_named_and_judged():
    a = SpikeTable.from_arrays(np.zeros(6, np.int32), np.arange(6), np.array([1, 2, 2, 3, 3, 3], np.int32))
    b = SpikeTable.from_arrays(a.trial[:5], a.step[:5], a.neuron[:5])  # the last spike lost
    m = check_verdicts.parity_metrics(a, b, 1.0, 1, dt_ms=0.1)
    assert m["first_difference"] == {"index": 5, "native": {"trial": 0, "step": 5, "time_ms": 0.5, "neuron": 3},
                                     "backend": None}
    assert not m["passed"] and m["count_ratio"] == pytest.approx(5 / 6)
    assert "spike #5: native trial 0, step 5 (0.5 ms), neuron 3; backend none" in \
        check_verdicts.describe_difference(m["first_difference"])
    c = SpikeTable.from_arrays(np.zeros(3, np.int32), np.arange(3), np.array([1, 2, 9], np.int32))
    assert any("Jaccard" in f for f in check_verdicts.parity_metrics(a, c, 1.0, 1, dt_ms=0.1)["failures"])
    silent = SpikeTable.from_arrays([], [], [])
    assert check_verdicts.parity_metrics(silent, silent, 1.0, 2, dt_ms=0.1)["verdict"] == "identical"


def test_check_submit_plans_one_array_task_per_gpu_image(tmp_path):
    profile = profile_from_dict({
        "cluster": {"executor": "slurm", "partition": "gpu", "account": "fly", "container": True,
                    "image_dir": "/img", "binds": ["/project"], "slurm_setup": ["module load apptainer"]},
        "default": {"gpus": 1, "cpus": 8, "mem_gb": 64},
        "backends": {b: {"image": f"flyhpc-{b}.sif"} for b in check.gpu_backends()}}, "site")
    arrays = check_submit.plan_arrays(profile, check.gpu_backends(), tmp_path, time_min=40)
    assert sorted(check.gpu_backends()) == ["brian2cuda", "brian2genn", "genn", "nestgpu"]
    assert [(a.backend, a.image, a.time_min, a.resources.gpus) for a in arrays] == [
        (b, f"/img/flyhpc-{b}.sif", 40, 1) for b in check.gpu_backends()]
    for array, b in zip(arrays, check.gpu_backends()):
        (task,) = array.tasks
        assert task.args == ("check", "--backend", b, "--out", str(tmp_path), "--require-gpu")
        params = executors.slurm_parameters(profile, array, check_submit.LABEL)
        assert params["job_name"] == f"flyhpc.check.{b}" and params["gres"] == "gpu:1" and params["time"] == 40
        assert params["partition"] == "gpu" and params["setup"] == ["module load apptainer"]
        assert executors.python_command(profile, array, [str(tmp_path)]) == \
            f"apptainer exec --nv --bind /project,{tmp_path} /img/flyhpc-{b}.sif python"


def test_check_submit_without_containers_is_one_array_of_the_largest_resources(tmp_path):
    profile = profile_from_dict({"cluster": {"executor": "slurm"}, "default": {"gpus": 0, "cpus": 2, "mem_gb": 4},
                                 "backends": {"genn": {"gpus": 1, "cpus": 4, "mem_gb": 2, "image": "g.sif"}}}, "site")
    (array,) = check_submit.plan_arrays(profile, ["native", "genn"], tmp_path, time_min=10)
    assert array.backend == "native+genn" and array.image == ""
    assert (array.resources.gpus, array.resources.cpus, array.resources.mem_gb) == (1, 4, 4)
    assert [t.args[-1] for t in array.tasks] == [str(tmp_path), "--require-gpu"]
    container = dataclasses.replace(profile, container=True)
    with pytest.raises(ConfigError, match="names no image for 'native'"):
        check_submit.plan_arrays(container, ["genn", "native"], tmp_path)


def test_timing_grid_runs_cheapest_first_and_stops_at_the_time_budget(tmp_path):
    plan = check.CheckPlan(parts=("timing",), timing_t_runs=(0.05, 0.01), timing_n_runs=(2, 1), work_root=tmp_path)
    inputs = _small_inputs(plan)
    out = check._timing("native", {}, inputs, tmp_path, log=lambda _m: None)
    assert [(r["t_run_s"], r["n_run"]) for r in out["grid"]] == [(0.01, 1), (0.01, 2), (0.05, 1), (0.05, 2)]
    spent = check._timing("native", {}, inputs, tmp_path, log=lambda _m: None, deadline=0.0)
    assert spent["grid"] == [] and len(spent["skipped"]) == 4 and spent["status"] == "passed"
    assert "Skipped (time budget)" in check.markdown({"backend": "x", "host": "h", "status": "passed", "flyhpc": "0",
                                                      "python": "3", "started": "-", "parts": {"timing": spent}})


class GpuLikeNativeBackend(NativeBackend):
    """A stand-in GPU backend (this machine has none): native labelled device "gpu", whose "CPU code path" is
    native's clock engine; it shows how --require-gpu judges what ran where."""

    name = "gpulike"
    caps = dataclasses.replace(NativeBackend.caps, device="gpu", cpu_fallback_options={"engine": "clock"})


@pytest.fixture
def with_gpulike(monkeypatch):
    monkeypatch.setattr(backends, "REGISTRY", {**backends.REGISTRY, "gpulike": f"{__name__}:GpuLikeNativeBackend"})
    for name in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER", "FLYHPC_BACKEND_OPTIONS"):
        monkeypatch.delenv(name, raising=False)


def _check_gpulike(tmp_path, *flags):
    result = CliRunner().invoke(cli, ["check", "--backend", "gpulike", "--part", "contract", "--out", str(tmp_path),
                                      *flags])
    return result, json.loads(next(tmp_path.glob("check-gpulike-*.json")).read_text())


def test_require_gpu_fails_a_cpu_fallback_and_names_a_container_without_nv(tmp_path, monkeypatch, with_gpulike):
    monkeypatch.setattr(check, "gpu_names", lambda: [])
    monkeypatch.setenv("APPTAINER_CONTAINER", "/img/flyhpc-genn.sif")
    result, saved = _check_gpulike(tmp_path)
    assert result.exit_code == 0, result.output  # without the flag a CPU fallback that passes is a pass
    assert saved["mode"] == "cpu fallback" and saved["status"] == "passed" and saved["gpu_verified"] is False
    assert saved["gpu_reason"].startswith("cpu fallback: inside the Apptainer container /img/flyhpc-genn.sif started "
                                          "without --nv")
    assert "GPU verified: **no** (cpu fallback: inside the Apptainer container" in \
        next(tmp_path.glob("check-gpulike-*.md")).read_text()
    result, _saved = _check_gpulike(tmp_path, "--require-gpu")
    assert result.exit_code == 4 and "--require-gpu: gpulike: not verified on a GPU: cpu fallback: inside the " \
                                      "Apptainer container /img/flyhpc-genn.sif started without --nv" in result.output


def test_require_gpu_passes_a_run_on_the_gpu_but_not_options_that_pick_the_cpu(tmp_path, monkeypatch, with_gpulike):
    monkeypatch.setattr(check, "gpu_names", lambda: ["stand-in GPU"])
    result, saved = _check_gpulike(tmp_path, "--require-gpu")
    assert result.exit_code == 0, result.output
    assert saved["mode"] == "gpu" and saved["gpu_verified"] is True and saved["gpu_reason"] is None
    monkeypatch.setenv("FLYHPC_BACKEND_OPTIONS", '{"gpulike": {"engine": "clock"}}')
    result, saved = _check_gpulike(tmp_path, "--require-gpu")
    assert result.exit_code == 4 and saved["mode"] == "cpu fallback" and saved["gpu_verified"] is False
    assert "the backend's options select its CPU code path" in result.output
    native = CliRunner().invoke(cli, ["check", "--backend", "native", "--part", "contract", "--out", str(tmp_path),
                                      "--require-gpu"])
    assert native.exit_code == 4 and "--require-gpu: no GPU backend was checked" in native.output


def test_no_gpu_reason_reads_the_container_and_its_bound_driver(tmp_path):
    env = {"SINGULARITY_CONTAINER": "/img/x.sif"}
    assert "started without --nv" in check_verdicts.no_gpu_reason(env, tmp_path)
    (tmp_path / ".singularity.d" / "libs").mkdir(parents=True)
    (tmp_path / ".singularity.d" / "libs" / "libcuda.so.1").touch()
    (tmp_path / "dev").mkdir()
    assert "no /dev/nvidia* device" in check_verdicts.no_gpu_reason(env, tmp_path)
    (tmp_path / "dev" / "nvidia0").touch()
    assert check_verdicts.no_gpu_reason(env, tmp_path) == "no GPU visible (nvidia-smi lists none)"
    assert check_verdicts.no_gpu_reason({}, tmp_path) == "no GPU visible (nvidia-smi lists none)"
    build_only = {"device": "gpu", "status": "build only", "mode": "build only", "gpus": []}
    assert check_verdicts.gpu_verification(build_only, {}, tmp_path) == \
        (False, "build only: no GPU visible (nvidia-smi lists none)")
    assert check_verdicts.gpu_verification({"device": "cpu", "status": "passed"}) == (False, "a CPU backend")


def test_reports_are_written_after_every_part_and_name_the_precision_asked(tmp_path):
    """A check killed between parts leaves a report of the parts done ("incomplete", not GPU-verified); a precision
    asked for runs parity and timing at it and goes into the file names, so float32 and float64 reports coexist."""
    plan = check.CheckPlan(parts=("contract", "parity", "timing"), parity_n_runs=(1,), timing_t_runs=(0.05,),
                           timing_n_runs=(1,), work_root=tmp_path / "b", precision="float32")
    seen = []
    report = check.check_backend("pytorch", plan, _small_inputs(plan), gpu=False, log=lambda _m: None,
                                 on_part=lambda partial: seen.append(json.loads(json.dumps(partial))))
    assert [(s["status"], list(s["parts"]), s["parts_left"]) for s in seen] == [
        ("incomplete", ["contract"], ["parity", "timing"]), ("incomplete", ["contract", "parity"], ["timing"]),
        ("incomplete", ["contract", "parity", "timing"], [])]
    assert not any(s["gpu_verified"] for s in seen)
    partial_gpu = {**seen[1], "device": "gpu", "mode": "gpu"}
    assert check_verdicts.gpu_verification(partial_gpu) == (
        False, "the check has not finished (still running, or stopped by a time limit)")
    assert report["status"] == "passed" and report["precision"] == "float32" and "parts_left" not in report
    json_path, md_path = check.write_report(report, tmp_path / "out")
    assert json_path.name == f"check-pytorch-float32-{check.host_name()}.json"
    assert "parts not done" in check.markdown(seen[0]) and "parts not done" not in md_path.read_text()
    assert check.collect(tmp_path / "out")[0].count("| pytorch float32 |") == 1


def test_pytorch_told_to_use_cuda_counts_as_a_gpu_run():
    from flyhpc.backends.pytorch import PyTorchBackend, PyTorchOptions

    assert PyTorchBackend.runs_on_gpu(PyTorchOptions(device="cuda:1")) and PyTorchBackend.runs_on_gpu(
        PyTorchOptions(device="cuda"))
    assert not PyTorchBackend.runs_on_gpu(PyTorchOptions()) and not PyTorchBackend.runs_on_gpu(PyTorchOptions("cpu"))
    assert not NativeBackend.runs_on_gpu(None)
    assert check_verdicts.gpu_verification({"device": "gpu", "status": "passed", "mode": "gpu"}) == (True, None)


def test_quick_is_the_short_window_grid_and_explicit_flags_win(tmp_path, monkeypatch):
    plans = []
    monkeypatch.setattr(check, "run_check", lambda names, plan, *a, **k: (plans.append(plan), ([], False))[1])
    for args in (["--quick"], ["--quick", "--t-run", "0.5"], []):
        result = CliRunner().invoke(cli, ["check", "--backend", "native", "--out", str(tmp_path), *args])
        assert result.exit_code == 0, result.output
    quick, mixed, full = plans
    assert (quick.parity_n_runs, quick.timing_t_runs, quick.timing_n_runs) == ((1, 4), (1.0, 10.0), (1, 8))
    assert mixed.timing_t_runs == (0.5,) and mixed.timing_n_runs == (1, 8)
    assert full.timing_t_runs == (0.1, 1.0, 10.0) and full.precision is None
