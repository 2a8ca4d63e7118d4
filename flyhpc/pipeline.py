"""One simulation end to end, timed the same way for every backend.

`simulate` drives a backend through its stages (build, setup, sim, collect) under a
`flyhpc.timing.PhaseTimer` (wall and CPU seconds) and checks the spikes it hands back; `execute` is
the one run pipeline — load (connectome, network, drive), simulate, write (spike parquet, optional
rates CSV), return the record — used by `flyhpc run` (`run_experiment`, which adds the JSON record
beside the parquet) and by the task worker (which adds the task's fields and writes the record into
the bundle). Knows nothing about Slurm. Entry points: `load_inputs`, `check_inputs`, `simulate`,
`execute`, `run_experiment`, `framework_name`. A backend that `streams()` hands each finished trial to a
`SpikeStream` while later trials still run, so the parquet is written during the sim and the run's spikes are
never one table in memory; the others hand over one table and `write_spikes` writes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from flyhpc import __version__, backends
from flyhpc.bundle import file_stem
from flyhpc.backends.base import BuildReport, Probe, RunReport, env_options, make_options
from flyhpc.data.connectome import load_connectome
from flyhpc.data.sources import resolve_sources
from flyhpc.drive import Drive, make_drive
from flyhpc.errors import BackendUnavailable, ConfigError, DataError, FlyhpcError
from flyhpc.files import atomic_path, sha256_file, write_json_atomic
from flyhpc.model import Experiment, Params, validate_run
from flyhpc.network import NetworkSpec, build_network
from flyhpc.results.spike_stream import SpikeCounts, SpikeStream
from flyhpc.results.spikes import SpikeSummary, SpikeTable, rates, summarize, write_spikes
from flyhpc.timing import PhaseTimer, host_state


def framework_name(backend: str, device: str = "") -> str:
    """Display name of a backend as the seed's CSV writes it: its `caps.display_name` for a run on `device`
    (`PyTorch (CUDA)` / `PyTorch (CPU)`); "<key> (<DEVICE>)" for a key not registered or not importable."""
    if backend in backends.REGISTRY:
        try:
            return backends.get(backend).caps.framework(device)
        except BackendUnavailable:
            pass
    return f"{backend} ({(device or 'cpu').split(':')[0].upper()})"


@dataclass(frozen=True)
class SimulationResult:
    """Spikes of every trial (None: they went to a stream) plus what the backend reported about its build and run:
    `sim_threads` the threads its sim ran on (what the backend reports, else what it was given), `sim_device`
    "cpu" or "gpu"."""

    backend: str
    precision: str
    drive_mode: str
    spikes: SpikeTable | None
    build: BuildReport
    run: RunReport
    options: dict
    sim_threads: int
    sim_device: str


def simulate(backend: str | type, spec: NetworkSpec, drive: Drive, timer: PhaseTimer, *,
             n_threads: int | None = None, precision: str | None = None, work_root: Path | None = None,
             options: Mapping[str, Any] | None = None, probe: Probe | None = None,
             stream: SpikeStream | None = None) -> SimulationResult:
    """Run every trial of `drive` on `spec` with one backend, timing build/setup/sim/collect.

    `backend`: its registry key, or the class the caller already looked up (`execute`). `options` are backend
    options; they override those of $FLYHPC_BACKEND_OPTIONS key by key. The class is probed once (here, or
    by the caller: `probe`) and the backend's `build` reuses that probe. With `stream` (a backend that
    `streams()`), each trial's checked spikes go to it while later trials run, the sim's CPU seconds spent on
    that are booked as collect and write (`PhaseTimer.overlap`), the trials left when the sim ends are handed
    over in `collect`, and the result holds no spikes.

    Raises
    ------
    UnknownBackendError, BackendUnavailable
        If the backend is not registered or cannot run here (with the probe's reason).
    FlyhpcError
        If the backend hands back spikes outside the run (a sanity failure: a bug in the backend).
    """
    cls = backends.get(backend) if isinstance(backend, str) else backend
    backend_name = cls.name

    handing = {"from": None}  # this thread's CPU clock at the first hand-over: what it did before is the sim's

    def sink(table: SpikeTable) -> None:
        if handing["from"] is None:
            handing["from"] = time.thread_time()
        _check_spikes(backend_name, table, spec, drive)
        stream.add(table)

    with timer.phase("setup"):  # importing the simulator counts as setup, so phases add up to total
        probe = probe or cls.probe()
        if not probe.ok:
            raise BackendUnavailable(f"backend {backend_name!r} cannot run here: {probe.reason}")
        chosen = make_options(cls, {**env_options(backend_name), **(options or {})})
        backend = cls(chosen, n_threads=n_threads, precision=precision, work_root=work_root, probe=probe)
    try:
        with timer.phase("build"):
            build = backend.build(spec, drive.n_steps)
        with timer.phase("setup"):
            backend.setup()
        with timer.phase("sim"):
            run = backend.run(drive) if stream is None else backend.run(drive, sink)
            # from its first hand-over on, this thread only hands trials over while the backend's threads run
            handing_cpu = 0.0 if handing["from"] is None else time.thread_time() - handing["from"]
        if stream is not None:
            timer.overlap("write", "sim", stream.write_cpu_s)
            timer.overlap("collect", "sim", handing_cpu - stream.write_cpu_s)
            stream.defer()  # the rest of the file is written in `write`
        with timer.phase("collect"):
            table = backend.spikes() if stream is None else backend.drain()
    finally:
        backend.close()
    if table is not None:
        _check_spikes(backend_name, table, spec, drive)
    ran_on = str(run.notes.get("device") or cls.caps.device)  # pytorch says where it ran: "cpu" or "cuda:0"
    return SimulationResult(backend=backend_name, precision=backend.precision, drive_mode=cls.caps.drive,
                            spikes=table, build=build, run=run, options=dataclasses.asdict(backend.options),
                            sim_threads=int(run.notes.get("threads") or backend.n_threads),
                            sim_device="gpu" if ran_on == "gpu" or ran_on.startswith("cuda") else "cpu")


def _check_spikes(name: str, table: SpikeTable, spec: NetworkSpec, drive: Drive) -> None:
    if len(table) == 0:
        return
    trials = {t.trial for t in drive.trials}
    bad = []
    if table.step.min() < 0 or table.step.max() >= drive.n_steps:
        bad.append(f"steps {table.step.min()}..{table.step.max()} outside 0..{drive.n_steps - 1}")
    if table.neuron.min() < 0 or table.neuron.max() >= spec.n_neurons:
        bad.append(f"neuron index outside 0..{spec.n_neurons - 1}")
    # the table is sorted by trial: count the rows of the drive's trials by bisection, no pass over every spike
    keys = np.array(sorted(trials), table.trial.dtype)
    inside = np.searchsorted(table.trial, keys, "right") - np.searchsorted(table.trial, keys, "left")
    if int(inside.sum()) != len(table):
        bad.append(f"trials {sorted(set(np.unique(table.trial).tolist()) - trials)} not in the drive")
    if bad:
        raise FlyhpcError(f"backend {name!r} returned impossible spikes: {'; '.join(bad)}")


def load_inputs(connectome: str | None, data_dir: Path, experiment: Experiment, n_steps: int, n_run: int, *,
                seed: int = 0, round_: int = 1, params: Params = Params()):
    """Connectome, network and drive of one run: the `load` phase shared by `flyhpc run` and the worker.

    Returns
    -------
    (Connectome, NetworkSpec, Drive)
    """
    sources = resolve_sources(connectome, data_dir)
    conn = load_connectome(sources)
    spec = build_network(conn, experiment, params)
    drive = make_drive(spec, n_steps, n_run, base_seed=seed, round_=round_)
    return conn, spec, drive


def check_inputs(connectome: str | None, data_dir: Path, experiment: Experiment):
    """The input checks of `flyhpc run`, for commands that queue work (submit, bench) before they queue it.

    Loads the connectome (cached after the first time) and resolves the experiment's neurons in it.

    Returns
    -------
    Connectome
        Whose `digest` the planned tasks then carry (the worker refuses another one).

    Raises
    ------
    ConfigError, DataError
        No such connectome folder; an experiment neuron (named) that the connectome lacks.
    """
    conn = load_connectome(resolve_sources(connectome, data_dir))
    experiment.resolve(conn.flywire_ids)
    return conn


@dataclass(frozen=True)
class RunOutcome:
    """What `execute` wrote and measured: the record (one schema for `flyhpc run` and task records),
    the spike summary and, when a rates CSV was asked for, the per-neuron rates."""

    record: dict
    summary: SpikeSummary
    rates: object = None  # pandas.DataFrame of per-neuron rates, highest first (when written)


def execute(*, backend: str, experiment: Experiment, t_run_s: float, n_run: int, parquet: Path,
            connectome: str | None, data_dir: Path, seed: int = 0, round_: int = 1, n_threads: int | None = None,
            precision: str | None = None, options: Mapping[str, Any] | None = None, params: Params = Params(),
            expected_digest: str = "", rates_csv: Path | None = None, parquet_meta: Mapping[str, str] | None = None,
            on_phase: Callable[[str], None] | None = None, log: Callable[[str], None] = lambda _msg: None) -> RunOutcome:
    """The one run pipeline: load, simulate, write; return the record. Used by `flyhpc run` and the task worker.

    Loads the connectome, network and drive (`load`), runs the backend's stages (`simulate`), writes
    the spike parquet atomically (and the rates CSV when `rates_csv` is given) and hashes it
    (`write`; a backend that streams writes its row groups during the sim, their CPU booked to `write`). `expected_digest`: refuse a connectome whose digest differs (a task planned on other
    files). The record holds what was run and measured — per phase wall (`phases_s`) and CPU seconds
    (`phases_cpu_s`), the sim's threads and device, the load average at start and end and the CPUs, for
    `flyhpc.timing.disturbance` — and callers add who ran it (task, job, log).

    Raises
    ------
    ConfigError, DataError, BackendUnavailable, UnsupportedFeature
        Bad run values, unknown neurons, missing or changed data, a backend that cannot run here.
    """
    n_steps = validate_run(t_run_s, n_run, params)
    cls = backends.get(backend)  # unknown backend: fail before loading anything
    timer = PhaseTimer(on_phase=on_phase)
    host_start = host_state()
    with timer.phase("load"):
        conn, spec, drive = load_inputs(connectome, data_dir, experiment, n_steps, n_run, seed=seed,
                                        round_=round_, params=params)
        if expected_digest and expected_digest != conn.digest:
            raise DataError(f"connectome {conn.source} has digest {conn.digest[:12]}..., but the task was "
                            f"planned for {expected_digest[:12]}... (files changed since submission?)")
    log(f"connectome {conn.source} ({conn.n_neurons} neurons, {conn.n_edges} edges, digest {conn.digest[:12]})")
    meta = {"flyhpc.connectome_source": conn.source, "flyhpc.connectome_digest": conn.digest,
            "flyhpc.synthetic_connectome": str(conn.is_synthetic).lower(), "flyhpc.backend": backend,
            "flyhpc.dtype": cls.caps.precision(precision), "flyhpc.drive": cls.caps.drive,
            "flyhpc.drive_version": str(drive.version), **(parquet_meta or {})}
    exp_name, counts, rate_frame = file_stem(backend, t_run_s, n_run), None, None
    with contextlib.ExitStack() as files:
        stream = None
        if cls.streams():  # the file is opened before the sim and filled while it runs
            with timer.phase("write"):
                counts = SpikeCounts(spec.n_neurons, n_run, per_neuron=rates_csv is not None)
                stream = files.enter_context(SpikeStream(parquet, spec.flywire_ids, params.dt_ms, exp_name, meta,
                                                         counts))
        result = simulate(cls, spec, drive, timer, n_threads=n_threads, precision=precision, options=options,
                          stream=stream)
        with timer.phase("write"):
            if stream is None:
                write_spikes(parquet, result.spikes, spec.flywire_ids, params.dt_ms, exp_name, meta)
            else:
                stream.finish()
            if rates_csv is not None:
                rate_frame = (rates(result.spikes, spec.flywire_ids, t_run_s, n_run) if counts is None
                              else counts.rates(spec.flywire_ids, t_run_s))
                with atomic_path(rates_csv) as tmp:
                    rate_frame.to_csv(tmp, index=False)
            parquet_sha = sha256_file(parquet)
    timer.finish()
    host_end = host_state()
    summary = summarize(result.spikes, t_run_s, n_run) if counts is None else counts.summary(t_run_s)
    if not summary.spikes and t_run_s >= 0.05 and spec.drive_sets[0].rate_hz > 0:
        log("warning: no spike at all although neurons are driven")
    sim_s = timer.seconds.get("sim", 0.0)
    device = result.build.versions.get("device") or cls.caps.device
    record = {
        "status": "success", "flyhpc_version": __version__, "backend": backend,
        "framework": cls.caps.framework(device), "device": device, "experiment": experiment.name,
        "experiment_key": experiment.key, "t_run_s": float(t_run_s), "n_run": int(n_run), "n_steps": n_steps,
        "seed": seed, "round": round_, "trials": [t.trial for t in drive.trials], "dtype": result.precision,
        "drive": result.drive_mode, "drive_version": drive.version, "backend_options": result.options,
        "driven_neurons": np.sort(np.concatenate([s.indices for s in spec.drive_sets])).tolist(),
        "silenced_neurons": np.asarray(spec.silenced).tolist(), "silence_mode": experiment.silence_mode,
        "connectome_source": conn.source,
        "connectome_digest": conn.digest, "synthetic_connectome": conn.is_synthetic, "n_neurons": conn.n_neurons,
        "n_edges": conn.n_edges, "spikes": summary.spikes, "active_neurons": summary.active_neurons,
        "phases_s": timer.as_dict(), "sim_inner_s": result.run.inner_s, "build_cached": result.build.cached,
        "realtime_ratio": (t_run_s * n_run / sim_s) if sim_s > 0 else None, "threads": n_threads,
        "phases_cpu_s": timer.cpu_dict(), "phases_overlapped_cpu_s": {
            k: round(v, 6) for k, v in sorted(timer.overlapped_cpu.items())}, "sim_threads": result.sim_threads, "sim_device": result.sim_device,
        "load_avg_start": host_start["load_avg"], "load_avg_end": host_end["load_avg"],
        "cpus_usable": host_end["cpus_usable"], "cpu_count": host_end["cpu_count"],
        "versions": dict(result.build.versions), "parquet": parquet.name, "parquet_sha256": parquet_sha,
        "parquet_bytes": parquet.stat().st_size, "rates_csv": rates_csv.name if rates_csv else None,
        "node": socket.gethostname(), "python": platform.python_version(),
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return RunOutcome(record, summary, rate_frame)


def run_experiment(*, backend: str, experiment: Experiment, t_run_s: float, n_run: int, out_dir: Path,
                   force: bool = False, **run: Any) -> RunOutcome:
    """`flyhpc run`: `execute` into `out_dir` (spike parquet, rates CSV, JSON record named by the file stem).

    `run` takes `execute`'s keyword arguments (connectome, data_dir, seed, ...).

    Raises
    ------
    ConfigError
        Results that exist already (without `force`), and everything `execute` raises.
    """
    validate_run(t_run_s, n_run, run.get("params", Params()))
    backends.get(backend)
    out_dir = Path(out_dir)
    stem = file_stem(backend, t_run_s, n_run)
    paths = (out_dir / f"{stem}.parquet", out_dir / f"{stem}_rates.csv", out_dir / f"{stem}.json")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"results exist already: {', '.join(existing)} (use --force to replace them)")
    outcome = execute(backend=backend, experiment=experiment, t_run_s=t_run_s, n_run=n_run, parquet=paths[0],
                      rates_csv=paths[1], **run)
    write_json_atomic(paths[2], outcome.record)
    return outcome
