"""NEST GPU backend (`nestgpu`): one worker subprocess per trial, retried, spikes fetched in chunks.

Owns the parent side of the worker protocol (request files in, one JSON line and a spikes .npz out),
per-trial seeds, the retry policy and the retrieval-chunk arithmetic (NEST GPU keeps at most 3,999
spike times per neuron between two retrievals). The simulation itself lives in `nestgpu/trial.py`
with the contract neuron in `nestgpu/user_m1.cu` + `flyhpc_lif.cuh` (NEST GPU user model slot `user_m1`).
The probe finds NEST GPU without importing it (`import nestgpu` initialises CUDA). Built and linked here
(scripts/build-nestgpu.sh), the worker checked against a stand-in of NEST GPU's module that steps NEST GPU's order
(read from its source) with our neuron; NEST GPU itself NEVER SIMULATED HERE.
Entry points: `NestGpuBackend`, `NestGpuOptions`, `retrieval_chunks`, `trial_seed`, `run_trial`,
`max_recorded_steps`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from flyhpc.backends.base import RUN_ONLY, Backend, BuildReport, Capabilities, Probe, RunReport
from flyhpc.backends.nestgpu.trial import RECORD_OFFSET_STEPS
from flyhpc.drive import Drive, TrialDrive
from flyhpc.errors import ConfigError, TaskFailed, UnsupportedFeature
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable

LIB_ENV = "NESTGPU_LIB"  # nestgpu.py loads the library this names when it is imported
MAX_EVENTS_PER_RETRIEVAL = 3999  # NEST GPU's per-neuron spike-time buffer between retrievals
PROTOCOL = 1


@dataclass(frozen=True)
class NestGpuOptions:
    """Settings of the nestgpu backend.

    worker_cmd: command that starts one trial (default: this Python running the bundled worker);
    max_attempts: tries per trial; timeout_s: per-trial limit (None: max(20 x t_run_s + 120, 300)).
    """

    worker_cmd: tuple[str, ...] = field(default_factory=lambda: (sys.executable, "-m", "flyhpc.backends.nestgpu.trial"),
                                        metadata=RUN_ONLY)
    max_attempts: int = field(default=3, metadata=RUN_ONLY)
    timeout_s: float | None = field(default=None, metadata=RUN_ONLY)

    def __post_init__(self) -> None:
        if not self.worker_cmd or not all(isinstance(c, str) and c for c in self.worker_cmd):
            raise ConfigError(f"nestgpu: worker_cmd must be a non-empty list of strings, got {self.worker_cmd!r}")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigError(f"nestgpu: max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ConfigError(f"nestgpu: timeout_s must be > 0, got {self.timeout_s!r}")


def trial_seed(base_seed: int, round_: int, trial: int) -> int:
    """NEST GPU's RNG seed of one trial: distinct per (base seed, round, trial), within 31 bits."""
    seq = np.random.SeedSequence([int(base_seed), int(round_), int(trial), 0x6E657374])
    return int(seq.generate_state(1, np.uint32)[0] & 0x7FFFFFFF) or 1


def retrieval_chunks(n_steps: int, refractory_steps: np.ndarray,
                     max_events: int = MAX_EVENTS_PER_RETRIEVAL) -> list[tuple[int, int]]:
    """(first step, n steps) of each simulate-and-retrieve chunk covering [0, n_steps).

    A neuron with a refractory window of r steps spikes at most once every max(r, 1) steps, so a
    chunk of max_events x max(1, min r) steps can never overflow NEST GPU's per-neuron buffer.
    """
    if n_steps < 1:
        raise ConfigError(f"nestgpu: n_steps must be >= 1, got {n_steps!r}")
    min_gap = max(1, int(np.min(refractory_steps))) if np.size(refractory_steps) else 1
    chunk = max_events * min_gap
    return [(s, min(chunk, n_steps - s)) for s in range(0, n_steps, chunk)]


def max_recorded_steps(dt_ms: float) -> int:
    """Steps of the longest trial whose recorded spike times still name their step. NEST GPU records a spike of
    contract step n at float32(float32(dt) x (n + 2)) ms (spike_buffer.cu stores its double time in a float; trial.py
    RECORD_OFFSET_STEPS) and the worker rounds time / dt: exact while float32's rounding of the time plus the drift of
    float32(dt) stay below half a step (about 1,048 s of 0.1 ms steps)."""
    dt32 = float(np.float32(dt_ms))

    def exact(idx: int) -> bool:
        t = np.float32(dt32 * idx)
        return abs(dt32 - dt_ms) * idx + float(np.spacing(t)) / 2 < dt_ms / 2

    lo, hi = 1, 1 << 40  # the largest recorded time index that is still exact
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if exact(mid) else (lo, mid - 1)
    return lo - RECORD_OFFSET_STEPS + 1


def trial_timeout_s(n_steps: int, dt_ms: float) -> float:
    """Default per-trial limit: max(20 x t_run_s + 120, 300) seconds."""
    return max(20.0 * n_steps * dt_ms / 1000.0 + 120.0, 300.0)


def write_network(spec: NetworkSpec, path: Path) -> None:
    """The network as the worker reads it (plain arrays, no pickle)."""
    p = spec.params
    np.savez(path, indptr=spec.indptr, indices=spec.indices, weights_mv=spec.weights_mv,
             refractory_steps=spec.refractory_steps, silenced=spec.silenced,
             params=np.array([p.v_0_mv, p.v_rst_mv, p.v_th_mv, p.tau_m_ms, p.tau_s_ms, p.dt_ms,
                              float(p.delay_steps), p.kick_mv]))


def run_trial(cmd: tuple[str, ...], request: dict, work: Path, timeout_s: float, max_attempts: int):
    """Run one trial's worker until it succeeds or `max_attempts` are spent.

    Returns
    -------
    (steps, neurons, attempts, result): int64 and int32 spike arrays, tries used, the worker's JSON line.

    Raises
    ------
    TaskFailed
        After the last failed attempt, with the last reason and the worker log path.
    """
    trial = request["trial"]
    req_path = work / f"request_{trial}.json"
    req_path.write_text(json.dumps(request, sort_keys=True))
    reason = ""
    log_path = work / f"worker_{trial}.log"
    for attempt in range(1, max_attempts + 1):
        out_path = Path(request["spikes_file"])
        out_path.unlink(missing_ok=True)
        try:
            proc = subprocess.run([*cmd, str(req_path)], capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            reason = f"attempt {attempt}: timed out after {timeout_s:g} s"
            continue
        with open(log_path, "a") as log:
            log.write(f"--- attempt {attempt} rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}\n")
        result = _last_json_line(proc.stdout)
        if proc.returncode != 0:
            reason = f"attempt {attempt}: exit code {proc.returncode}"
        elif result is None:
            reason = f"attempt {attempt}: no JSON result line on stdout"
        elif result.get("status") != "success" or result.get("trial") != trial:
            reason = f"attempt {attempt}: worker reported {result.get('status')!r} for trial {result.get('trial')!r}"
        elif not out_path.is_file():
            reason = f"attempt {attempt}: worker did not write {out_path}"
        else:
            with np.load(out_path) as z:
                steps, neurons = z["steps"].astype(np.int64), z["neurons"].astype(np.int32)
            if steps.shape != neurons.shape or len(steps) != int(result.get("n_spikes", -1)):
                reason = f"attempt {attempt}: spike file disagrees with the reported n_spikes"
                continue
            return steps, neurons, attempt, result
    raise TaskFailed(f"nestgpu: trial {trial} failed after {max_attempts} attempts; last: {reason}",
                     log_path=str(log_path))


def _last_json_line(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


class NestGpuBackend(Backend):
    """NEST GPU with our contract neuron: trials run one per subprocess (NEST GPU cannot reset in-process)."""

    name: ClassVar[str] = "nestgpu"
    caps: ClassVar[Capabilities] = Capabilities(
        device="gpu", batching="sequential", drive="events", precisions=("float32",), compiles=False,
        deterministic=True, image="flyhpc-nestgpu", verified_here="build only", display_name="NEST GPU",
        needs=frozenset({"gpu"}), image_build_args=("CUDA_ARCH={cuda_arch}",))
    Options: ClassVar[type] = NestGpuOptions

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._work: Path | None = None
        self._table: SpikeTable | None = None

    @classmethod
    def probe(cls) -> Probe:
        """Whether NEST GPU is installed here: its Python module `nestgpu` is on the path and $NESTGPU_LIB names
        an existing library. Imports nothing: `import nestgpu` creates the NEST GPU instance, which initialises CUDA
        and cuRAND (allocating on the GPU, and exiting the process where there is none), so only the per-trial
        worker imports it. Never raises."""
        try:
            spec = importlib.util.find_spec("nestgpu")
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            return Probe(False, "nestgpu cannot be imported: no nestgpu module on this Python's path (NEST GPU's "
                                "pythonlib/nestgpu.py; scripts/build-nestgpu.sh installs it)")
        lib = os.environ.get(LIB_ENV, "")
        versions = {"nestgpu": spec.origin}
        if not lib or not Path(lib).is_file():
            return Probe(False, f"${LIB_ENV} must name NEST GPU's libnestgpukernel.so, which nestgpu.py loads at "
                                f"import (got {lib!r})", versions)
        return Probe(True, "", {**versions, "nestgpu_lib": lib})

    def _build_probe(self) -> Probe:
        """The probe only where the default worker (this Python) runs the trials; a worker command of the
        site's own may import nestgpu elsewhere (another interpreter or image), so then nothing is checked."""
        if self.options.worker_cmd == NestGpuOptions().worker_cmd:
            return self.probe()
        return Probe(True, "")

    def _build(self, spec: NetworkSpec, n_steps: int, probe: Probe) -> BuildReport:
        """Write the network for the workers (NEST GPU builds its network in each worker).

        Raises
        ------
        UnsupportedFeature
            If the delay is shorter than one step (NEST GPU refuses it in Connect) or the trial is too long for
            NEST GPU's float32 spike times to name their step (`max_recorded_steps`).
        """
        if spec.params.delay_steps < 1:
            raise UnsupportedFeature(f"backend {self.name!r} needs a delay of >= 1 step (NEST GPU's Connect refuses a "
                                     f"delay below its time resolution), got {spec.params.delay_steps}")
        if n_steps > max_recorded_steps(spec.params.dt_ms):
            raise UnsupportedFeature(f"backend {self.name!r}: {n_steps} steps of {spec.params.dt_ms} ms are more than "
                                     f"NEST GPU's float32 spike times resolve ({max_recorded_steps(spec.params.dt_ms)})")
        self.work_root.mkdir(parents=True, exist_ok=True)
        self._work = Path(tempfile.mkdtemp(prefix="nestgpu_", dir=self.work_root))
        write_network(spec, self._work / "network.npz")
        return BuildReport(cached=False, work_dir=str(self._work))

    def _request(self, drive: Drive, trial: TrialDrive) -> dict:
        np.savez(self._work / f"drive_{trial.trial}.npz", steps=trial.steps, neurons=trial.neurons)
        return {"protocol": PROTOCOL, "trial": trial.trial, "n_steps": drive.n_steps,
                "seed": trial_seed(drive.base_seed, drive.round, trial.trial),
                "network_file": str(self._work / "network.npz"),
                "drive_file": str(self._work / f"drive_{trial.trial}.npz"),
                "spikes_file": str(self._work / f"spikes_{trial.trial}.npz"),
                "chunks": retrieval_chunks(drive.n_steps, self._spec.refractory_steps)}

    def _run(self, drive: Drive) -> RunReport:
        """One worker per trial, in order; a failing trial is retried up to `max_attempts` times."""
        timeout = self.options.timeout_s or trial_timeout_s(drive.n_steps, self._spec.params.dt_ms)
        tables, attempts, inner = [], [], 0.0
        for trial in drive.trials:
            steps, neurons, n_try, result = run_trial(self.options.worker_cmd, self._request(drive, trial),
                                                      self._work, timeout, self.options.max_attempts)
            tables.append(SpikeTable.from_arrays(np.full(steps.shape, trial.trial, np.int32), steps, neurons))
            attempts.append(n_try)
            inner += float(result.get("simulation_time", 0.0))
        self._table = SpikeTable.concat(tables)
        return RunReport(inner_s=inner, notes={"attempts": ",".join(map(str, attempts))})

    def _collect(self) -> SpikeTable:
        """The spikes the workers wrote, read back by `_run`."""
        return self._table

    def _close(self) -> None:
        """Remove the request/result folder and drop the spikes."""
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
        self._table = None
