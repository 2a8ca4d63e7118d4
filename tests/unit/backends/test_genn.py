"""GeNN backend without GeNN: our model code in OUR READING of GeNN's step order (a hand-written C loop, not GeNN;
GeNN itself runs the contract in tests/contract/test_isolated_simulators.py where PyGeNN is built), recording
windows sized to free memory, drive tables, and, with a STAND-IN for PyGeNN that records what the backend asks of it,
the build folders (one per batch size and precision, built under a lock) and the refusal of a missing CUDA backend.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
import subprocess
import textwrap

import numpy as np
import pytest

from flyhpc.backends import genn as gb
from flyhpc.drive import make_drive
from flyhpc.errors import ConfigError
from flyhpc.files import build_lock_path
from flyhpc.model import Params
from flyhpc.network import NetworkSpec

from tests.unit.backends.networks import program_spikes, pytorch_reference, small_spec


# -- GeNN ------------------------------------------------------------------------------------------
def _genn_like_c(spec: NetworkSpec, drive, window_vars) -> str:
    """C program: GeNN's per-step order (Isyn of spikes from step n-1-D, then sim/threshold/reset)."""
    steps, nxt, end = window_vars
    p = gb.neuron_params(spec.params)
    arr = lambda name, ctype, a: f"static {ctype} {name}[] = {{{', '.join(str(int(x)) for x in a) or '0'}}};"
    pre = spec.pre_indices
    return textwrap.dedent(f"""
    #include <math.h>
    #include <stdbool.h>
    #include <stdio.h>
    typedef double scalar;
    #define N {spec.n_neurons}
    #define NB {drive.n_trials}
    #define E {spec.n_edges}
    #define D {spec.params.delay_steps}
    #define R (D + 2)
    {arr('pre_i', 'int', pre)} {arr('post_i', 'int', spec.indices)}
    static double w[] = {{{', '.join(repr(float(x)) for x in spec.weights_mv)}}};
    {arr('driveSteps', 'unsigned int', steps)} {arr('next0', 'unsigned int', nxt.ravel())}
    {arr('end0', 'unsigned int', end.ravel())} {arr('ref', 'int', spec.refractory_steps)}
    static double Vs[NB][N], Gs[NB][N], buf[NB][R][N]; static int Ls[NB][N]; static unsigned int Nx[NB][N], En[NB][N];
    int main(void) {{
      const double dt = {spec.params.dt_ms!r};
      const scalar V0 = {p['V0']!r}, Vrst = {p['Vrst']!r}, Vth = {p['Vth']!r}, Kick = {p['Kick']!r};
      const scalar A = {p['A']!r}, B = {p['B']!r}, Coef = {p['Coef']!r};
      for (int b = 0; b < NB; b++) for (int i = 0; i < N; i++) {{
        Vs[b][i] = V0; Gs[b][i] = 0; Ls[b][i] = {gb.NEVER_SPIKED}; Nx[b][i] = next0[b*N+i]; En[b][i] = end0[b*N+i]; }}
      for (int n = 0; n < {drive.n_steps}; n++) for (int b = 0; b < NB; b++) {{
        const double t = n * dt;
        int spiked[N];
        for (int i = 0; i < N; i++) {{
          scalar V = Vs[b][i], G = Gs[b][i]; int LastSpikeStep = Ls[b][i];
          unsigned int DriveNext = Nx[b][i], DriveEnd = En[b][i]; const int RefSteps = ref[i];
          const scalar Isyn = buf[b][n % R][i]; buf[b][n % R][i] = 0;
          {{ {gb.SIM_CODE} }}
          spiked[i] = ({gb.THRESHOLD_CODE});
          if (spiked[i]) {{ {gb.RESET_CODE} printf("%d %d %d\\n", b, n, i); }}
          Vs[b][i] = V; Gs[b][i] = G; Ls[b][i] = LastSpikeStep; Nx[b][i] = DriveNext;
        }}
        for (int e = 0; e < E; e++) if (spiked[pre_i[e]]) buf[b][(n + 1 + D) % R][post_i[e]] += w[e];
      }}
      return 0;
    }}
    """)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_model_code_in_our_reading_of_genns_step_order_matches_pytorch(tmp_path):
    """The sim/threshold/reset code pasted into a C loop that encodes OUR reading of GeNN's delivery (Isyn of step
    n-1-D, event table read at n+1). It checks the code against that reading, not GeNN; GeNN itself runs the
    contract scenarios in tests/contract/test_isolated_simulators.py (where .venv-genn has PyGeNN)."""
    pytest.importorskip("torch", reason="the pytorch backend (torch: pip install -e '.[torch]') is the reference here")
    spec = small_spec()
    drive = make_drive(spec, 600, 3, base_seed=5)
    src = tmp_path / "genn_like.c"
    src.write_text(_genn_like_c(spec, drive, gb.drive_tables(drive, spec.n_neurons)))
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "sim"), str(src), "-lm"], check=True)
    assert program_spikes(tmp_path / "sim") == pytorch_reference(spec, drive)


def test_neuron_model_code_names_every_variable():
    code = gb.neuron_model_code()
    names = [v[0] for v in code["vars"]] + code["params"] + ["driveSteps", "Isyn"]
    for token in ("V", "G", "LastSpikeStep", "DriveNext", "RefSteps", "A", "B", "Coef", "Kick", "driveSteps", "Isyn"):
        assert token in names and token in code["sim_code"] + code["threshold_condition_code"]
    assert dict((v[0], v[2]) for v in code["vars"] if len(v) == 3) == {"RefSteps": "READ_ONLY"}  # per neuron, shared by batches (GeNN 5)


def test_propagator_constants():
    c = gb.propagator(Params())
    assert c["A"] == pytest.approx(np.exp(-0.1 / 20)) and c["B"] == pytest.approx(np.exp(-0.1 / 5))
    assert c["Coef"] == pytest.approx(5 / (5 - 20))


FULL = 138_639  # neurons at full scale: 4,333 recording words a step and batch


@pytest.mark.parametrize("n_steps,n_batch,free_gb,want", [
    (1_000_000, 1, 80, 100_000), (1_000_000, 8, 80, 100_000), (1_000_000, 8, 16, 50_000),
    (100_000, 32, 16, 12_500), (1000, 32, 16, 1000), (1_000_000, 8, None, 6_250)])
def test_recording_window_fits_the_free_memory(n_steps, n_batch, free_gb, want):
    """The buffer (window x batches x 4,333 words x 4 B, on device and host) stays within half the free memory.
    Before: a fixed 800,000 slots, i.e. 13.9 GB for 8 trials at >= 10 s, whatever the GPU had."""
    free = None if free_gb is None else free_gb << 30
    window = gb.recording_window_steps(n_steps, n_batch, n_neurons=FULL, free_bytes=free, env={})
    assert window == want and n_steps % window == 0
    budget = gb.RECORDING_MEMORY_FRACTION * free if free else gb.UNKNOWN_FREE_RECORDING_BYTES
    assert window * gb.recording_bytes_per_step(FULL, n_batch) <= budget


def test_recording_window_reads_env_and_keeps_every_window_full():
    w = gb.recording_window_steps(1_000_003, 7, n_neurons=FULL, free_bytes=None, env={gb.MAX_SLOTS_ENV: "800000"})
    assert 1_000_003 % w == 0 and w * 7 <= 800_000
    env = {gb.WINDOW_ENV: "3000"}  # the largest divisor of 10,000 not above 3,000
    assert gb.recording_window_steps(10_000, 1, n_neurons=FULL, free_bytes=80 << 30, env=env) == 2500
    with pytest.raises(ConfigError, match="GENN_RECORDING_WINDOW_MAX_SLOTS"):
        gb.recording_window_steps(100, 1, n_neurons=FULL, free_bytes=None, env={gb.MAX_SLOTS_ENV: "lots"})
    assert gb.recording_bytes_per_step(FULL, 8) == 4333 * 4 * 8


def test_free_memory_takes_the_smaller_of_device_and_host(monkeypatch):
    monkeypatch.setattr(gb, "host_budget_bytes", lambda env: 64 << 30)  # the job's limit (tests/unit/backends/test_memory.py)
    monkeypatch.setattr(gb, "_nvidia_smi", lambda field, device, env: "10240" if field == "memory.free" else None)
    assert gb.free_memory_bytes("cuda", 0) == 10 << 30
    assert gb.free_memory_bytes("single_threaded_cpu", 0) == 64 << 30
    monkeypatch.setattr(gb, "_nvidia_smi", lambda field, device, env: None)
    assert gb.free_memory_bytes("cuda", 0) == 64 << 30


def test_drive_tables_slice_each_trial():
    spec = small_spec()
    drive = make_drive(spec, 400, 2, base_seed=3)
    steps, nxt, end = gb.drive_tables(drive, spec.n_neurons)
    for b, trial in enumerate(drive.trials):
        for i in np.unique(trial.neurons):
            assert steps[nxt[b, i]:end[b, i]].tolist() == trial.steps[trial.neurons == i].tolist()
        assert int((end[b] - nxt[b]).sum()) == trial.n_events


# -- a STAND-IN for PyGeNN ---------------------------------------------------------------------------------------
class _Recorder:
    """What the stand-in saw: (build folder, lock held?) per model build, and the preferences of each model."""

    def __init__(self):
        self.builds: list[tuple[str, bool]] = []
        self.preferences: list[dict] = []


# Preference names of PyGeNN 5.4's CUDA backend (pygenn/src/cudaBackend.cc, and genn.cc for PreferencesBase and
# PreferencesCUDAHIP): GeNNModel.build raises ValueError("Unknown preference ...") for any other.
CUDA_PREFERENCES = {"show_ptx_info", "generate_line_info", "enable_nvtx", "device_select_method", "manual_device_id",
                    "block_size_select_method", "manual_block_sizes", "constant_cache_overhead", "optimize_code",
                    "debug_code", "genn_log_level", "code_generator_log_level", "transpiler_log_level",
                    "runtime_log_level", "enable_nccl_reductions"}


def fake_pygenn(recorder: _Recorder, backends=("cuda", "single_threaded_cpu")):
    """A STAND-IN for the pygenn package: the calls GeNNBackend makes, no code generation. Its model.build checks
    that the backend holds the build folder's lock (<folder>.build-lock names this process) and records the
    folder; its recording data are empty."""
    import types

    class View:
        def __init__(self, shape):
            self.current_view = np.zeros(shape)

        def push_to_device(self):
            pass

    class Pop:
        def __init__(self, n, batch):
            self.n, self.batch = n, batch
            self.spike_recording_enabled = False
            self.extra_global_params = {"driveSteps": types.SimpleNamespace(set_init_values=lambda v: None)}
            self.vars = {"DriveNext": View((batch, n) if batch > 1 else (n,)),
                         "DriveEnd": View((batch, n) if batch > 1 else (n,))}

        @property
        def spike_recording_data(self):
            return [(np.zeros(0), np.zeros(0, np.int32)) for _ in range(self.batch)]

    class Model:
        def __init__(self, precision, name, backend=None, **kwargs):
            if backend not in backends:
                raise KeyError(backend)
            unknown = set(kwargs) - (CUDA_PREFERENCES if backend == "cuda" else set())
            if unknown:
                raise ValueError(f"Unknown preference {sorted(unknown)[0]!r}")
            recorder.preferences.append(kwargs)
            self.batch_size = 1

        def add_neuron_population(self, name, n, model, params, init):
            self.pop = Pop(n, self.batch_size)
            return self.pop

        def add_synapse_population(self, *args):
            return types.SimpleNamespace(set_sparse_connections=lambda pre, post: None)

        def build(self, path_to_model):
            lock = build_lock_path(Path(path_to_model))
            held = lock.is_file() and f"pid={os.getpid()}\n" in lock.read_text()
            recorder.builds.append((path_to_model, held))

        def load(self, num_recording_timesteps):
            self.window = num_recording_timesteps

        def step_time(self):
            pass

        def pull_recording_buffers_from_device(self):
            pass

        def unload(self):
            pass

    genn_model = types.ModuleType("pygenn.genn_model")
    device_select = types.SimpleNamespace(OPTIMAL="OPTIMAL", MOST_MEMORY="MOST_MEMORY", MANUAL="MANUAL")
    genn_model.backend_modules = {b: types.SimpleNamespace(DeviceSelect=device_select) for b in backends}
    genn_model.__file__ = "/nonexistent/pygenn/genn_model.py"
    pygenn = types.ModuleType("pygenn")
    pygenn.__version__ = "5.4.0-stand-in"
    pygenn.genn_model = genn_model
    pygenn.GeNNModel = Model
    pygenn.VarAccess = types.SimpleNamespace(READ_ONLY="READ_ONLY")
    pygenn.create_neuron_model = lambda name, **kw: name
    pygenn.init_postsynaptic = lambda *a, **k: None
    pygenn.init_weight_update = lambda *a, **k: None
    return pygenn, genn_model


@pytest.fixture
def standin_pygenn(monkeypatch):
    recorder = _Recorder()
    pygenn, genn_model = fake_pygenn(recorder)
    monkeypatch.setitem(__import__("sys").modules, "pygenn", pygenn)
    monkeypatch.setitem(__import__("sys").modules, "pygenn.genn_model", genn_model)
    monkeypatch.setattr(gb, "gpu_arch", lambda device_id=0, env=None: "9.0", raising=False)  # (absent before the fix)
    return recorder


def test_build_folders_differ_by_batch_size_and_precision_and_are_built_under_their_lock(tmp_path, standin_pygenn):
    """Before: work_root/genn/<network digest> for every batch size and precision, built with no lock, in a root
    shared by every array task: tasks with other trial counts regenerated one folder concurrently."""
    spec = small_spec()
    folders = {}
    for precision in ("float64", "float32"):
        for n_trials in (1, 2, 2):
            be = gb.GeNNBackend(gb.GeNNOptions(genn_backend="cuda"), precision=precision, work_root=tmp_path)
            be.build(spec, 100)
            be.run(make_drive(spec, 100, n_trials))
            be.close()
            folders.setdefault((precision, n_trials), set()).add(standin_pygenn.builds[-1][0])
    assert all(len(f) == 1 for f in folders.values())  # the same inputs reuse one folder
    assert len(set().union(*folders.values())) == 4  # batch size and precision each give another folder
    assert all(held for _, held in standin_pygenn.builds)  # generated and compiled under <folder>.build-lock


def test_the_cuda_device_is_selected_by_hand(tmp_path, standin_pygenn):
    """GeNN's optimiser uses manual_device_id only with device_select_method MANUAL: both are passed, so the device
    is device_id, whose architecture the build key holds, whatever GeNN's default method."""
    spec = small_spec()
    for options, want in ((gb.GeNNOptions(genn_backend="cuda", device_id=1),
                           {"device_select_method": "MANUAL", "manual_device_id": 1}),
                          (gb.GeNNOptions(genn_backend="single_threaded_cpu"), {})):
        be = gb.GeNNBackend(options, work_root=tmp_path)
        be.build(spec, 100)
        be.run(make_drive(spec, 100, 1))
        be.close()
        assert standin_pygenn.preferences[-1] == want


def test_build_key_covers_what_changes_the_generated_code():
    base = dict(spec_digest="abc", n_batch=8, precision="float64", genn_backend="cuda", pygenn_version="5.4.0",
                arch="9.0")
    keys = {gb.build_key(**base)}
    for field, other in (("spec_digest", "abd"), ("n_batch", 4), ("precision", "float32"),
                         ("genn_backend", "single_threaded_cpu"), ("pygenn_version", "5.4.1"), ("arch", "8.0")):
        keys.add(gb.build_key(**{**base, field: other}))
    assert len(keys) == 7


def test_a_pygenn_without_its_cuda_backend_is_refused_at_build(tmp_path, monkeypatch):
    """Before: build() passed and GeNNModel(backend="cuda") failed later (a KeyError inside PyGeNN)."""
    from flyhpc.errors import BackendUnavailable

    pygenn, genn_model = fake_pygenn(_Recorder(), backends=("single_threaded_cpu",))
    monkeypatch.setitem(__import__("sys").modules, "pygenn", pygenn)
    monkeypatch.setitem(__import__("sys").modules, "pygenn.genn_model", genn_model)
    with pytest.raises(BackendUnavailable, match="PyGeNN has no 'cuda' backend here: PyGeNN was built without it"):
        gb.GeNNBackend(gb.GeNNOptions(genn_backend="cuda"), work_root=tmp_path).build(small_spec(), 100)
    cpu = gb.GeNNBackend(gb.GeNNOptions(genn_backend="single_threaded_cpu"), work_root=tmp_path)
    assert cpu.build(small_spec(), 100).versions["gpu_arch"] == "cpu"
