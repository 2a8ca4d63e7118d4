"""GeNN 5 backend (`genn`): the model contract as a custom PyGeNN neuron, all trials in one batch.

Owns the GeNN neuron model (exact propagator, Brian2's refractory rule via the last spike step, input
arriving while refractory dropped as DESIGN §1a measured), the shared drive as a per-batch event
table, the bounded spike-recording windows, and the batched model itself (batch = trials on CUDA; one
trial at a time on GeNN's single-threaded CPU backend, which only runs batch size 1). Written against
PyGeNN 5.4's API; the CPU backend passes the contract suite and matches native spike for spike at full
scale (PyGeNN built from source by a session, not in CI); the CUDA path is NOT RUN HERE (no GPU).

Builds: one folder per generated code, `work_root/genn/<key>`, the key hashing everything that changes it (network,
batch size, precision, GeNN backend, PyGeNN version, GPU architecture, our model code), generated, compiled and
loaded under a lock, so array tasks sharing a build root never rebuild one folder concurrently. The CUDA device is
`device_id`, selected explicitly (GeNN's device_select_method MANUAL), the device whose architecture the build key
holds. Spike recording: the window of steps kept between two pulls is sized from the job's host memory limit
(`memory.host_budget_bytes`: cgroup, Slurm allocation) and the device's free memory (GeNN keeps the buffer on both),
overridable by environment.
Entry points: `GeNNBackend`, `GeNNOptions`, `neuron_model_code`, `recording_window_steps`, `drive_tables`,
`build_key`, `free_memory_bytes`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from flyhpc.backends.base import RUN_ONLY, Backend, BuildReport, Capabilities, Probe, RunReport, import_probe
from flyhpc.backends.memory import host_budget_bytes
from flyhpc.drive import Drive
from flyhpc.errors import ConfigError, UnsupportedFeature
from flyhpc.files import build_lock
from flyhpc.model import Params
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable

WINDOW_ENV = "GENN_RECORDING_WINDOW_STEPS"
MAX_SLOTS_ENV = "GENN_RECORDING_WINDOW_MAX_SLOTS"
DEFAULT_WINDOW_STEPS = 100_000
# The recording buffer may take this share of the memory free on the device and of what the job may still use on
# the host (GeNN 5 keeps it on both: VarLocation::HOST_DEVICE), and this many bytes where neither can be read.
RECORDING_MEMORY_FRACTION = 0.5
UNKNOWN_FREE_RECORDING_BYTES = 1 << 30
BUILD_FORMAT = 1  # bump when the generated project changes for the same key
NEVER_SPIKED = -1_000_000_000  # "last spike step" of a neuron that has not spiked yet

# GeNN step n runs, per neuron: (1) apply the input of contract step n-1 (recurrent deliveries in Isyn
# to g, drive kicks to v) unless the neuron was refractory at n-1 -- DESIGN §1a: Brian2 drops input in
# the spike step s and the whole window s .. s+ref-1 (GeNN's Isyn still arrives; it is discarded);
# (2) contract step n: integrate exactly when not refractory, else freeze.
# GeNN delivers a spike of step m at step m + 1 + axonal_delay_steps, so axonal delay D gives the
# contract's delivery at step m + D; a drive event of step n is read from the event table at step n + 1.
SIM_CODE = """
const int n = (int)rint(t / dt);
if (n >= 1) {
    const unsigned int prev = (unsigned int)(n - 1);
    const bool kicked = DriveNext < DriveEnd && driveSteps[DriveNext] == prev;
    if (kicked) {
        DriveNext++;
    }
    if (n - 1 != LastSpikeStep && (n - 1 - LastSpikeStep) >= RefSteps) {
        G += Isyn;
        if (kicked) {
            V += Kick;
        }
    }
}
if ((n - LastSpikeStep) >= RefSteps) {
    const scalar u = V - V0;
    V = V0 + A * u + Coef * (B - A) * G;
    G = B * G;
}
"""
THRESHOLD_CODE = "((int)rint(t / dt) - LastSpikeStep) >= RefSteps && V > Vth"
RESET_CODE = """
V = Vrst;
G = 0.0;
LastSpikeStep = (int)rint(t / dt);
"""


@dataclass(frozen=True)
class GeNNOptions:
    """Settings of the genn backend: GeNN code backend ("cuda" or "single_threaded_cpu") and CUDA device."""

    genn_backend: str = "cuda"
    device_id: int = field(default=0, metadata=RUN_ONLY)

    def __post_init__(self) -> None:
        if self.genn_backend not in ("cuda", "single_threaded_cpu"):
            raise ConfigError(f"genn: genn_backend must be 'cuda' or 'single_threaded_cpu', got {self.genn_backend!r}")
        if isinstance(self.device_id, bool) or not isinstance(self.device_id, int) or self.device_id < 0:
            raise ConfigError(f"genn: device_id must be an integer >= 0, got {self.device_id!r}")


def propagator(params: Params) -> dict[str, float]:
    """The contract's one-step propagator constants: A = exp(-dt/tau_m), B = exp(-dt/tau_s), Coef."""
    return {"A": math.exp(-params.dt_ms / params.tau_m_ms), "B": math.exp(-params.dt_ms / params.tau_s_ms),
            "Coef": params.tau_s_ms / (params.tau_s_ms - params.tau_m_ms)}


def neuron_params(params: Params) -> dict[str, float]:
    """Homogeneous parameters of the GeNN neuron (mV and dimensionless constants)."""
    return {"V0": params.v_0_mv, "Vrst": params.v_rst_mv, "Vth": params.v_th_mv, "Kick": params.kick_mv,
            **propagator(params)}


def neuron_model_code() -> dict:
    """Keyword arguments of `pygenn.create_neuron_model` for the contract neuron (no pygenn import).

    Variables: V, G (scalar, per batch), LastSpikeStep (int, per batch), DriveNext/DriveEnd (uint, per
    batch: this trial's slice of the shared `driveSteps` table) and RefSteps (int, shared by batches).
    """
    return {
        "params": ["V0", "Vrst", "Vth", "Kick", "A", "B", "Coef"],
        "vars": [("V", "scalar"), ("G", "scalar"), ("LastSpikeStep", "int"),
                 ("DriveNext", "unsigned int"), ("DriveEnd", "unsigned int"),
                 ("RefSteps", "int", "READ_ONLY")],
        "extra_global_params": [("driveSteps", "unsigned int*")],
        "sim_code": SIM_CODE,
        "threshold_condition_code": THRESHOLD_CODE,
        "reset_code": RESET_CODE,
    }


def recording_bytes_per_step(n_neurons: int, n_batch: int) -> int:
    """Bytes of GeNN's spike-recording buffer per recorded step: ceil(n / 32) uint32 words per batch
    (GeNN 5.4 runtime.cc: numRecordingWords = ceilDivide(numNeurons, 32) * batchSize * timesteps)."""
    return 4 * (-(-int(n_neurons) // 32)) * int(n_batch)


def _largest_divisor_at_most(n: int, cap: int) -> int:
    best = 1
    for d in range(1, math.isqrt(n) + 1):
        if n % d == 0:
            for k in (d, n // d):
                if best < k <= cap:
                    best = k
    return best


def recording_window_steps(n_steps: int, n_batch: int, *, n_neurons: int, free_bytes: int | None,
                           env: dict | None = None) -> int:
    """Steps recorded between two pulls of GeNN's recording buffer, sized to the memory there is.

    max_slots (recorded steps x batches) = $GENN_RECORDING_WINDOW_MAX_SLOTS if set, else what
    RECORDING_MEMORY_FRACTION of `free_bytes` holds at ceil(n_neurons / 32) x 4 bytes a slot, else (free memory
    unknown) what UNKNOWN_FREE_RECORDING_BYTES hold. window = min(n_steps, $GENN_RECORDING_WINDOW_STEPS (default
    100,000), max_slots // n_batch), then the largest divisor of n_steps not above it, so every window is full.
    (8 trials x 4,333 words x 4 B = 139 kB a step: the former fixed 800,000 slots took 13.9 GB at full scale.)

    Raises
    ------
    ConfigError
        If an environment value is not an integer, or n_steps, n_batch or n_neurons < 1.
    """
    env = os.environ if env is None else env
    if n_steps < 1 or n_batch < 1 or n_neurons < 1:
        raise ConfigError(f"genn: n_steps, n_batch and n_neurons must be >= 1, got {n_steps!r}, {n_batch!r}, "
                          f"{n_neurons!r}")

    def read(name: str) -> int | None:
        raw = env.get(name)
        if raw is None or raw == "":
            return None
        try:
            return max(1, int(raw))
        except ValueError:
            raise ConfigError(f"genn: ${name} must be an integer, got {raw!r}") from None

    requested = read(WINDOW_ENV) or DEFAULT_WINDOW_STEPS
    max_slots = read(MAX_SLOTS_ENV)
    if max_slots is None:
        budget = RECORDING_MEMORY_FRACTION * free_bytes if free_bytes is not None else UNKNOWN_FREE_RECORDING_BYTES
        max_slots = int(budget // recording_bytes_per_step(n_neurons, 1))
    window = max(1, min(n_steps, requested, max_slots // n_batch))
    return _largest_divisor_at_most(n_steps, window)


def _nvidia_smi(field_name: str, device_id: int, env: dict) -> str | None:
    """One value of `nvidia-smi --query-gpu` for CUDA device `device_id` (through $CUDA_VISIBLE_DEVICES)."""
    if not shutil.which("nvidia-smi"):
        return None
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    ident = visible[device_id] if device_id < len(visible) else str(device_id)
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field_name}", "--format=csv,noheader,nounits", f"--id={ident}"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else ""
    return line or None


def free_memory_bytes(genn_backend: str, device_id: int = 0, env: dict | None = None) -> int | None:
    """Memory the recording buffer can use: what the job may still fill on the host (its cgroup limit or Slurm
    allocation, not the node's free memory), and for CUDA also the device's free memory (nvidia-smi), whichever is
    smaller; None when neither can be read."""
    env = os.environ if env is None else env
    values = [host_budget_bytes(env)]
    if genn_backend == "cuda":
        free_mib = _nvidia_smi("memory.free", device_id, env)
        values.append(int(float(free_mib)) * (1 << 20) if free_mib and free_mib.replace(".", "").isdigit() else None)
    known = [v for v in values if v is not None]
    return min(known) if known else None


def gpu_arch(device_id: int = 0, env: dict | None = None) -> str:
    """Compute capability of CUDA device `device_id` (e.g. "9.0"), "unknown" where nvidia-smi cannot say. GeNN's
    CUDA backend generates code for the device it finds, so this is part of a build's key."""
    return _nvidia_smi("compute_cap", device_id, os.environ if env is None else env) or "unknown"


def build_key(spec_digest: str, n_batch: int, precision: str, genn_backend: str, pygenn_version: str,
              arch: str) -> str:
    """sha256 naming the build folder of one generated GeNN model: everything that changes the generated code."""
    code = json.dumps(neuron_model_code(), sort_keys=True)
    body = {"spec": spec_digest, "batch_size": int(n_batch), "precision": precision, "genn_backend": genn_backend,
            "pygenn": pygenn_version, "gpu_arch": arch, "model_code": hashlib.sha256(code.encode()).hexdigest(),
            "format": BUILD_FORMAT}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def drive_tables(drive: Drive, n_neurons: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The drive as GeNN reads it: one step table plus per-(batch, neuron) [next, end) slices into it.

    Returns
    -------
    steps : uint32 array of every event step, grouped by batch then neuron, ascending within a group.
    next_idx, end_idx : uint32 arrays of shape (n_trials, n_neurons).
    """
    if drive.n_steps >= 2**32 - 1:
        raise UnsupportedFeature(f"genn: {drive.n_steps} steps do not fit the uint32 drive table")
    parts, next_idx = [], np.zeros((drive.n_trials, n_neurons), np.uint32)
    end_idx = np.zeros_like(next_idx)
    offset = 0
    for b, trial in enumerate(drive.trials):
        order = np.lexsort((trial.steps, trial.neurons))  # by neuron, then step
        neurons, steps = trial.neurons[order], trial.steps[order]
        counts = np.bincount(neurons, minlength=n_neurons).astype(np.int64)
        starts = offset + np.concatenate([[0], np.cumsum(counts)[:-1]])
        next_idx[b] = starts
        end_idx[b] = starts + counts
        parts.append(steps.astype(np.uint32))
        offset += int(counts.sum())
    if offset >= 2**32:
        raise UnsupportedFeature(f"genn: {offset} drive events do not fit uint32 indices")
    steps_all = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
    if steps_all.size == 0:
        steps_all = np.zeros(1, np.uint32)  # GeNN cannot allocate an empty extra global parameter
    return steps_all, next_idx, end_idx


class GeNNBackend(Backend):
    """PyGeNN 5.4: one batched model (batch = trials), sparse synapses with an 18-step axonal delay."""

    name: ClassVar[str] = "genn"
    caps: ClassVar[Capabilities] = Capabilities(
        device="gpu", batching="batched", drive="events", precisions=("float64", "float32"), compiles=True,
        deterministic=True, image="flyhpc-genn", verified_here="CPU mode only", display_name="GeNN (GPU)",
        needs=frozenset({"gpu"}), cpu_fallback_options={"genn_backend": "single_threaded_cpu"})
    Options: ClassVar[type] = GeNNOptions

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._model = None
        self._pop = None
        self._table: SpikeTable | None = None
        self._versions: dict[str, str] = {}

    @classmethod
    def probe(cls) -> Probe:
        """PyGeNN's version; imports pygenn, allocates nothing, never raises."""
        return import_probe("pygenn")

    def _build_probe(self) -> Probe:
        """The probe, and whether PyGeNN has the GeNN backend the options ask for. PyGeNN imports each backend
        module it was built with and silently drops those that fail (genn_model.backend_modules): its CUDA
        backend is missing where PyGeNN was built without CUDA_PATH set, and fails to load without the driver's
        libcuda.so.1 (no GPU, or an image run without --nv)."""
        probe = self._probed()
        if not probe.ok:
            return probe
        from pygenn import genn_model

        wanted = self.options.genn_backend
        if wanted in genn_model.backend_modules:
            return probe
        built = any(Path(genn_model.__file__).parent.glob(f"{wanted}_backend*.so"))
        why = ("its extension is there but does not load (for CUDA: libcuda.so.1, the driver's library, is not "
               "found: no GPU driver here, or an image run without --nv)" if built else
               "PyGeNN was built without it (GeNN's setup.py builds the CUDA backend only with CUDA_PATH set at "
               "build time: scripts/build-pygenn.sh)")
        return Probe(False, f"PyGeNN has no {wanted!r} backend here: {why}; available: "
                            f"{', '.join(genn_model.backend_modules) or 'none'}", probe.versions)

    def _build(self, spec: NetworkSpec, n_steps: int, probe: Probe) -> BuildReport:
        """Check inputs; the GeNN model is generated per batch size in `_run` (it needs the number of trials).

        Raises
        ------
        UnsupportedFeature
            If the delay is shorter than one step.
        """
        if spec.params.delay_steps < 1:
            raise UnsupportedFeature(f"backend {self.name!r} needs a delay of >= 1 step")
        self._versions = dict(probe.versions)
        arch = gpu_arch(self.options.device_id) if self.options.genn_backend == "cuda" else "cpu"
        self._versions["gpu_arch"] = arch
        return BuildReport(cached=False, work_dir=str(self.work_root / self.name), versions=self._versions)

    def _work_dir(self, n_batch: int) -> Path:
        """The build folder of this network at batch size `n_batch` (see `build_key`)."""
        key = build_key(self._spec.digest(), n_batch, self.precision, self.options.genn_backend,
                        self._versions.get("pygenn", "unknown"), self._versions.get("gpu_arch", "unknown"))
        return self.work_root / self.name / key[:32]

    def _make_model(self, n_batch: int):
        from pygenn import (GeNNModel, VarAccess, create_neuron_model, init_postsynaptic,
                            init_weight_update)

        spec = self._spec
        code = neuron_model_code()
        vars_ = [(v[0], v[1], getattr(VarAccess, v[2])) if len(v) == 3 else v for v in code["vars"]]
        model_cls = create_neuron_model("flyhpc_lif", **{**code, "vars": vars_})
        precision = "double" if self.precision == "float64" else "float"
        kwargs = {}
        if self.options.genn_backend == "cuda":
            # GeNN 5.4's optimiser.cc uses manual_device_id only when device_select_method is MANUAL (OPTIMAL and
            # MOST_MEMORY pick a device themselves). MANUAL is 5.4's default (GeNN 4's was OPTIMAL); said here so
            # that the device is the one whose architecture the build key holds, whatever the default.
            from pygenn import genn_model

            select = genn_model.backend_modules["cuda"].DeviceSelect.MANUAL
            kwargs = {"device_select_method": select, "manual_device_id": self.options.device_id}
        model = GeNNModel(precision, "flyhpc_genn", backend=self.options.genn_backend, **kwargs)
        model.dt = spec.params.dt_ms
        model.batch_size = n_batch
        init = {"V": spec.params.v_0_mv, "G": 0.0, "LastSpikeStep": NEVER_SPIKED, "DriveNext": 0,
                "DriveEnd": 0, "RefSteps": np.asarray(spec.refractory_steps, np.int32)}
        pop = model.add_neuron_population("neurons", spec.n_neurons, model_cls, neuron_params(spec.params), init)
        pop.spike_recording_enabled = True
        syn = model.add_synapse_population(
            "recurrent", "SPARSE", pop, pop,
            init_weight_update("StaticPulse", {}, {"g": np.asarray(spec.weights_mv, np.float64)}),
            init_postsynaptic("DeltaCurr"))
        syn.axonal_delay_steps = spec.params.delay_steps
        syn.set_sparse_connections(spec.pre_indices.astype(np.uint32), np.asarray(spec.indices, np.uint32))
        return model, pop

    def _run(self, drive: Drive) -> RunReport:
        """Simulate every trial: one model with batch = trials on CUDA; on GeNN's single-threaded CPU
        backend, which only runs batch size 1, one model run per trial (same generated code)."""
        batched = self.options.genn_backend == "cuda"
        groups = [drive.trials] if batched else [(t,) for t in drive.trials]
        tables, window, work_dir, stepping_s = [], 0, "", 0.0
        for group in groups:
            table, window, work_dir, seconds = self._run_batch(dataclasses.replace(drive, trials=tuple(group)))
            tables.append(table)
            stepping_s += seconds
        self._table = SpikeTable.concat(tables)
        # inner_s: GeNN's stepping alone; the sim phase also holds code generation, compile and load, which
        # need the batch size (the number of trials) and so cannot happen in build().
        return RunReport(inner_s=stepping_s, notes={"recording_window_steps": str(window), "work_dir": work_dir,
                                "batch_size": str(len(groups[0]) if groups else 0)})

    def _run_batch(self, drive: Drive) -> tuple[SpikeTable, int, str, float]:
        """Build and load a model with batch = the drive's trials, upload the drive, step in windows.
        Returns (spikes, window steps, work dir, seconds spent stepping and pulling recordings)."""
        self._close()  # unload the model of the previous batch (or run)
        steps, next_idx, end_idx = drive_tables(drive, self._spec.n_neurons)
        model, pop = self._make_model(drive.n_trials)
        pop.extra_global_params["driveSteps"].set_init_values(steps)
        window = recording_window_steps(drive.n_steps, drive.n_trials, n_neurons=self._spec.n_neurons,
                                        free_bytes=free_memory_bytes(self.options.genn_backend, self.options.device_id))
        work_dir = self._work_dir(drive.n_trials)
        # Generated, compiled and loaded under the folder's lock: another task with the same key waits, then
        # finds the code up to date (GeNN regenerates nothing and make compiles nothing).
        with build_lock(work_dir):
            work_dir.mkdir(parents=True, exist_ok=True)
            model.build(path_to_model=str(work_dir))
            model.load(num_recording_timesteps=window)
        self._model, self._pop = model, pop
        for var, arr in (("DriveNext", next_idx), ("DriveEnd", end_idx)):
            pop.vars[var].current_view[:] = arr.reshape(pop.vars[var].current_view.shape)
            pop.vars[var].push_to_device()
        trials, step_parts, neuron_parts = [], [], []
        t0 = time.perf_counter()
        for _ in range(drive.n_steps // window):
            for _ in range(window):
                model.step_time()
            model.pull_recording_buffers_from_device()
            for b, (times_ms, ids) in enumerate(pop.spike_recording_data):
                s = np.rint(np.asarray(times_ms) / self._spec.params.dt_ms).astype(np.int64)
                step_parts.append(s)
                neuron_parts.append(np.asarray(ids, np.int32))
                trials.append(np.full(s.shape, drive.trials[b].trial, np.int32))
        stepping_s = time.perf_counter() - t0
        table = SpikeTable.from_arrays(np.concatenate(trials) if trials else [],
                                       np.concatenate(step_parts) if step_parts else [],
                                       np.concatenate(neuron_parts) if neuron_parts else [])
        return table, window, str(work_dir), stepping_s

    def _collect(self) -> SpikeTable:
        """The spikes `_run` pulled off the device window by window."""
        return self._table

    def _close(self) -> None:
        """Unload the GeNN model (frees device memory) and drop the spikes."""
        if self._model is not None:
            unload = getattr(self._model, "unload", None)
            if unload is not None:
                unload()
        self._model = self._pop = None
        self._table = None
