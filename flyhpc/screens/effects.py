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
_BLOCK = 2048  # experiments per dense block when comparing every neuron


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
    base = rates.loc[rates["experiment_key"] == base_key, ["neuron_index", "flywire_id", "rate_mean_hz"]]
    keys = experiments["experiment_key"].to_numpy()
    effect, top_id, top_change = np.zeros(len(keys)), np.zeros(len(keys), np.int64), np.zeros(len(keys))
    grouped = dict(tuple(rates.groupby("experiment_key", sort=False)[["neuron_index", "flywire_id", "rate_mean_hz"]]))
    for start in range(0, len(keys), _BLOCK):
        block = keys[start:start + _BLOCK]
        parts = [grouped[k] for k in block if k in grouped]
        neurons = pd.concat([base, *parts])[["neuron_index", "flywire_id"]].drop_duplicates("neuron_index")
        neurons = neurons.sort_values("neuron_index")
        col = pd.Series(np.arange(len(neurons)), index=neurons["neuron_index"].to_numpy())
        dense = np.zeros((len(block), len(neurons)))
        for i, k in enumerate(block):
            if k in grouped:
                g = grouped[k]
                dense[i, col[g["neuron_index"].to_numpy()].to_numpy()] = g["rate_mean_hz"].to_numpy()
        ref = np.zeros(len(neurons))
        ref[col[base["neuron_index"].to_numpy()].to_numpy()] = base["rate_mean_hz"].to_numpy()
        delta = dense - ref
        if not len(neurons):
            continue
        where = np.abs(delta).argmax(axis=1)
        effect[start:start + len(block)] = np.abs(delta).sum(axis=1)
        top_id[start:start + len(block)] = neurons["flywire_id"].to_numpy()[where]
        top_change[start:start + len(block)] = delta[np.arange(len(block)), where]
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
