"""How much each experiment of a screen changed the brain's response, relative to the base experiment.

With readout neurons the effect of an experiment is the sum over them of |rate - rate in the base experiment|
(Hz), from the readout table; without, the same sum over every neuron that spiked in either run, from the
tidy rates table. A screen without a base experiment (the atlas: its base drives nothing) compares with
silence, so the effect is the total rate evoked. The neuron that changed most is named (its readout label, or
its FlyWire id). Pure pandas/numpy; reads and writes nothing. Entry points: `effect_table`, `EFFECT_COLUMNS`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EFFECT_COLUMNS = ("rank", "experiment_key", "experiment_name", "effect_hz", "measured_on", "top_neuron",
                  "top_change_hz", "spikes", "active_neurons")


def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.sort_values("effect_hz", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame[list(EFFECT_COLUMNS)]


def _from_readout(experiments: pd.DataFrame, readout: pd.DataFrame, base_key: str) -> pd.DataFrame:
    labels = [c for c in readout.columns if c not in ("experiment_key", "experiment_name")]
    values = readout[labels].to_numpy(np.float64)
    base = readout.loc[readout["experiment_key"] == base_key, labels].to_numpy(np.float64)
    delta = values - (base[0] if len(base) else 0.0)
    top = np.abs(delta).argmax(axis=1) if labels else np.zeros(len(readout), np.int64)
    out = experiments.copy()
    out["effect_hz"] = np.abs(delta).sum(axis=1)
    out["measured_on"] = "readout"
    out["top_neuron"] = [labels[i] for i in top] if labels else ""
    out["top_change_hz"] = delta[np.arange(len(delta)), top] if labels else 0.0
    return out


def _from_rates(experiments: pd.DataFrame, rates: pd.DataFrame, base_key: str) -> pd.DataFrame:
    """Effects over every neuron, vectorised over the tidy rows; a neuron the base had and the experiment
    lacks counts its whole base rate (the one per-experiment loop, only when the base has neurons)."""
    n_exp = len(experiments)
    pos = pd.Index(experiments["experiment_key"]).get_indexer(rates["experiment_key"])
    rows = rates[pos >= 0]
    pos = pos[pos >= 0]
    neuron = rows["neuron_index"].to_numpy(np.int64)
    size = int(neuron.max()) + 1 if neuron.size else 1
    base = np.zeros(size)
    in_base = rows["experiment_key"].to_numpy() == base_key
    base[neuron[in_base]] = rows["rate_mean_hz"].to_numpy()[in_base]
    flywire = np.zeros(size, np.int64)
    flywire[neuron] = rows["flywire_id"].to_numpy(np.int64)
    delta = rows["rate_mean_hz"].to_numpy() - base[neuron]
    effect = np.bincount(pos, np.abs(delta), n_exp)
    top_abs, top_id, top_change = np.zeros(n_exp), np.zeros(n_exp, np.int64), np.zeros(n_exp)
    order = np.lexsort((-np.abs(delta), pos))  # per experiment, its largest change first
    first = order[np.unique(pos[order], return_index=True)[1]]
    top_abs[pos[first]], top_id[pos[first]], top_change[pos[first]] = np.abs(delta[first]), flywire[neuron[first]], \
        delta[first]
    lost = np.flatnonzero(base)[np.argsort(-base[np.flatnonzero(base)], kind="stable")]  # base neurons, largest first
    if lost.size:
        by_exp = np.split(neuron[np.argsort(pos, kind="stable")], np.cumsum(np.bincount(pos, minlength=n_exp))[:-1])
        for e, present in enumerate(by_exp):
            absent = lost[~np.isin(lost, present)]
            effect[e] += base[absent].sum()
            if absent.size and base[absent[0]] > top_abs[e]:
                top_abs[e], top_id[e], top_change[e] = base[absent[0]], flywire[absent[0]], -base[absent[0]]
    out = experiments.copy()
    out["effect_hz"] = effect
    out["measured_on"] = "all neurons"
    out["top_neuron"] = np.where(effect > 0, top_id.astype(str), "")
    out["top_change_hz"] = top_change
    return out


def effect_table(experiments: pd.DataFrame, rates: pd.DataFrame, base_key: str = "",
                 readout: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every experiment ranked by its effect (largest first; ties keep plan order), columns `EFFECT_COLUMNS`.

    Parameters
    ----------
    experiments
        One row per experiment in plan order: experiment_key, experiment_name, spikes, active_neurons.
    rates
        The screen's tidy rates (experiment_key, neuron_index, flywire_id, rate_mean_hz, ...).
    base_key
        The base experiment's key ("" when the screen has none: compare with silence).
    readout
        The readout table (experiment_key, experiment_name, one column per readout neuron), or None.
    """
    cols = experiments[["experiment_key", "experiment_name", "spikes", "active_neurons"]].reset_index(drop=True)
    if readout is not None:
        readout = cols[["experiment_key"]].merge(readout, on="experiment_key", how="left").fillna(0.0)
        return _ranked(_from_readout(cols, readout, base_key))
    return _ranked(_from_rates(cols, rates, base_key))
