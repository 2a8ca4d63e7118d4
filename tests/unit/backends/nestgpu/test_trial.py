"""The NEST GPU trial worker against a STAND-IN for NEST GPU's Python module (tests/support/nestgpu_standin: the real
wrapper's signatures, NEST GPU's refusals, errors where the real library would corrupt memory or read freed memory,
and NEST GPU's step order as read from its source, with flyhpc's user_m1 step itself recording the spikes): the
spikes the worker reads back (recorded times -> steps) against the native backend's, the contract scenarios through
worker processes, the backend's probe, and user_m1's port count. NEST GPU itself is not run here (no GPU).
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from flyhpc import contract
from flyhpc.backends.nestgpu import backend as nb
from flyhpc.backends.nestgpu import trial
from flyhpc.drive import Drive, TrialDrive, make_drive
from tests.unit.backends.nestgpu.conftest import REPO, STAND_IN_DIR, native_spikes
from tests.unit.backends.nestgpu.test_backend import small_spec


def request_for(tmp_path, spec, n_steps=300, trial_no=0, drive=None, max_events=nb.MAX_EVENTS_PER_RETRIEVAL):
    nb.write_network(spec, tmp_path / "network.npz")
    drive = drive or make_drive(spec, n_steps, trial_no + 1, base_seed=2)
    t = drive.trials[trial_no]
    np.savez(tmp_path / "drive.npz", steps=t.steps, neurons=t.neurons)
    return {"trial": t.trial, "n_steps": n_steps, "seed": 7, "network_file": str(tmp_path / "network.npz"),
            "drive_file": str(tmp_path / "drive.npz"), "spikes_file": str(tmp_path / "spikes.npz"),
            "chunks": nb.retrieval_chunks(n_steps, spec.refractory_steps, max_events)}, t


def _standin_env(monkeypatch):
    """Worker processes import the stand-in as nestgpu; the probe finds it and any existing file as the library."""
    monkeypatch.syspath_prepend(str(STAND_IN_DIR))
    monkeypatch.setenv("NESTGPU_LIB", str(Path(trial.__file__)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(STAND_IN_DIR), str(REPO)]))


def test_worker_runs_against_the_real_signatures_and_lifetimes(tmp_path, standin):
    """Before the fix the worker called Create("user_m1", n) (NEST GPU sizes the input buffer for 1 port; user_m1
    has 2) and passed weight_array as a list (freed before the connect reads it): both are errors here."""
    spec = small_spec()
    request, drive = request_for(tmp_path, spec)
    standin.Create("spike_generator", 3)  # something created first: node ids of the neurons do not start at 0
    result = trial.simulate(request)
    assert result["n_spikes"] > 0  # recorded by the stand-in running user_m1 (compared with native below)
    create = next(f for name, f in standin.STATE["calls"] if name == "Create" and f["model_name"] == "user_m1")
    assert create["n_ports"] == trial.N_PORTS == standin.USER_M1_PORTS == 2
    recurrent, kicks = standin.STATE["connections"]
    i0 = 3
    assert recurrent["port"] == 0 and kicks["port"] == 1
    assert np.array_equal(recurrent["source"], spec.pre_indices + i0)
    assert np.array_equal(recurrent["target"], np.asarray(spec.indices) + i0)
    assert np.array_equal(recurrent["weight"], np.asarray(spec.weights_mv, np.float32))  # read inside Connect
    assert np.allclose(recurrent["delay"], spec.params.delay_steps * spec.params.dt_ms)
    assert sorted(kicks["target"].tolist()) == sorted((np.unique(drive.neurons) + i0).tolist())
    assert np.allclose(kicks["weight"], spec.params.kick_mv)
    refractory = {node: s["ref_steps"] for node, s in standin.STATE["status"].items() if "ref_steps" in s}
    assert refractory == {i0 + k: float(r) for k, r in enumerate(spec.refractory_steps)}


def test_standin_rejects_what_the_real_library_would_corrupt(standin):
    """The stand-in is not vacuous: the default port count and a list of weights are errors."""
    with pytest.raises(standin.StandInError, match="declares 2 receptor ports but NEST GPU sizes its input buffer for 1"):
        standin.Create("user_m1", 4)
    neurons = standin.Create("user_m1", 4, 2)
    with pytest.raises(standin.StandInError, match="use after free"):
        standin.Connect([0, 1], [2, 3], {"rule": "one_to_one"}, {"weight_array": [1.0, 2.0], "receptor": 0})
    with pytest.raises(standin.StandInError, match="use after free"):
        standin.Connect([0, 1], [2, 3], {"rule": "one_to_one"}, {"weight": {"array": [1.0, 2.0]}})
    owned = (ctypes.c_float * 2)(1.0, 2.0)
    standin.Connect(neurons.ToList()[:2], [2, 3], {"rule": "one_to_one"},
                    {"weight_array": owned, "receptor": 1, "delay": 0.1})
    assert standin.STATE["connections"][0]["weight"].tolist() == [1.0, 2.0]
    with pytest.raises(standin.StandInError, match="receptor 2"):
        standin.Connect([0], [1], {"rule": "one_to_one"}, {"weight": 1.0, "receptor": 2, "delay": 0.1})
    with pytest.raises(ValueError, match="must be NodeSeq"):
        standin.ActivateRecSpikeTimes([0, 1], 10)


def test_worker_main_reports_a_standin_error_as_a_failed_attempt(tmp_path, standin, monkeypatch, capsys):
    spec = small_spec()
    request, _ = request_for(tmp_path, spec)
    (tmp_path / "req.json").write_text(__import__("json").dumps(request))
    monkeypatch.setattr(trial, "N_PORTS", 1)  # the old call
    assert trial.main([str(tmp_path / "req.json")]) == 1
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert '"status": "error"' in out and "StandInError" in out


@pytest.mark.parametrize("max_events", [nb.MAX_EVENTS_PER_RETRIEVAL, 3])
def test_worker_reads_back_the_spikes_of_the_native_backend(tmp_path, standin, monkeypatch, max_events):
    """The recorded times (a spike of contract step n at float32(dt) x (n + 2) ms) back to steps, spike for spike, with
    one retrieval chunk and with NEST GPU's buffering every 3 steps (at most 3 times a neuron in between: fewer than
    max_n - 1 = 3 would be a StandInError)."""
    monkeypatch.setattr(trial, "MAX_REC_SPIKE_TIMES", max_events + 1)
    spec = small_spec()
    drive = make_drive(spec, 600, 3, base_seed=5)
    got = []
    for k in range(drive.n_trials):
        standin.reset()
        request, _ = request_for(tmp_path, spec, 600, k, drive, max_events)
        result = trial.simulate(request)
        with np.load(request["spikes_file"]) as z:
            got += [(drive.trials[k].trial, s, n) for s, n in zip(z["steps"].tolist(), z["neurons"].tolist())]
        assert result["chunk_steps"] == min(600, max_events)
        assert ("SetRecSpikeTimesStep", {"i0": 0, "n": spec.n_neurons, "step": min(600, max_events)}) in \
            standin.STATE["calls"]
    want = native_spikes(spec, drive)
    assert len(want) > 50 and sorted(got) == want


def test_events_of_one_step_become_one_spike_with_their_count_as_height(tmp_path, standin):
    """NEST GPU refuses spike times that are not strictly increasing; a drive listing a neuron twice in one step (it is
    in both drive sets) used to make every attempt fail."""
    spec = small_spec()
    twice = TrialDrive(0, np.array([5, 5, 9], np.int64), np.array([0, 0, 1], np.int32))
    request, _ = request_for(tmp_path, spec, 50, 0, Drive(n_steps=50, base_seed=0, round=1, trials=(twice,)))
    trial.simulate(request)
    status = standin.STATE["status"]
    assert [status[g]["spike_heights"] for g in sorted(status) if "spike_times" in status[g]] == [[2.0], [1.0]]


def test_backend_runs_trials_through_the_worker_process_with_the_standin(tmp_path, monkeypatch):
    _standin_env(monkeypatch)
    spec = small_spec()
    drive = make_drive(spec, 200, 2)
    be = nb.NestGpuBackend(work_root=tmp_path)
    be.build(spec, 200)
    report = be.run(drive)
    table = be.spikes()
    assert report.notes["attempts"] == "1,1"
    assert sorted(zip(table.trial.tolist(), table.step.tolist(), table.neuron.tolist())) == native_spikes(spec, drive)
    be.close()


def test_the_contract_scenarios_pass_through_the_worker_processes(tmp_path, monkeypatch):
    """The 14 scenarios (delay, refractory window, input dropped while refractory, delivery in the spiking step...) on
    the nestgpu backend, its worker running NEST GPU's step order as read from its source (the stand-in)."""
    _standin_env(monkeypatch)
    results = contract.run_scenarios(contract.contract_runs_of(nb.NestGpuBackend, tmp_path))
    assert [(r.name, r.status, r.detail) for r in results if r.status != "passed"] == []
    assert len(results) == len(contract.SCENARIOS) == 14


def test_a_spike_in_the_last_step_is_read_back(tmp_path, standin):
    """The lead-in step: NEST GPU step m is contract step m - 1, so the trial simulates n_steps + 1 steps and a kick
    at n_steps - 2 gives a spike at the last step, n_steps - 1."""
    spec = small_spec()
    drive = Drive(n_steps=50, base_seed=0, round=1, trials=(TrialDrive(0, np.array([48]), np.array([0], np.int32)),))
    request, _ = request_for(tmp_path, spec, 50, 0, drive)
    trial.simulate(request)
    with np.load(request["spikes_file"]) as z:
        assert list(zip(z["steps"].tolist(), z["neurons"].tolist())) == [(49, 0)]
    assert native_spikes(spec, drive) == [(0, 49, 0)]


def test_probe_finds_nestgpu_without_importing_it(monkeypatch, tmp_path):
    """`import nestgpu` initialises CUDA (and exits the process without a GPU): the probe must not import it."""
    monkeypatch.delitem(sys.modules, "nestgpu", raising=False)
    monkeypatch.delenv("NESTGPU_LIB", raising=False)
    assert not nb.NestGpuBackend.probe().ok
    monkeypatch.syspath_prepend(str(STAND_IN_DIR))
    probe = nb.NestGpuBackend.probe()
    assert not probe.ok and "NESTGPU_LIB" in probe.reason
    monkeypatch.setenv("NESTGPU_LIB", str(tmp_path / "missing.so"))
    assert not nb.NestGpuBackend.probe().ok
    lib = tmp_path / "libnestgpukernel.so"
    lib.write_text("")
    monkeypatch.setenv("NESTGPU_LIB", str(lib))
    probe = nb.NestGpuBackend.probe()
    assert probe.ok and probe.versions["nestgpu_lib"] == str(lib)
    assert "nestgpu" not in sys.modules


def test_user_m1_refuses_another_port_count_than_the_worker_creates():
    header = (Path(nb.__file__).parent / "user_m1.h").read_text()
    source = (Path(nb.__file__).parent / "user_m1.cu").read_text()
    assert int(re.search(r"user_m1_n_port\s*=\s*(\d+)", header).group(1)) == trial.N_PORTS
    assert "if (n_port != user_m1_n_port)" in source and "throw ngpu_exception" in source
    assert "BaseNeuron::Init(i_node_0, n_node, user_m1_n_port" in source
