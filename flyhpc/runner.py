"""One simulation end to end, timed the same way for every backend.

`simulate` drives a backend through its stages (build, setup, sim, collect) under a `PhaseTimer`
and checks the spikes it hands back; `run_experiment` adds loading (connectome, network, drive)
and writing (spike parquet, rates CSV, JSON record) for `flyhpc run`. Neither knows about Slurm
or benchmark bundles (see worker.py). Entry points: `PhaseTimer`, `load_inputs`,
`check_inputs`, `simulate`, `run_experiment`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from flyhpc import __version__, backends
from flyhpc.backends.base import BuildReport, RunReport, env_options, make_options
from flyhpc.connectome import load_connectome
from flyhpc.datasets import resolve_sources
from flyhpc.drive import Drive, make_drive
from flyhpc.errors import BackendUnavailable, ConfigError, FlyhpcError
from flyhpc.files import atomic_path, sha256_file, write_json_atomic
from flyhpc.model import Experiment, Params, validate_run
from flyhpc.network import NetworkSpec, build_network
from flyhpc.spikes import SpikeSummary, SpikeTable, rates, summarize, write_spikes

PHASES = ("load", "build", "setup", "sim", "collect", "write", "total")


@dataclass
class PhaseTimer:
    """Wall seconds per named phase (perf_counter); a phase entered twice adds up."""

    seconds: dict[str, float] = field(default_factory=dict)
    on_phase: Callable[[str], None] | None = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.on_phase:
            self.on_phase(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def as_dict(self) -> dict[str, float]:
        return {p: round(self.seconds.get(p, 0.0), 6) for p in PHASES}


@dataclass(frozen=True)
class SimulationResult:
    """Spikes of every trial plus what the backend reported about its build and run."""

    backend: str
    precision: str
    drive_mode: str
    spikes: SpikeTable
    build: BuildReport
    run: RunReport
    options: dict


def simulate(backend_name: str, spec: NetworkSpec, drive: Drive, timer: PhaseTimer, *,
             n_threads: int | None = None, precision: str | None = None,
             work_root: Path | None = None, options: Mapping[str, Any] | None = None) -> SimulationResult:
    """Run every trial of `drive` on `spec` with one backend, timing build/setup/sim/collect.

    `options` are backend options; they override those of $FLYHPC_BACKEND_OPTIONS key by key.

    Raises
    ------
    UnknownBackendError, BackendUnavailable
        If the backend is not registered or cannot run here (with the probe's reason).
    FlyhpcError
        If the backend hands back spikes outside the run (a sanity failure: a bug in the backend).
    """
    cls = backends.get(backend_name)
    with timer.phase("setup"):  # importing the simulator counts as setup, so phases add up to total
        probe = cls.probe()
        if not probe.ok:
            raise BackendUnavailable(f"backend {backend_name!r} cannot run here: {probe.reason}")
        chosen = make_options(cls, {**env_options(backend_name), **(options or {})})
        backend = cls(chosen, n_threads=n_threads, precision=precision, work_root=work_root)
    try:
        with timer.phase("build"):
            build = backend.build(spec, drive.n_steps)
        with timer.phase("setup"):
            backend.setup()
        with timer.phase("sim"):
            run = backend.run(drive)
        with timer.phase("collect"):
            table = backend.spikes()
    finally:
        backend.close()
    _check_spikes(backend_name, table, spec, drive)
    return SimulationResult(backend=backend_name, precision=backend.precision, drive_mode=cls.caps.drive,
                            spikes=table, build=build, run=run, options=dataclasses.asdict(backend.options))


def _check_spikes(name: str, table: SpikeTable, spec: NetworkSpec, drive: Drive) -> None:
    if len(table) == 0:
        return
    trials = {t.trial for t in drive.trials}
    bad = []
    if table.step.min() < 0 or table.step.max() >= drive.n_steps:
        bad.append(f"steps {table.step.min()}..{table.step.max()} outside 0..{drive.n_steps - 1}")
    if table.neuron.min() < 0 or table.neuron.max() >= spec.n_neurons:
        bad.append(f"neuron index outside 0..{spec.n_neurons - 1}")
    if not set(np.unique(table.trial).tolist()) <= trials:
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


def exp_name(backend: str, t_run_s: float, n_run: int) -> str:
    """The seed's file stem with t_run always written as a float: `brian2cpp_t1.0s_n1`."""
    return f"{backend}_t{float(t_run_s)}s_n{int(n_run)}"


@dataclass(frozen=True)
class RunOutcome:
    """What `run_experiment` wrote and measured."""

    parquet: Path
    rates_csv: Path
    record_json: Path
    summary: SpikeSummary
    rates: object  # pandas.DataFrame of per-neuron rates, highest first
    phases: dict[str, float]
    connectome_source: str
    record: dict


def run_experiment(*, backend: str, experiment: Experiment, t_run_s: float, n_run: int, out_dir: Path,
                   connectome: str | None = None, data_dir: Path = Path("data"), seed: int = 0, round_: int = 1,
                   n_threads: int | None = None, precision: str | None = None, params: Params = Params(),
                   force: bool = False, on_phase: Callable[[str], None] | None = None,
                   options: Mapping[str, Any] | None = None) -> RunOutcome:
    """Load, simulate and write one experiment: spike parquet, rates CSV and a JSON record.

    Raises
    ------
    ConfigError
        Bad duration, trial count, experiment neuron, or results that exist already (without `force`).
    """
    n_steps = validate_run(t_run_s, n_run, params)
    backends.get(backend)  # unknown backend: fail before loading anything
    out_dir = Path(out_dir)
    stem = exp_name(backend, t_run_s, n_run)
    paths = (out_dir / f"{stem}.parquet", out_dir / f"{stem}_rates.csv", out_dir / f"{stem}.json")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise ConfigError(f"results exist already: {', '.join(existing)} (use --force to replace them)")
    timer = PhaseTimer(on_phase=on_phase)
    t_start = time.perf_counter()
    with timer.phase("load"):
        conn, spec, drive = load_inputs(connectome, data_dir, experiment, n_steps, n_run, seed=seed,
                                        round_=round_, params=params)
    result = simulate(backend, spec, drive, timer, n_threads=n_threads, precision=precision, options=options)
    with timer.phase("write"):
        meta = {"flyhpc.connectome_source": conn.source, "flyhpc.connectome_digest": conn.digest,
                "flyhpc.synthetic_connectome": str(conn.is_synthetic).lower(),
                "flyhpc.backend": backend, "flyhpc.dtype": result.precision, "flyhpc.drive": result.drive_mode}
        write_spikes(paths[0], result.spikes, spec.flywire_ids, params.dt_ms, stem, meta)
        rate_frame = rates(result.spikes, spec.flywire_ids, t_run_s, n_run)
        with atomic_path(paths[1]) as tmp:
            rate_frame.to_csv(tmp, index=False)
        parquet_sha = sha256_file(paths[0])
    timer.seconds["total"] = time.perf_counter() - t_start
    summary = summarize(result.spikes, t_run_s, n_run)
    record = {
        "flyhpc_version": __version__, "backend": backend, "experiment": experiment.name,
        "experiment_key": experiment.key, "t_run_s": float(t_run_s), "n_run": int(n_run), "n_steps": n_steps,
        "seed": seed, "round": round_, "trials": [t.trial for t in drive.trials], "dtype": result.precision,
        "drive": result.drive_mode, "backend_options": result.options, "connectome_source": conn.source,
        "connectome_digest": conn.digest,
        "synthetic_connectome": conn.is_synthetic, "spikes": summary.spikes,
        "active_neurons": summary.active_neurons, "phases_s": timer.as_dict(),
        "sim_inner_s": result.run.inner_s, "build_cached": result.build.cached,
        "realtime_ratio": (t_run_s * n_run / timer.seconds["sim"]) if timer.seconds.get("sim") else None,
        "parquet": paths[0].name, "parquet_sha256": parquet_sha, "rates_csv": paths[1].name,
        "versions": result.build.versions, "node": socket.gethostname(), "python": platform.python_version(),
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_json_atomic(paths[2], record)
    return RunOutcome(parquet=paths[0], rates_csv=paths[1], record_json=paths[2], summary=summary,
                      rates=rate_frame, phases=timer.as_dict(), connectome_source=conn.source, record=record)
