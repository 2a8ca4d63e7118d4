"""Brian2GeNN backend (`brian2genn`): the shared Brian2 network on Brian2GeNN's `genn` device.

Brian2GeNN 1.7 needs Brian2 < 2.6 (its own image and environment) and GeNN 4.9's command-line tools;
it has no run arguments, so every trial is generated, compiled and run with its drive baked into the
network. Trials are deterministic and distinct because the drive is the shared per-trial Philox drive;
the network itself draws no random numbers (Brian2GeNN rejects `seed()` in standalone code anyway).
Everything runs on Brian2's defaultclock, the only clock Brian2GeNN accepts, and the drive is a
SpikeGeneratorGroup (Brian2GeNN has no TimedArray). Owns the GeNN device
preferences (GPU or GeNN's CPU-only mode). Brian2GeNN starts genn-buildmodel.sh, make and the binary
with fixed argument lists, so this process ignores SIGUSR2 (Slurm's pre-timeout warning) while a trial
is built and run, and its children inherit that (`child_signals.usr2_ignored_in_process`; a warning
arriving then is lost); SIGTERM still ends them. Each trial's project goes to its own folder (`trial_dir`: network,
round, trial and a hash of its events and settings), built, run and removed under that folder's lock.
Entry points: `Brian2GeNNBackend`, `Brian2GeNNOptions`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from flyhpc.backends.base import RUN_ONLY, Backend, BuildReport, Capabilities, Probe, RunReport, import_probe
from flyhpc.backends.brian2.child_signals import usr2_ignored_in_process
from flyhpc.drive import Drive, TrialDrive
from flyhpc.errors import ConfigError, FlyhpcError
from flyhpc.files import build_lock
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable

GENN_PATH_ENVS = ("BRIAN2GENN_GENN_PATH", "GENN_PATH")


def genn_path(env: dict | None = None) -> str | None:
    """GeNN 4.9's install folder: $BRIAN2GENN_GENN_PATH, else $GENN_PATH, else None."""
    env = os.environ if env is None else env
    return next((env[k] for k in GENN_PATH_ENVS if env.get(k)), None)


@dataclass(frozen=True)
class Brian2GeNNOptions:
    """Settings of the brian2genn backend.

    keep_builds: keep the per-trial build folders (for debugging); use_gpu: False runs GeNN's
    CPU-only code (Brian2GeNN's use_GPU=False), which needs no CUDA at all.
    """

    keep_builds: bool = field(default=False, metadata=RUN_ONLY)
    use_gpu: bool = True

    def __post_init__(self) -> None:
        for name in ("keep_builds", "use_gpu"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"brian2genn: {name} must be true or false, got {getattr(self, name)!r}")


class Brian2GeNNBackend(Backend):
    """Brian2GeNN 1.7: one generated GeNN 4.9 project per trial (drive baked in), SPARSE connectivity."""

    name: ClassVar[str] = "brian2genn"
    caps: ClassVar[Capabilities] = Capabilities(
        device="gpu", batching="sequential", drive="events", precisions=("float64",), compiles=True,
        deterministic=True, image="flyhpc-brian2genn", verified_here="CPU mode only",
        display_name="Brian2GeNN (GPU)", needs=frozenset({"gpu"}), cpu_fallback_options={"use_gpu": False})
    Options: ClassVar[type] = Brian2GeNNOptions

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._table: SpikeTable | None = None
        self._versions: dict[str, str] = {}

    @classmethod
    def probe(cls) -> Probe:
        """Brian2 / Brian2GeNN versions and GeNN 4.9's path; never raises."""
        path = genn_path()
        return import_probe("brian2", "brian2genn", tools=(
            ("genn_path", lambda: path if path and Path(path, "bin", "genn-buildmodel.sh").is_file() else None,
             f"GeNN 4.9 not found: set {' or '.join(GENN_PATH_ENVS)} to a GeNN install with bin/genn-buildmodel.sh "
             f"(got {path!r})"),))

    def _build_probe(self) -> Probe:
        """The probe, and GeNN 4.9's libraries for this mode: GeNN builds them at a model's first use only into a
        writable $GENN_PATH/lib (its generator Makefile: `if [ -w lib ]`), so a read-only install (an image)
        without them fails every link (scripts/build-genn4.sh builds them)."""
        probe = self._probed()
        if not probe.ok:
            return probe
        lib = Path(probe.versions["genn_path"], "lib")
        backend = "cuda" if self.options.use_gpu else "single_threaded_cpu"
        missing = [n for n in ("libgenn.a", f"libgenn_{backend}_backend.a") if not (lib / n).is_file()]
        if missing and not os.access(lib if lib.is_dir() else lib.parent, os.W_OK):
            return Probe(False, f"GeNN 4.9 at {lib.parent} lacks {', '.join(missing)} in lib/, which is read-only, so "
                                "GeNN cannot build them (scripts/build-genn4.sh builds them)", probe.versions)
        return probe

    def _build(self, spec: NetworkSpec, n_steps: int, probe: Probe) -> BuildReport:
        """Nothing to build yet: every trial is generated and compiled inside `_run` (no run arguments)."""
        self._versions = dict(probe.versions)
        return BuildReport(cached=False, work_dir=str(self.work_root / self.name), versions=probe.versions)

    def trial_dir(self, drive: Drive, trial: TrialDrive) -> Path:
        """The build folder of one trial. Its drive is baked into the generated code, so the name holds the
        network, round and trial, and a hash of everything that changes the code: the trial's events (hence the
        base seed and experiment), duration, GPU or CPU mode and the Brian2/Brian2GeNN/GeNN versions. Two tasks
        only share a folder for the very same trial, and then one after the other (its lock)."""
        events = hashlib.sha256(np.asarray(trial.steps, "<i8").tobytes() + b"|" +
                                np.asarray(trial.neurons, "<i4").tobytes()).hexdigest()
        body = {"spec": self._spec.digest(), "n_steps": int(drive.n_steps), "base_seed": int(drive.base_seed),
                "round": int(drive.round), "trial": int(trial.trial), "events": events,
                "use_gpu": bool(self.options.use_gpu), "versions": self._versions}
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return self.work_root / self.name / f"{self._spec.digest()[:12]}_r{drive.round}_t{trial.trial}_{key[:16]}"

    def _run(self, drive: Drive) -> RunReport:
        """For each trial: construct the network with the trial's drive, generate, compile and run it."""
        from flyhpc.backends.brian2.network import spike_steps

        tables, inner_s = [], 0.0
        try:
            for trial in drive.trials:
                work_dir = self.trial_dir(drive, trial)
                # Generated, compiled, run, read and removed under the folder's lock: another task with the very
                # same trial waits rather than running a project half rewritten or removed under it.
                with build_lock(work_dir):
                    net, device = self._on_genn_device(self._spec, trial, drive.n_steps, work_dir,
                                                       compile_and_run=True)
                    inner_s += float(getattr(device, "_last_run_time", 0.0) or 0.0)
                    steps, neurons = spike_steps(net)
                    tables.append(SpikeTable.from_arrays(np.full(steps.shape, trial.trial, np.int32), steps, neurons))
                    device.reinit()
                    if not self.options.keep_builds:
                        shutil.rmtree(work_dir, ignore_errors=True)
        finally:
            self._leave_genn_device()
        self._table = SpikeTable.concat(tables)
        return RunReport(inner_s=inner_s)

    def generate(self, spec: NetworkSpec, trial: TrialDrive, n_steps: int, directory: Path) -> Path:
        """Write the GeNN project of one trial into `directory` without compiling or running it.

        Needs Brian2GeNN but not GeNN itself: for reading the generated model, and for checking on a
        machine without GeNN that the network is one Brian2GeNN accepts.
        """
        try:
            self._on_genn_device(spec, trial, n_steps, Path(directory), compile_and_run=False)
        finally:
            self._leave_genn_device()
        return Path(directory)

    def _on_genn_device(self, spec: NetworkSpec, trial: TrialDrive, n_steps: int, work_dir: Path,
                        compile_and_run: bool):
        import brian2 as b2
        import brian2genn  # noqa: F401  (registers the 'genn' device)

        from flyhpc.backends.brian2.network import build_brian_network

        build_args = {"directory": str(work_dir), "use_GPU": self.options.use_gpu,
                      "compile": compile_and_run, "run": compile_and_run}
        b2.set_device("genn", build_on_run=True, **build_args)
        b2.device.reinit()
        b2.device.activate(build_on_run=True, **build_args)
        b2.prefs.devices.genn.path = genn_path()
        b2.prefs.devices.genn.connectivity = "SPARSE"
        try:
            net = build_brian_network(spec, n_steps, trial=trial, default_clock=True, drive_source="generator")
            # build_on_run: this run generates, compiles (genn-buildmodel.sh, make) and runs ./main.
            with usr2_ignored_in_process() if compile_and_run else contextlib.nullcontext():
                net.network.run(n_steps * spec.params.dt_ms * b2.ms)
        except Exception as exc:
            raise FlyhpcError(f"backend {self.name!r}: trial {trial.trial} failed in {work_dir}: {exc}") from exc
        return net, b2.device

    @staticmethod
    def _leave_genn_device() -> None:
        from brian2.devices.device import reset_device

        reset_device()
        gc.collect()

    def _collect(self) -> SpikeTable:
        """The spikes `_run` read back after each trial's run."""
        return self._table

    def _close(self) -> None:
        """Drop the spikes (each trial left the GeNN device already)."""
        self._table = None
