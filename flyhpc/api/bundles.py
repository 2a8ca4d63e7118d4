"""`flyhpc.open_bundle` and `flyhpc.screen`: a results label from Python, read lazily as pandas objects.

A `Bundle` reads only what the label's commands wrote (`flyhpc.bundle.BundlePaths` owns every name): the manifest
(`tasks`, every planned task with its state), benchmark-results.csv (`benchmark`), one task's spikes or rates on
demand, a screen label's merged files (`screen`), and `verify()`/`collect()`, the very functions of `flyhpc
verify`/`flyhpc collect`. `screen` plans a screen, runs it with the local executor (the path of `flyhpc screen
submit --profile local`), waits, collects and returns the Bundle. Entry points: `open_bundle`, `Bundle`,
`ScreenResults`, `screen`.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flyhpc.api.paper import beside_paper
from flyhpc.bundle import BundlePaths
from flyhpc.collect import CollectReport, VerifyReport, label_paths
from flyhpc.errors import ConfigError, DataError, TaskFailed
from flyhpc.files import sha256_file
from flyhpc.results.records import read_record
from flyhpc.results.screen_tables import (read_experiments, read_neuron_effects, read_screen_frame,
                                          screen_metadata)
from flyhpc.results.spikes import rates_from_counts, read_spikes
from flyhpc.results.tables import read_effects, read_manifest_frame, read_results_frame


class ScreenResults:
    """A collected screen label's merged files, each read on first use.

    `rates` (screen.parquet: per experiment and neuron, rates and spikes per trial), `experiments`
    (experiments.csv), `readout` (readout.csv: experiments x readout neurons, Hz; None without readout neurons),
    `effects` (effects.csv: experiments ranked by paired effect, with standard errors), `neuron_effects`
    (neuron-effects.parquet: every measured (experiment, neuron) change with its SE, p and q), `paper` (the
    paper's published numbers beside ours, where an experiment reproduces one).
    """

    def __init__(self, paths: BundlePaths):
        if not paths.screen_rates.is_file():
            raise ConfigError(f"screen label {paths.run_label!r} is not collected complete: {paths.screen_rates} "
                              f"is missing (every chunk must be done; run `flyhpc collect {paths.run_label}` or "
                              "Bundle.collect())")
        self._paths = paths

    @functools.cached_property
    def rates(self) -> pd.DataFrame:
        return read_screen_frame(self._paths.screen_rates)

    @functools.cached_property
    def experiments(self) -> pd.DataFrame:
        return read_experiments(self._paths.screen_experiments)

    @functools.cached_property
    def readout(self) -> pd.DataFrame | None:
        path = self._paths.screen_readout
        return read_experiments(path) if path.is_file() else None

    @functools.cached_property
    def effects(self) -> pd.DataFrame:
        return read_effects(self._paths.screen_effects)

    @functools.cached_property
    def neuron_effects(self) -> pd.DataFrame:
        return read_neuron_effects(self._paths.screen_neuron_effects)

    @functools.cached_property
    def record(self) -> dict[str, Any]:
        """The record of the first chunk (connectome source, synthetic flag, versions, drive version)."""
        records = self._paths.record_files()
        return read_record(records[0]) if records else {}

    @property
    def synthetic(self) -> bool:
        return bool(self.record.get("synthetic_connectome"))

    def rates_of(self, experiment: str) -> pd.DataFrame:
        """The rows of `rates` of one experiment, by key or by name (ConfigError naming the known ones)."""
        frame = self.rates
        hit = frame[(frame["experiment_key"] == experiment) | (frame["experiment_name"] == experiment)]
        if hit.empty and not ((self.experiments["experiment_key"] == experiment)
                              | (self.experiments["experiment_name"] == experiment)).any():
            shown = ", ".join(self.experiments["experiment_name"].head(5))
            raise ConfigError(f"screen label {self._paths.run_label!r} has no experiment {experiment!r} "
                              f"(by key or name; e.g. {shown})")
        return hit.reset_index(drop=True)

    @functools.cached_property
    def paper(self) -> pd.DataFrame:
        from flyhpc.screens.plan_file import read_plan

        # the plan as merged into screen.parquet (its sha256 there): read and checked once, not hashed first
        merged = screen_metadata(self._paths.screen_rates).get("flyhpc.plan_sha256")
        plan = read_plan(self._paths.screen_plan, merged or sha256_file(self._paths.screen_plan))
        by = self.rates.set_index(["experiment_key", "flywire_id"])["rate_mean_hz"]  # indexed once, not per experiment
        items = [(e.experiment, e.name, lambda fid, key=e.key: float(by.get((key, fid), 0.0)))
                 for e in plan.experiments]
        return beside_paper(items, synthetic=self.synthetic, connectome=self.record.get("connectome_source", ""))


class Bundle:
    """One results label (`results/<label>/`), read lazily. See `flyhpc.open_bundle`."""

    def __init__(self, paths: BundlePaths):
        from flyhpc.cluster.submission import label_kind

        self.paths = paths
        self.label = paths.run_label
        self.kind = label_kind(paths.results_root, paths.run_label).kind  # its name in flyhpc.kinds.KINDS

    @property
    def tasks(self) -> pd.DataFrame:
        """manifest.csv: every planned task with its `state` (done, failed, timeout, missing, corrupt, ...) and
        `reason`. Raises ConfigError when the label was never collected."""
        if not self.paths.manifest.is_file():
            raise ConfigError(f"run label {self.label!r} has no {self.paths.manifest.name} yet: run "
                              f"`flyhpc collect {self.label}` or Bundle.collect()")
        return read_manifest_frame(self.paths.manifest)

    def status(self) -> pd.DataFrame:
        """Every planned task's state now (the scheduler and the files: `flyhpc status`), one row per task."""
        from flyhpc.cluster.status import status

        report = status(self.paths.results_root, self.label, require_scheduler=False)
        return pd.DataFrame([vars(r) for r in report.rows])

    @property
    def benchmark(self) -> pd.DataFrame:
        """benchmark-results.csv (the seed's 18 columns, then ours) of a benchmark label."""
        self.paths.require_benchmark("open_bundle(...).benchmark")
        if not self.paths.results_csv.is_file():
            raise ConfigError(f"run label {self.label!r} has no {self.paths.results_csv.name} yet: run "
                              f"`flyhpc collect {self.label}` or Bundle.collect()")
        return read_results_frame(self.paths.results_csv)

    @property
    def screen(self) -> ScreenResults:
        """The merged files of a collected screen label (ConfigError for a benchmark label)."""
        if not self.paths.screen_plan.is_file():  # as `require_benchmark`: a label without a screen plan
            raise ConfigError(f"run label {self.label!r} holds benchmark tasks, not a screen: see Bundle.benchmark")
        return ScreenResults(self.paths)

    def _task(self, task: str):
        from flyhpc.cluster.submission import load_submission
        from flyhpc.kinds import task_from_dict

        planned = [task_from_dict(v) for v in load_submission(self.paths.results_root, self.label)["tasks"].values()]
        for t in planned:
            rel = self.paths.relative(self.paths.parquet(t))
            if task in (t.key, rel, rel.removesuffix(".parquet")):
                return t
        by_stem = [t for t in planned if t.stem == task]
        if len(by_stem) == 1:
            return by_stem[0]
        shown = ", ".join(self.paths.relative(self.paths.parquet(t)).removesuffix(".parquet") for t in planned[:6])
        raise ConfigError(f"run label {self.label!r} has no task {task!r}" +
                          (" in one round only (give round_XX/<stem>)" if by_stem else "") + f"; e.g. {shown}")

    def spikes(self, task: str) -> pd.DataFrame:
        """The spikes of one benchmark task (key, `round_01/native_t1.0s_n1`, or its stem when one round has it),
        the seed's parquet schema."""
        self.paths.require_benchmark("open_bundle(...).spikes")
        return read_spikes(self.paths.parquet(self._task(task)))

    def rates(self, task: str) -> pd.DataFrame:
        """Per-neuron mean and std rate (Hz) over the trials of one benchmark task (as `flyhpc run`'s rates CSV)."""
        self.paths.require_benchmark("open_bundle(...).rates")
        t = self._task(task)
        rec = read_record(self.paths.record(t))
        frame = read_spikes(self.paths.parquet(t), columns=["trial", "neuron_index", "flywire_id"])
        trials = np.asarray(rec["trials"], np.int64)
        if frame.empty:
            return rates_from_counts(None, np.zeros(0, np.int64), rec["t_run_s"], rec["n_run"])
        ids = np.zeros(int(frame["neuron_index"].max()) + 1, np.int64)
        ids[frame["neuron_index"].to_numpy()] = frame["flywire_id"].to_numpy()
        position = np.searchsorted(trials, frame["trial"].to_numpy())  # trials renumbered 0..n_run-1
        if not np.array_equal(trials[np.minimum(position, trials.size - 1)], frame["trial"].to_numpy()):
            raise DataError(f"{self.paths.parquet(t)}: spikes in trials its record does not list")
        n = ids.size  # counted per (trial, neuron) straight away: rates need no spike order
        per_trial = np.bincount(position * n + frame["neuron_index"].to_numpy(),
                                minlength=rec["n_run"] * n).reshape(rec["n_run"], n)
        return rates_from_counts(per_trial, ids, rec["t_run_s"], rec["n_run"])

    def collect(self) -> CollectReport:
        """`flyhpc collect` of the label (manifest, checksums, merged files); its `exit_code` says if complete."""
        from flyhpc import collect

        return collect.collect(self.paths.results_root, self.label)

    def verify(self) -> VerifyReport:
        """`flyhpc verify`'s verdict: `.ok`, `.exit_code` (0, 5 damaged, 4/75 incomplete) and what is wrong."""
        from flyhpc import collect

        return collect.verify(self.paths.results_root, self.label)

    def __repr__(self) -> str:
        return f"<Bundle {self.label!r} ({self.kind}) in {self.paths.results_root}>"


def open_bundle(label: str, results_root: str | os.PathLike = "results") -> Bundle:
    """Open a results label (a benchmark grid or a screen) for reading.

    Raises
    ------
    ConfigError
        A label that is not a safe folder name, does not exist or was never submitted.

    Examples
    --------
    >>> b = flyhpc.open_bundle("demo")                                      # doctest: +SKIP
    >>> b.benchmark[["framework", "t_run", "n_run", "sim_time"]]             # doctest: +SKIP
    >>> b.verify().ok                                                        # doctest: +SKIP
    """
    return Bundle(label_paths(results_root, label))


def screen(screen_or_path: str | os.PathLike, run_label: str | None = None, *,
           results_root: str | os.PathLike = "results", connectome: str | os.PathLike = "auto", parallel: int = 2,
           task_minutes: float = 10.0, max_per_task: int | None = None, keep_spikes: bool = False,
           timeout_s: float = 24 * 3600.0) -> Bundle:
    """Run a screen here (the local executor, `parallel` chunks at once), collect it and return its Bundle.

    `screen_or_path` is a screen name (`flyhpc.known_screens()`: sugar-sufficiency, sugar-necessity, atlas,
    ...) or a .toml path; `run_label` defaults to `<screen>_<date>_<time>`. Chunks already done under the label
    are kept (a rerun only runs what is missing).

    Raises
    ------
    ConfigError, DataError
        A bad screen file or label, unknown neurons (named), a label holding another plan.
    TaskFailed
        A chunk did not finish (naming it and its log); the label keeps what was done.

    Examples
    --------
    >>> b = flyhpc.screen("sugar-necessity", connectome="synthetic")       # doctest: +SKIP
    >>> b.screen.effects.head(), b.screen.paper                              # doctest: +SKIP
    """
    from flyhpc.cluster import profiles, slurm
    from flyhpc.screens.spec import load_screen
    from flyhpc.screen_submission import plan_screen, submit_screen

    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ConfigError(f"parallel must be an integer >= 1, got {parallel!r}")
    label = run_label or f"{load_screen(screen_or_path).name}_{datetime.now():%Y%m%d_%H%M%S}"
    sub = plan_screen(screen_or_path, label, results_root, profiles.load_profile("local"), connectome=str(connectome),
                      task_minutes=task_minutes, max_per_task=max_per_task, parallel=parallel,
                      keep_spikes=keep_spikes, container=False)
    submit_screen(sub)
    slurm.wait(results_root, label, timeout_s=timeout_s, poll_s=0.5)
    bundle = open_bundle(label, results_root)
    report = bundle.collect()
    if report.exit_code:
        bad = report.status.failures()
        first = f": {bad[0].key} {bad[0].state} ({bad[0].reason}; log {bad[0].log})" if bad else ""
        raise TaskFailed(f"screen label {label!r}: {len(bad)} chunk(s) did not finish{first}",
                         task_key=bad[0].key if bad else "", log_path=bad[0].log if bad else "")
    return bundle
