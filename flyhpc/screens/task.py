"""Screen tasks: a chunk of a planned screen's experiments as the unit Slurm runs, and what such a task does.

`ScreenTask` is to a screen what `flyhpc.tasks.BenchmarkTask` is to a grid point: small, frozen, picklable, with
a stable key (the plan's sha256, the chunk's experiment range, the connectome and the result-changing options),
its files under `<label>/chunks/` and the same record rules, so `flyhpc status`, `resubmit`, `cancel`,
`collect` and `verify` treat both alike (the "screen" kind of `flyhpc.kinds`). `plan_tasks` cuts a plan into chunks that last about `target_task_s`
(costed as the backend asks: `flyhpc.screens.cost.chunk_costs`). `execute_chunk` is the worker's body for a
screen task: the plan's slice, the connectome (refused when its digest is not the planned one), `run_chunk`
(telling `<stem>.progress` how far it got, for `flyhpc status`), and the record fields.
Entry points: `ScreenTask`, `plan_tasks`, `execute_chunk`, `experiments_done`, `progress_path`,
`CHUNK_FOLDER`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

from flyhpc import backends
from flyhpc.bundle import BundlePaths, check_label
from flyhpc.drive import DRIVE_VERSION
from flyhpc.errors import ConfigError, DataError
from flyhpc.files import sha256_file, write_text_atomic
from flyhpc.kinds import CollectOutputs, TaskName, fields_of
from flyhpc.results.manifest import SCREEN_MANIFEST_COLUMNS, chunk_row
from flyhpc.results.screen_tables import read_screen_table
from flyhpc.results.spikes import write_experiment_spikes
from flyhpc.screens.cost import chunk_costs, plan_chunks
from flyhpc.screens.expand import ScreenExperiment
from flyhpc.screens.plan_file import read_plan
from flyhpc.screens.spec import Screen
from flyhpc.timing import cpu_seconds, host_state

CHUNK_FOLDER = "chunks"


@dataclass(frozen=True)
class ScreenTask(TaskName):
    """Experiments `first` .. `stop - 1` of the label's screen plan (`plan_sha256`), run in one process.

    `cost_s` is the planned estimate of the task's wall seconds on one core (setup included): it sets the
    Slurm time limit and the dry run's core-hours, and is not part of the key.
    """

    kind: ClassVar[str] = "screen"
    record_keys: ClassVar[tuple[str, ...]] = ("screen", "plan_sha256", "first", "stop")
    collect_deep: ClassVar[bool] = True  # a chunk's CSVs are hashed against its record
    result_rows: ClassVar[bool] = False
    manifest_columns: ClassVar[tuple[str, ...]] = SCREEN_MANIFEST_COLUMNS
    folder: ClassVar[str] = CHUNK_FOLDER

    run_label: str
    results_root: str
    screen: str
    plan_sha256: str
    chunk: int
    first: int
    stop: int
    backend: str
    t_run_s: float
    n_run: int
    seed: int
    connectome: str
    connectome_digest: str
    cost_s: float
    keep_spikes: bool = False
    backend_options: tuple[tuple[str, Any], ...] = ()
    drive_version: int = DRIVE_VERSION  # submission.json files older than version 2 lack it: read as 1

    def __post_init__(self) -> None:
        check_label(self.run_label)
        if not (0 <= self.first < self.stop) or self.chunk < 0:
            raise ConfigError(f"screen task {self.run_label}: chunk {self.chunk} has no experiments "
                              f"({self.first}..{self.stop})")
        object.__setattr__(self, "results_root", str(self.results_root))
        object.__setattr__(self, "t_run_s", float(self.t_run_s))
        object.__setattr__(self, "backend_options",
                           tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v)
                                        for k, v in dict(self.backend_options).items())))

    @property
    def stem(self) -> str:
        """File stem of the chunk's parquet, record and log: `chunk_00012`."""
        return f"chunk_{self.chunk:05d}"

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of what changes the chunk's results: plan, experiment range, connectome, options, spikes kept
        (computed once per task)."""
        body = {"plan": self.plan_sha256, "first": self.first, "stop": self.stop,
                "connectome": self.connectome_digest, "keep_spikes": self.keep_spikes,
                "options": backends.result_options(self.backend, dict(self.backend_options))}
        if self.drive_version != 1:  # version 1's keys stay what they were
            body["drive_version"] = self.drive_version
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()

    @functools.cached_property
    def key(self) -> str:
        """Stable id: `<label>/chunks/chunk_00012@<fingerprint[:10]>`."""
        return f"{self.name}@{self.fingerprint[:10]}"

    @property
    def n_experiments(self) -> int:
        return self.stop - self.first

    @property
    def trials(self) -> int:
        """Experiment-trials the task simulates."""
        return self.n_experiments * self.n_run

    def wall_estimate_s(self, resources: Any) -> float:
        """Expected wall seconds (the planned cost; `resources` is the profile's, unused here)."""
        return self.cost_s

    def identity(self) -> dict[str, Any]:
        """What every task of the label shares (`flyhpc.cluster.submission.label_identity`)."""
        return {"screen": self.screen, "plan_sha256": self.plan_sha256, "seed": self.seed,
                "connectome_digest": self.connectome_digest, "keep_spikes": self.keep_spikes,
                "drive_version": self.drive_version}

    def describe(self) -> str:
        """What the chunk runs, for its log."""
        return f"screen {self.screen} experiments {self.first}..{self.stop - 1}"

    def record_fields(self) -> dict[str, Any]:
        """The screen fields of the chunk's record (`flyhpc.results.records.header` has the common ones)."""
        return {"kind": self.kind, "screen": self.screen, "plan_sha256": self.plan_sha256, "chunk": self.chunk,
                "first": self.first, "stop": self.stop, "experiments": self.n_experiments, "t_run_s": self.t_run_s,
                "n_run": self.n_run, "round": 1, "keep_spikes": self.keep_spikes}

    def execute(self, parquet: Path, log: Callable[[str], None], on_phase: Callable[[str], None],
                n_threads: int | None) -> dict[str, Any]:
        """Run the chunk (`execute_chunk`, on one thread unless told more); the record fields it measured."""
        return execute_chunk(self, parquet, log, on_phase, n_threads=n_threads or 1)

    @classmethod
    def from_dict(cls, data: dict) -> "ScreenTask":
        """Rebuild a ScreenTask from its submission.json entry (unknown keys ignored)."""
        return cls(**fields_of(cls, data))

    def outputs(self, parquet: Path, rec: dict) -> dict[Path, str | None]:
        """The done chunk's parquet and its other files, those with the sha256 its record holds (the deep status
        hashed them against these very values)."""
        extra = {parquet.parent / name: entry["sha256"] for name, entry in rec.get("extra_files", {}).items()}
        return {parquet: None, **dict(sorted(extra.items()))}

    def manifest_row(self, row: Any, rec: dict | None, rel: str) -> dict[str, str]:
        """The chunk's row in the label's manifest (`flyhpc.results.manifest.chunk_row`)."""
        return chunk_row(self, row.state, row.reason, row.job_id, rec, rel)

    @classmethod
    def manifest_order(cls, row: dict[str, str]) -> int:
        return int(row["chunk"])

    @classmethod
    def merge(cls, paths: Any, report: Any, records: list, global_csv: Path | None) -> CollectOutputs:
        """The label's merged screen tables when every chunk is done (`flyhpc.screens.merge`), else none (stale
        ones removed); the plan file is listed while it is intact."""
        from flyhpc.screens.merge import drop_merged, write_merged

        done = sorted((task for task, row, _ in records if row.state == "done"), key=lambda t: t.chunk)
        files = write_merged(paths, done) if report.complete else drop_merged(paths)
        plan_ok = paths.screen_plan.name not in dict(report.damaged)
        return CollectOutputs(files=files, rows=len(done), label_files=[paths.screen_plan] if plan_ok else [])

    @classmethod
    def progress(cls, results_root: str | Path, run_label: str, rows: Sequence[Any],
                 tasks: dict) -> tuple[int, int]:
        """(experiments done, planned) of the label: `experiments_done`."""
        return experiments_done(results_root, run_label, rows, tasks)

    @classmethod
    def repair(cls, results_root: str | Path, run_label: str, record: dict) -> str:
        """Rewrite a damaged or lost plan file from the screen file (`flyhpc.screens.replan.repair_plan`)."""
        from flyhpc.screens.replan import repair_plan

        return repair_plan(results_root, run_label, record)


def plan_tasks(screen: Screen, experiments: Sequence[ScreenExperiment], plan_sha256: str, *, run_label: str,
               results_root: str | Path, connectome: str, connectome_digest: str, n_edges: int,
               target_task_s: float = 600.0, min_tasks: int = 1, max_per_task: int | None = None,
               keep_spikes: bool = False, run_wall_s: Callable[[float, int], float] | None = None) -> list[ScreenTask]:
    """Cut the planned experiments into chunk tasks of about `target_task_s` each, at least `min_tasks` of them
    (so that `min_tasks` workers have work) when there are enough experiments, none with more than
    `max_per_task` experiments.

    `run_wall_s(t_run_s, n_run)`: wall seconds of a whole run, build included, usually the profile's time model.
    The backend says how a chunk is costed (`Backend.screen_costs`, `flyhpc.screens.cost.chunk_costs`): native by
    the cost model calibrated on it; a backend with the experiment hook (pytorch) by one build per chunk plus
    each experiment's trials; any other by a whole run per experiment.

    A target below a task's setup time gives one experiment per task (nothing can be shorter).

    Raises
    ------
    ConfigError
        No experiments; `max_per_task` below 1.
    """
    if not experiments:
        raise ConfigError(f"screen {screen.name!r}: the plan has no experiment")
    setup, costs = chunk_costs(backends.get(screen.backend).screen_costs(), [e.experiment for e in experiments],
                               screen.t_run_s, screen.n_run, n_edges, run_wall_s)
    total = math.fsum(costs)
    target = min(target_task_s, setup + total / max(1, min(min_tasks, len(experiments))) * 1.0001)
    chunks = plan_chunks(costs, max(target, setup + 1e-6), setup)
    if max_per_task is not None:
        if max_per_task < 1:
            raise ConfigError(f"max_per_task must be >= 1, got {max_per_task}")
        chunks = [range(s, min(s + max_per_task, r.stop)) for r in chunks for s in range(r.start, r.stop, max_per_task)]
    return [ScreenTask(run_label=run_label, results_root=str(results_root), screen=screen.name,
                       plan_sha256=plan_sha256, chunk=i, first=r.start, stop=r.stop, backend=screen.backend,
                       t_run_s=screen.t_run_s, n_run=screen.n_run, seed=screen.seed, connectome=connectome,
                       connectome_digest=connectome_digest, cost_s=setup + math.fsum(costs[r.start:r.stop]),
                       keep_spikes=keep_spikes)
            for i, r in enumerate(chunks)]


def _file_entry(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def progress_path(parquet: Path) -> Path:
    """Where a running chunk says how many of its experiments are done: `<stem>.progress` beside its parquet."""
    return parquet.with_suffix(".progress")


class _Progress:
    """Writes "<done> <total>" to the chunk's progress file, atomically, at most once a second.

    Not fsynced: it is a hint for `flyhpc status`, and fsyncs here cost sugar-silence-top100 chunks up to 0.56 s."""

    def __init__(self, path: Path, total: int):
        self.path, self.total, self._last = path, total, 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last >= 1.0 or done == self.total:
            self._last = now
            write_text_atomic(self.path, f"{done} {self.total}\n", durable=False)


def experiments_done(results_root: str | Path, run_label: str, rows: Sequence[Any], tasks: dict) -> tuple[int, int]:
    """(experiments done, experiments planned) of a screen label: done chunks count whole, running ones as far
    as their progress file says. `rows`: status rows (key, state); `tasks`: key -> ScreenTask."""
    paths = BundlePaths(results_root, run_label)
    done = total = 0
    for row in rows:
        task = tasks[row.key]
        total += task.n_experiments
        if row.state == "done":
            done += task.n_experiments
        elif row.state == "running":
            try:
                done += min(int(progress_path(paths.parquet(task)).read_text().split()[0]), task.n_experiments)
            except (OSError, ValueError, IndexError):
                pass
    return done, total


def execute_chunk(task: ScreenTask, parquet: Path, log: Callable[[str], None], on_phase: Callable[[str], None],
            n_threads: int = 1) -> dict[str, Any]:
    """Run the chunk: read its slice of the plan, load the planned connectome, run the experiments, write the
    chunk's files (`flyhpc.screens.chunk.run_chunk`, plus `<stem>_spikes.parquet` with `keep_spikes`).

    Returns
    -------
    dict
        Record fields: status success, the parquet's bytes/rows/sha256, the other files' sizes and sha256s
        (`extra_files`), phases and totals, the CPU seconds of load and total, the load average at start and
        end and the CPUs (`flyhpc.timing.host_state`).

    Raises
    ------
    DataError
        The plan file changed since submission, or the connectome's digest is not the planned one.
    """
    from flyhpc.data.connectome import default_data_dir, load_connectome
    from flyhpc.data.sources import resolve_sources
    from flyhpc.model import Params
    from flyhpc.screens.chunk import run_chunk

    t0, cpu0, host_start = time.perf_counter(), cpu_seconds(), host_state()
    on_phase("load")
    paths = BundlePaths(task.results_root, task.run_label)
    plan = read_plan(paths.screen_plan, task.plan_sha256, task.first, task.stop)
    conn = load_connectome(resolve_sources(task.connectome, default_data_dir()))
    if task.connectome_digest and conn.digest != task.connectome_digest:
        raise DataError(f"connectome {conn.source} has digest {conn.digest[:12]}..., but the screen was planned "
                        f"for {task.connectome_digest[:12]}... (files changed since submission?)")
    log(f"screen {task.screen}: experiments {task.first}..{task.stop - 1} of {plan.n_total}; connectome "
        f"{conn.source} ({conn.n_neurons} neurons, {conn.n_edges} edges)")
    load_s, load_cpu_s = time.perf_counter() - t0, cpu_seconds() - cpu0
    on_phase("sim")
    progress = _Progress(progress_path(parquet), task.n_experiments)
    outcome = run_chunk(plan.screen, plan.experiments, conn, parquet.parent, task.stem, n_threads=n_threads,
                        options=dict(task.backend_options), keep_spikes=task.keep_spikes,
                        metadata={"flyhpc.task": task.key, "flyhpc.plan_sha256": task.plan_sha256},
                        on_experiment=progress)
    progress.path.unlink(missing_ok=True)  # the record says the rest
    on_phase("write")
    extra = [outcome.files.experiments] + ([outcome.files.readout] if outcome.files.readout else [])
    t_spikes = time.perf_counter()
    if task.keep_spikes:
        spikes_path = parquet.parent / f"{task.stem}_spikes.parquet"
        write_experiment_spikes(spikes_path, outcome.spikes or {}, conn.flywire_ids, Params().dt_ms)
        extra.append(spikes_path)
    spikes_s = time.perf_counter() - t_spikes
    if outcome.files.rates != parquet:
        raise DataError(f"screen chunk wrote {outcome.files.rates}, expected {parquet}")
    rates = read_screen_table(parquet, ["experiment_key", "spikes"])
    log(f"{outcome.n_experiments} experiments, {outcome.n_trials} trials: engine {outcome.engine_s:.2f} s, "
        f"outside it {outcome.overhead_per_trial_s * 1e3:.3f} ms per experiment-trial")
    host_end = host_state()
    return {
        "status": "success", "parquet_bytes": parquet.stat().st_size, "parquet_rows": rates.num_rows,
        "parquet_sha256": sha256_file(parquet), "extra_files": {p.name: _file_entry(p) for p in extra},
        "connectome_source": conn.source, "connectome_digest": conn.digest,
        "synthetic_connectome": conn.is_synthetic, "threads": n_threads,
        "spikes": int(pa.compute.sum(rates["spikes"]).as_py() or 0),
        "experiments_with_spikes": len(pa.compute.unique(rates["experiment_key"])),
        "overhead_per_trial_s": outcome.overhead_per_trial_s,
        "phases_s": {"load": load_s, "setup": outcome.setup_s, "drive": outcome.drive_s,
                     "prepare": outcome.prepare_s, "sim": outcome.engine_s, "collect": outcome.collect_s,
                     "rates": outcome.rates_s, "write": outcome.write_s + spikes_s,
                     "total": time.perf_counter() - t0},
        # CPU seconds of the phases the worker itself times (the chunk's inner phases are summed per experiment)
        "phases_cpu_s": {"load": load_cpu_s, "total": cpu_seconds() - cpu0},
        "load_avg_start": host_start["load_avg"], "load_avg_end": host_end["load_avg"],
        "cpus_usable": host_end["cpus_usable"], "cpu_count": host_end["cpu_count"],
    }
