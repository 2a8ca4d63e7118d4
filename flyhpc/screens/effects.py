"""How much each experiment of a screen changed the brain's response, relative to the base experiment, with its
uncertainty.

Trials are paired: with drive version 2 (`flyhpc.drive`) trial k of every experiment gets the same input trains
for the neurons the base drives, so the difference of a neuron's rate between an experiment and the base in
trial k is the experiment's effect plus noise that the pairing keeps small (and none at all where nothing
changed). For each experiment and each measured neuron — the readout neurons, or every neuron that spiked in
the experiment or the base — the mean paired difference over trials (Hz), its standard error, a paired t-test
and its Benjamini-Hochberg q-value within the experiment (`ALPHA` = 0.05). The neurons an experiment drives or
silences are not measured: their own change is `own_change_hz`, apart from the effect on the others, so the two
silence modes rank alike. A screen without a base experiment (the atlas) compares with silence.

Per experiment (`EFFECT_COLUMNS`): `effect_hz` = sum of |mean difference| over the measured neurons,
`effect_se_hz` = the root sum of their squared standard errors, `n_significant` of `n_tested` neurons with
q < ALPHA, `significant_effect_hz` = the sum over those alone, and the neuron that changed most. Experiments are
ranked by `significant_effect_hz` (noise alone makes almost no significant neuron, so a noisy experiment cannot
top a real effect), then `effect_hz`; with one trial nothing can be tested and they are ranked by `effect_hz`.
Pure numpy/scipy/pandas; reads and writes nothing. Entry points: `paired_effects`, `Readout`, `EFFECT_COLUMNS`,
`NEURON_EFFECT_COLUMNS`, `ALPHA`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import stdtr

from flyhpc.results.screen_tables import ROLES

ALPHA = 0.05  # false-discovery rate of the per-experiment Benjamini-Hochberg procedure
EFFECT_COLUMNS = ("rank", "experiment_key", "experiment_name", "significant_effect_hz", "n_significant", "n_tested",
                  "effect_hz", "effect_se_hz", "own_change_hz", "measured_on", "top_neuron", "top_change_hz",
                  "top_change_se_hz", "top_q", "spikes", "active_neurons")
NEURON_EFFECT_COLUMNS = ("experiment_key", "neuron_index", "flywire_id", "label", "base_rate_hz", "rate_hz",
                         "change_hz", "change_se_hz", "t", "p", "q", "significant")
_BLOCK_ROWS = 4_000_000  # base rows paired per block of experiments (bounds memory for screens with a busy base)


@dataclass(frozen=True)
class Readout:
    """The screen's readout neurons as written (`by` "id": FlyWire ids, "index": row indices) with their labels."""

    values: tuple[int, ...]
    labels: tuple[str, ...]
    by: str


@dataclass(frozen=True)
class _Rows:
    """The tidy rates as arrays: experiment position, neuron, FlyWire id, role code, spikes per trial."""

    pos: np.ndarray
    neuron: np.ndarray
    flywire: np.ndarray
    role: np.ndarray
    counts: np.ndarray  # rows x n_run

    def take(self, mask: np.ndarray) -> "_Rows":
        return _Rows(self.pos[mask], self.neuron[mask], self.flywire[mask], self.role[mask], self.counts[mask])


def _rows(experiments: pd.DataFrame, rates: pa.Table, n_run: int) -> _Rows:
    pos = pd.Index(experiments["experiment_key"]).get_indexer(rates.column("experiment_key").to_numpy())
    keep = pos >= 0
    counts = rates.column("trial_spikes").combine_chunks().flatten().to_numpy().astype(np.int64).reshape(-1, n_run)
    role = pc.index_in(rates.column("role"), value_set=pa.array(ROLES)).to_numpy(zero_copy_only=False)
    return _Rows(pos.astype(np.int64), rates.column("neuron_index").to_numpy().astype(np.int64),
                 rates.column("flywire_id").to_numpy().astype(np.int64), np.asarray(role, np.int8),
                 counts).take(keep)


def _pair(block: _Rows, base: _Rows, positions: np.ndarray, n_neurons: int):
    """Group the block's rows with the base's rows repeated for each of `positions`: per (experiment, neuron) the
    paired count differences (groups x n_run), the base counts, and whether the experiment drives or silences it."""
    rep_pos = np.repeat(positions, base.pos.size)
    rep = np.tile(np.arange(base.pos.size), positions.size)
    pos = np.concatenate([block.pos, rep_pos])
    neuron = np.concatenate([block.neuron, base.neuron[rep]])
    key = pos * n_neurons + neuron
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    n_groups, n_run = uniq.size, block.counts.shape[1]
    signed = np.concatenate([block.counts, -base.counts[rep]])
    base_counts = np.concatenate([np.zeros_like(block.counts), base.counts[rep]])
    diff, base_sum = np.empty((n_groups, n_run)), np.empty((n_groups, n_run))
    for t in range(n_run):
        diff[:, t] = np.bincount(inv, signed[:, t], n_groups)
        base_sum[:, t] = np.bincount(inv, base_counts[:, t], n_groups)
    own = np.bincount(inv, np.concatenate([block.role != 0, np.zeros(rep.size, bool)]), n_groups) > 0
    flywire = np.concatenate([block.flywire, base.flywire[rep]])[first]
    return uniq // n_neurons, uniq % n_neurons, flywire, diff, base_sum, own


def _paired_test(diff_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error, t and two-sided p of paired differences (rows x trials); NaN with one trial.
    No spread: t = 0 and p = 1 when the mean is 0, else p = 0 (every trial changed by the same amount)."""
    n = diff_hz.shape[1]
    mean = diff_hz.mean(axis=1)
    if n < 2:
        nan = np.full(mean.size, np.nan)
        return mean, nan, nan, nan
    se = diff_hz.std(axis=1, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, mean / se, np.where(mean == 0, 0.0, np.copysign(np.inf, mean)))
    return mean, se, t, 2.0 * stdtr(n - 1, -np.abs(t))


def _bh(pos: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of `p` within each experiment `pos` (NaN p gives NaN q)."""
    q = np.full(p.size, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if not ok.size:
        return q
    order = ok[np.lexsort((p[ok], pos[ok]))]
    group = pos[order]
    m = np.bincount(group)[group]
    start = np.searchsorted(group, group)  # first index of each experiment in `order`
    raw = np.minimum(1.0, p[order] * m / (np.arange(order.size) - start + 1))
    # step-up: q_(k) = min over j >= k of raw_(j), within each experiment
    q[order] = pd.Series(raw[::-1]).groupby(group[::-1]).cummin().to_numpy()[::-1]
    return q


def _measured(neuron, flywire, own, readout: Readout | None) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the measured groups (readout neurons, or every neuron, never the experiment's own) and labels
    (readout labels, or FlyWire ids)."""
    if readout is None:
        return ~own, flywire.astype(str)
    values = np.asarray(readout.values, np.int64)
    order = np.argsort(values, kind="stable")
    ident = flywire if readout.by == "id" else neuron
    at = np.minimum(np.searchsorted(values[order], ident), values.size - 1)
    hit = values[order][at] == ident
    return hit & ~own, np.where(hit, np.asarray(readout.labels, dtype=object)[order][at], "").astype(str)


def paired_effects(experiments: pd.DataFrame, rates: pa.Table, *, base_key: str, n_run: int, t_run_s: float,
                   readout: Readout | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(effects, neuron effects): every experiment ranked (`EFFECT_COLUMNS`) and every measured (experiment,
    neuron) with its paired change (`NEURON_EFFECT_COLUMNS`, experiments in plan order, neurons by index).

    Parameters
    ----------
    experiments
        One row per experiment in plan order: experiment_key, experiment_name, spikes, active_neurons.
    rates
        The screen's tidy rates (`flyhpc.results.screen_tables.TIDY_SCHEMA`: role and trial_spikes included).
    base_key
        The base experiment's key ("" when the screen has none: compare with silence).
    readout
        The readout neurons, or None (every neuron is measured).
    """
    cols = experiments[["experiment_key", "experiment_name", "spikes", "active_neurons"]].reset_index(drop=True)
    rows = _rows(cols, rates, n_run)
    base_pos = cols.index[cols["experiment_key"] == base_key]
    base = rows.take(rows.pos == base_pos[0]) if len(base_pos) else rows.take(rows.pos < 0)
    n_neurons = int(max(rows.neuron.max(initial=0), base.neuron.max(initial=0))) + 1
    per_block = max(1, _BLOCK_ROWS // max(1, base.pos.size))
    parts = []
    for start in range(0, len(cols), per_block):
        positions = np.arange(start, min(start + per_block, len(cols)))
        block = rows.take((rows.pos >= positions[0]) & (rows.pos <= positions[-1]))
        parts.append(_pair(block, base, positions if base.pos.size else positions[:0], n_neurons))
    pos, neuron, flywire, diff, base_sum, own = (np.concatenate(x) for x in zip(*parts))
    mean, se, t, p = _paired_test(diff / t_run_s)
    measured, labels = _measured(neuron, flywire, own, readout)
    q = np.full(p.size, np.nan)
    q[measured] = _bh(pos[measured], p[measured])
    significant = q < ALPHA
    base_rate = base_sum.mean(axis=1) / t_run_s
    neurons = pd.DataFrame({
        "experiment_key": cols["experiment_key"].to_numpy()[pos[measured]], "neuron_index": neuron[measured],
        "flywire_id": flywire[measured], "label": labels[measured], "base_rate_hz": base_rate[measured],
        "rate_hz": base_rate[measured] + mean[measured], "change_hz": mean[measured], "change_se_hz": se[measured],
        "t": t[measured], "p": p[measured], "q": q[measured], "significant": significant[measured]})
    return _per_experiment(cols, pos, mean, se, q, significant, measured, own, labels, n_run,
                           "readout" if readout is not None else "all neurons"), neurons


def _per_experiment(cols, pos, mean, se, q, significant, measured, own, labels, n_run, measured_on) -> pd.DataFrame:
    n_exp = len(cols)
    m_pos, size = pos[measured], np.abs(mean[measured])
    out = cols.copy()
    out["significant_effect_hz"] = np.bincount(m_pos, size * significant[measured], n_exp)
    out["n_significant"] = np.bincount(m_pos, significant[measured], n_exp).astype(np.int64)
    out["n_tested"] = np.bincount(m_pos, minlength=n_exp)
    out["effect_hz"] = np.bincount(m_pos, size, n_exp)
    out["effect_se_hz"] = np.sqrt(np.bincount(m_pos, se[measured] ** 2, n_exp))
    out["own_change_hz"] = np.bincount(pos[own], mean[own], n_exp)
    out["measured_on"] = measured_on
    top = np.full(n_exp, -1)
    order = np.lexsort((-size, m_pos))  # per experiment, its largest change first
    firsts = order[np.unique(m_pos[order], return_index=True)[1]]
    top[m_pos[firsts]] = np.flatnonzero(measured)[firsts]
    has = (top >= 0) & (out["effect_hz"].to_numpy() > 0)
    pick = np.where(has, top, 0)
    out["top_neuron"] = np.where(has, labels[pick], "") if labels.size else ""
    for column, values in (("top_change_hz", mean), ("top_change_se_hz", se), ("top_q", q)):
        out[column] = np.where(has, values[pick], 0.0 if column == "top_change_hz" else np.nan) if values.size \
            else np.nan
    if n_run < 2:
        out["significant_effect_hz"] = np.nan
        key = [out["effect_hz"]]
    else:
        key = [out["significant_effect_hz"], out["effect_hz"]]
    order = np.lexsort(tuple(-np.asarray(k, np.float64) for k in reversed(key)))  # stable: ties keep plan order
    out = out.iloc[order].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, n_exp + 1))
    return out[list(EFFECT_COLUMNS)]
