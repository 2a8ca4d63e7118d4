"""Two `flyhpc run` outputs of one design, trial by trial: are they identical, and what changed (`flyhpc compare runs`).

With drive version 2 two runs that drive the same neurons at the same rates (same seed, round, t_run, n_run,
connectome) got the same input trains in every trial, whatever else differs (what is silenced, and how). Their
spikes then differ only by that difference's effect: identical when it has none. This module checks that the
runs are comparable (from the records `flyhpc run` writes beside each parquet), says whether the spikes are
identical or names the first difference (trial, time, neuron), and measures the paired change of every neuron
with `flyhpc.screens.effects` (run A is the base; neurons B drives or silences are its own, reported apart).
Reads files only. Entry points: `compare_runs`, `RunComparison`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from flyhpc.errors import ConfigError
from flyhpc.screens.effects import paired_effects
from flyhpc.results.screen_tables import TIDY_SCHEMA
from flyhpc.results.spikes import read_spikes

_MUST_AGREE = ("t_run_s", "n_run", "seed", "round", "connectome_digest", "drive_version")


@dataclass(frozen=True)
class RunComparison:
    """`identical` spikes or the `first_difference` (trial, time_ms, neuron_index of each side); `effect` (the
    `flyhpc.screens.effects.EFFECT_COLUMNS` row of B against A) and `neurons` (every measured neuron's change)."""

    spikes_a: int
    spikes_b: int
    identical: bool
    first_difference: dict | None
    effect: pd.Series
    neurons: pd.DataFrame


def _record(parquet: Path) -> dict:
    path = parquet.with_suffix(".json")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no record beside {parquet.name} (compare runs reads what `flyhpc run` "
                          "writes: <stem>.parquet and <stem>.json)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None


def _check_pair(a: dict, b: dict, path_a: Path, path_b: Path) -> None:
    diffs = [f"{k} {a.get(k)!r} in {path_a.name}, {b.get(k)!r} in {path_b.name}" for k in _MUST_AGREE
             if a.get(k, 1 if k == "drive_version" else None) != b.get(k, 1 if k == "drive_version" else None)]
    if diffs:
        raise ConfigError("these runs are not paired trial by trial: " + "; ".join(diffs))
    if a.get("drive_version", 1) < 2:
        raise ConfigError(f"{path_a.name}: made with drive version {a.get('drive_version', 1)}, whose input trains "
                          "depend on the whole experiment: runs of it are not paired; run them again")
    if sorted(a.get("driven_neurons", [])) != sorted(b.get("driven_neurons", [])):
        raise ConfigError(f"{path_a.name} and {path_b.name} drive other neurons: only runs that drive the same "
                          "neurons share their input trains")


def _tidy(key: str, spikes: pd.DataFrame, record: dict, n_run: int, t_run_s: float) -> pa.Table:
    """One run's spikes as the screen's tidy rates (trial_spikes per neuron, roles from the record); counted
    with one bincount, so a 32 x 100 s file (58 M spikes) costs no per-spike Python."""
    driven = np.asarray(record.get("driven_neurons", []), np.int64)
    silenced = np.asarray(record.get("silenced_neurons", []), np.int64)
    neuron = spikes["neuron_index"].to_numpy(np.int64)
    active, first = np.unique(neuron, return_index=True)
    rows = np.union1d(active, np.union1d(driven, silenced))
    row = np.searchsorted(rows, neuron)
    counts = np.bincount(row * n_run + spikes["trial"].to_numpy(np.int64),
                         minlength=rows.size * n_run).reshape(rows.size, n_run)
    flywire = np.full(rows.size, -1, np.int64)  # a quiet driven or silenced neuron: no spike names its id
    flywire[np.searchsorted(rows, active)] = spikes["flywire_id"].to_numpy(np.int64)[first]
    role = np.full(rows.size, "", dtype=object)
    role[np.searchsorted(rows, driven)] = "driven"
    role[np.searchsorted(rows, silenced)] = "silenced"
    offsets = pa.array(np.arange(rows.size + 1, dtype=np.int32) * n_run)
    return pa.table({
        "experiment_key": [key] * rows.size, "experiment_name": [key] * rows.size,
        "neuron_index": pa.array(rows, pa.int32()), "flywire_id": pa.array(flywire, pa.int64()),
        "spikes": counts.sum(axis=1), "rate_mean_hz": counts.mean(axis=1) / t_run_s,
        "rate_std_hz": np.full(rows.size, np.nan), "n_trials": pa.array(np.full(rows.size, n_run), pa.int32()),
        "role": pa.array(role.tolist(), pa.string()),
        "trial_spikes": pa.ListArray.from_arrays(offsets, pa.array(counts.ravel().astype(np.int32)))},
        schema=TIDY_SCHEMA)


def _first_difference(a: pd.DataFrame, b: pd.DataFrame) -> dict | None:
    cols = ["trial", "time_ms", "neuron_index"]
    n = min(len(a), len(b))
    differ = np.flatnonzero((a[cols].to_numpy()[:n] != b[cols].to_numpy()[:n]).any(axis=1))
    at = int(differ[0]) if differ.size else (n if len(a) != len(b) else None)
    if at is None:
        return None

    def side(frame):
        return {c: frame[c].iloc[at].item() for c in cols} if at < len(frame) else None

    return {"index": at, "a": side(a), "b": side(b)}


def compare_runs(path_a: str | Path, path_b: str | Path) -> RunComparison:
    """Run B against run A (the base): identical or not, and the paired change of every neuron.

    Raises
    ------
    ConfigError
        A record is missing, or the runs are not paired (other t_run, n_run, seed, round, connectome, drive
        version or driven neurons; each named).
    DataError
        An unreadable spike parquet.
    """
    path_a, path_b = Path(path_a), Path(path_b)
    rec_a, rec_b = _record(path_a), _record(path_b)
    _check_pair(rec_a, rec_b, path_a, path_b)
    cols = ["trial", "time_ms", "neuron_index", "flywire_id"]
    spikes_a, spikes_b = read_spikes(path_a, cols), read_spikes(path_b, cols)
    first = _first_difference(spikes_a, spikes_b)
    n_run, t_run_s = int(rec_a["n_run"]), float(rec_a["t_run_s"])
    tidy = pa.concat_tables([_tidy("a", spikes_a, {**rec_a, "driven_neurons": [], "silenced_neurons": []}, n_run,
                                   t_run_s), _tidy("b", spikes_b, rec_b, n_run, t_run_s)])
    experiments = pd.DataFrame({"experiment_key": ["a", "b"], "experiment_name": [path_a.name, path_b.name],
                                "spikes": [len(spikes_a), len(spikes_b)],
                                "active_neurons": [spikes_a["neuron_index"].nunique(), spikes_b["neuron_index"].nunique()]})
    effects, neurons = paired_effects(experiments, tidy, base_key="a", n_run=n_run, t_run_s=t_run_s)
    effect = effects.set_index("experiment_key").loc["b"]
    neurons = neurons[neurons["experiment_key"] == "b"].drop(columns=["experiment_key"])
    return RunComparison(len(spikes_a), len(spikes_b), first is None, first, effect,
                         neurons.sort_values("change_hz", key=np.abs, ascending=False, kind="stable"))
