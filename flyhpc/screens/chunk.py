"""Planning a screen on a connectome and running a chunk of its experiments in one process.

`plan_experiments` makes the axes concrete ("all"; most_active runs the base experiment once) and expands the
product. `run_chunk` builds one runner for the chunk (for a backend with the experiment hook the network, for
native with its compiled kernels, once) and runs the experiments one after another, each driven by trains keyed
per (seed, round 1, trial, neuron) — the spikes of every experiment equal those of `flyhpc run` for it — then
writes the chunk's rates parquet, summary and readout table (`flyhpc.screens.results`). No Slurm, no progress
output. Entry points: `plan_experiments`, `run_chunk`, `ChunkOutcome`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from flyhpc import __version__
from flyhpc.data.connectome import Connectome
from flyhpc.drive import DRIVE_VERSION
from flyhpc.errors import ConfigError
from flyhpc.model import PRESETS, Experiment, Params
from flyhpc.screens.engine import ScreenRunner
from flyhpc.screens.expand import ScreenExperiment, base_experiment, concrete_axes, expand, resolve_neurons
from flyhpc.screens.results import ChunkFiles, ChunkTables, experiment_counts, neuron_rates
from flyhpc.screens.spec import Screen
from flyhpc.results.spikes import SpikeTable

ROUND = 1  # screens run round 1, like `flyhpc run`


def plan_experiments(screen: Screen, conn: Connectome, params: Params = Params(), *,
                     options: Mapping[str, Any] | None = None, n_threads: int = 1) -> list[ScreenExperiment]:
    """Every experiment of `screen` on `conn`, base first (see `flyhpc.screens.expand`).

    A most_active axis runs the base experiment first (or, with `of`, that preset; the screen's backend, t_run,
    n_run and seed), so the list depends on the connectome, as the screen means it to.

    Raises
    ------
    ConfigError
        Neurons not in the connectome (naming the key), a most_active axis without a base experiment, bad
        experiments (naming the file).
    BackendUnavailable
        The screen's backend cannot run here (most_active only).
    """
    wanted: dict[str, Experiment] = {}  # "" (the base) or a preset key -> the experiment whose run ranks the axis
    for axis in (screen.activate_each, screen.silence_each):
        if axis is None or axis.kind != "most_active" or axis.of in wanted:
            continue
        if axis.of:
            wanted[axis.of] = PRESETS[axis.of]  # the screen file's check named an unknown preset
        else:
            base = base_experiment(screen)
            if base is None:
                raise ConfigError(f"{screen.path} [axes]: most_active needs a [base] experiment that activates "
                                  "neurons at a rate of its own (or `of = \"<preset>\"`)")
            wanted[""] = base.experiment
    ranking: dict[str, tuple] = {}
    if wanted:
        with ScreenRunner(screen.backend, conn, params, screen.n_steps, options=options,
                          n_threads=n_threads) as runner:
            for of, experiment in wanted.items():
                rates = neuron_rates(runner.run(experiment, screen.n_run, screen.seed, ROUND).spikes, screen.n_run,
                                     screen.t_run_s)
                ranking[of] = (rates.neuron_index, rates.spikes)
    return expand(screen, **concrete_axes(screen, conn.flywire_ids, ranking))


@dataclass(frozen=True)
class ChunkOutcome:
    """What `run_chunk` wrote and where its time went (seconds, summed over experiments): `setup_s` building the
    runner, `drive_s`, `prepare_s`, `engine_s` (the simulation), `collect_s`, `rates_s` (per-neuron spike
    counts), `write_s` (the chunk's rates, computed when it is written, and its files), `total_s`; `spikes` by experiment
    key when asked for (`keep_spikes`)."""

    files: ChunkFiles
    n_experiments: int
    n_trials: int
    setup_s: float
    drive_s: float
    prepare_s: float
    engine_s: float
    collect_s: float
    rates_s: float
    write_s: float
    total_s: float
    spikes: dict[str, SpikeTable] | None = None

    @property
    def overhead_per_trial_s(self) -> float:
        """Seconds outside the simulation per experiment-trial (all of the chunk's time but `engine_s`)."""
        return (self.total_s - self.engine_s) / max(1, self.n_trials)


def run_chunk(screen: Screen, experiments: Sequence[ScreenExperiment], conn: Connectome, out_dir: Path, stem: str, *,
              params: Params = Params(), options: Mapping[str, Any] | None = None, n_threads: int = 1,
              keep_spikes: bool = False, metadata: Mapping[str, str] | None = None,
              on_experiment: Callable[[int], None] | None = None) -> ChunkOutcome:
    """Run `experiments` (of `screen`) on `conn` in this process and write `<out_dir>/<stem>.parquet`,
    `<stem>_experiments.csv` and, with readout neurons, `<stem>_readout.csv`. `on_experiment(k)` is told
    after each experiment how many are done.

    Raises
    ------
    ConfigError, BackendUnavailable
        Unknown neurons, bad options, a backend that cannot run here; nothing is written then.
    """
    t_start = time.perf_counter()
    readout = resolve_neurons(screen.readout.values, screen.by, conn.flywire_ids, f"{screen.path} [screen].readout")
    runner = ScreenRunner(screen.backend, conn, params, screen.n_steps, options=options, n_threads=n_threads)
    setup_s = time.perf_counter() - t_start
    tables = ChunkTables(conn.flywire_ids, screen.n_run, screen.t_run_s, readout, screen.readout.labels)
    sums = dict.fromkeys(("drive_s", "prepare_s", "engine_s", "collect_s", "rates_s"), 0.0)
    kept: dict[str, SpikeTable] = {}
    with runner:
        for exp in experiments:
            run = runner.run(exp.experiment, screen.n_run, screen.seed, ROUND)
            t0 = time.perf_counter()
            counts = experiment_counts(run.spikes, screen.n_run, conn.n_neurons, run.driven, run.silenced)
            rates_s = time.perf_counter() - t0
            tables.add(exp, counts, run, rates_s)
            for key in ("drive_s", "prepare_s", "engine_s", "collect_s"):
                sums[key] += getattr(run, key)
            sums["rates_s"] += rates_s
            if keep_spikes:
                kept[exp.key] = run.spikes
            if on_experiment:
                on_experiment(tables.n_experiments)
    t_write = time.perf_counter()
    meta = {"flyhpc.screen": screen.name, "flyhpc.backend": screen.backend, "flyhpc.t_run_s": repr(screen.t_run_s),
            "flyhpc.n_run": str(screen.n_run), "flyhpc.seed": str(screen.seed), "flyhpc.round": str(ROUND),
            "flyhpc.drive_version": str(DRIVE_VERSION),
            "flyhpc.silence_mode": screen.silence_mode, "flyhpc.connectome_source": conn.source,
            "flyhpc.connectome_digest": conn.digest, "flyhpc.synthetic_connectome": str(conn.is_synthetic).lower(),
            "flyhpc.backend_options": json.dumps(dataclasses.asdict(runner.options), sort_keys=True),
            "flyhpc.version": __version__, **(metadata or {})}
    files = tables.write(out_dir, stem, meta)
    end = time.perf_counter()
    return ChunkOutcome(files=files, n_experiments=len(experiments), n_trials=len(experiments) * screen.n_run,
                        setup_s=setup_s, write_s=end - t_write, total_s=end - t_start,
                        spikes=kept if keep_spikes else None, **sums)
