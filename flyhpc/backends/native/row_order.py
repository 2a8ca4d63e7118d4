"""State rows ordered by activity: the neurons a pilot run's spikes reach most get adjacent rows.

A sugar trial's inputs go mostly to a few thousand neurons scattered over the ids (the top 10 % of the neurons
reached take about 90 % of the inputs). Given adjacent rows, their 32-byte states share cache lines and stay
closer to the core: -7 to -12 % sim time on sugar trials of the full-scale synthetic connectome. The order is
read from the first steps of the task's first trial (its spike counts times its neurons' out-rows give each
neuron's inputs; `trials.SharedPilot`), serves every trial of the task, and changes no result: `lazy.lazy_trial`
takes the two maps, translates the out-row of a neuron to rows the first time it spikes in a trial (rewriting
all 15 M targets up front cost 36 ms a task) and records spikes by neuron id; the caller maps the final state
back (`trials._run_lazy`).
Entry points: `RowOrder`, `identity_order`, `order_by_inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RowOrder:
    """Where each neuron's state lives: row slot[o] holds neuron o, owner[j] is the neuron of row j (int32)."""

    slot: np.ndarray
    owner: np.ndarray
    identity: bool


def identity_order(n_neurons: int) -> RowOrder:
    """Rows in neuron id order."""
    ids = np.arange(n_neurons, dtype=np.int32)
    return RowOrder(slot=ids, owner=ids, identity=True)


def order_by_inputs(indptr: np.ndarray, indices: np.ndarray, spike_neurons: np.ndarray) -> RowOrder:
    """Rows by the inputs `spike_neurons` (one entry per spike) deliver, most first; ties and the neurons
    they do not reach in id order."""
    n = indptr.shape[0] - 1
    fired, counts = np.unique(np.asarray(spike_neurons, dtype=np.int64), return_counts=True)
    rows = [indices[indptr[j]:indptr[j + 1]] for j in fired]  # the out-rows of the few neurons that fired
    weights = np.repeat(counts, [row.size for row in rows])
    inputs = np.bincount(np.concatenate(rows or [indices[:0]]), weights=weights, minlength=n)
    reached = np.flatnonzero(inputs)  # sorting only these: 0.5 ms, the whole argsort 4 ms at full scale
    owner = np.concatenate([reached[np.argsort(-inputs[reached], kind="stable")],
                            np.flatnonzero(inputs == 0)]).astype(np.int32)
    slot = np.empty(n, np.int32)
    slot[owner] = np.arange(n, dtype=np.int32)
    return RowOrder(slot=slot, owner=owner, identity=False)
