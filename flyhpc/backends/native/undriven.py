"""Screens' shortcut: prove that no undriven neuron of an experiment fires, and then simulate the driven ones alone.

In an atlas most activations excite nobody: the driven neuron's ~100 targets integrate ~200 inputs each and stay
below threshold, yet a full trial delivers all of them. This module decides it exactly, per trial:
1. the trial runs with the driven neurons' synapses onto undriven targets set to 0 mV (`outgoing_to_others`),
   which the engine drops without touching the target: only the driven neurons evolve (kicks, and the inputs
   they give each other) and only they can spike;
2. `undriven_stay_below` bounds, from the driven neurons' spike trains of that run, what an undriven target
   would have received: the subthreshold dynamics are linear from rest and the g -> u kernel c_k >= 0, so
   target t's value never exceeds sum over driven d of max(w_dt, 0) R_d, where R_d bounds the response of a
   unit-weight target to d's train (after every input u + g max c_k bounds all later table values; dropping
   negative weights only raises u). A margin of 1e-6 relative (plus the size of the negative terms) covers
   float64 rounding by orders of magnitude.
If every undriven target stays <= u_th - margin, no undriven neuron crosses in the full trial either (up to a
first undriven spike both runs are the same, and that spike would need a crossing the bound excludes), so the
trial's spikes are exactly the full trial's. Otherwise the trial runs again in full. Whether to try at all is
forecast by the same bound on the trial's kicks (a driven neuron fed by nobody fires once per kick at most),
so a base drive that excites its targets (sugar) goes straight to the full run. Entry points:
`outgoing_to_others`, `undriven_stay_below`, `spikes_stay_below`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MARGIN = 1e-6  # relative; float64 rounding of either side is ~1e-12 relative at most
# deliveries (kicks x synapses onto undriven neurons) a trial must be able to skip for the checks to pay: they
# cost ~30 us per experiment and ~5 us per trial in Python, a skipped delivery ~5 ns (measured on an atlas)
MIN_SKIPPED = 10_000


@njit(cache=True, nogil=True)
def outgoing_to_others(indptr, indices, driven, is_driven):
    """Positions (int64) of the synapses from the neurons `driven` onto neurons not in `driven`.

    is_driven: a uint8 scratch array of n_neurons zeros, left as it came in."""
    for d in driven:
        is_driven[d] = 1
    count = 0
    for d in driven:
        for e in range(indptr[d], indptr[d + 1]):
            count += 1 - is_driven[indices[e]]
    out = np.empty(count, np.int64)
    count = 0
    for d in driven:
        for e in range(indptr[d], indptr[d + 1]):
            if not is_driven[indices[e]]:
                out[count] = e
                count += 1
    for d in driven:
        is_driven[d] = 0
    return out


@njit(cache=True, nogil=True)
def _unit_response_bounds(neurons, steps, slot, pow_a, pow_b, coef_c, coef_c_max, n_slots):
    """R_d per slot: a bound on every table value of a unit-weight target fed by the events (steps ascending) of
    neuron d (slot[d] >= 0); -1.0 everywhere if an event names a neuron without a slot."""
    last = pow_a.shape[0] - 1
    u = np.zeros(n_slots)
    g = np.zeros(n_slots)
    at = np.zeros(n_slots, np.int64)
    bound = np.zeros(n_slots)
    for i in range(steps.shape[0]):
        k = slot[neurons[i]]
        if k < 0:
            bound[:] = -1.0
            return bound
        lag = min(steps[i] - at[k], last)
        u[k] = u[k] * pow_a[lag] + g[k] * coef_c[lag]
        g[k] = g[k] * pow_b[lag] + 1.0
        at[k] = steps[i]
        bound[k] = max(bound[k], u[k] + g[k] * coef_c_max)
    return bound


@njit(cache=True, nogil=True)
def spikes_stay_below(spike_neurons, step_starts, driven, slot, indptr, indices, weights, unit, edges, pow_a, pow_b,
                      coef_c, coef_c_max, u_th, acc):
    """`undriven_stay_below` on one trial's spikes as the engine returns them (ids per step, step_starts)."""
    steps = np.empty(spike_neurons.shape[0], np.int64)
    for s in range(step_starts.shape[0] - 1):
        for i in range(step_starts[s], step_starts[s + 1]):
            steps[i - step_starts[0]] = s
    return undriven_stay_below(spike_neurons, steps, driven, slot, indptr, indices, weights, unit, edges, pow_a,
                               pow_b, coef_c, coef_c_max, u_th, acc)


@njit(cache=True, nogil=True)
def undriven_stay_below(neurons, steps, driven, slot, indptr, indices, weights, unit, edges, pow_a, pow_b, coef_c,
                        coef_c_max, u_th, acc):
    """Whether no undriven target of `edges` (driven -> undriven synapses, at their full weights in `weights`)
    can cross u_th when the driven neurons spike at (neurons[i], steps[i]) (steps ascending): exact when those
    are a trial's spikes run with `edges` at 0 mV; a forecast when they are its kicks.

    driven: sorted, no repeats; slot: int64 scratch of n_neurons, all -1; acc: float64 scratch of n_neurons
    zeros; both left as they came in."""
    for i in range(driven.shape[0]):
        slot[driven[i]] = i
    bound = _unit_response_bounds(neurons, steps, slot, pow_a, pow_b, coef_c, coef_c_max, driven.shape[0])
    for i in range(driven.shape[0]):
        slot[driven[i]] = -1
    if bound.shape[0] and bound[0] < 0.0:
        return False
    for i in range(driven.shape[0]):
        if bound[i] > 0.0:
            d = driven[i]
            for e in range(indptr[d], indptr[d + 1]):
                w = weights[e] * unit
                acc[indices[e]] += (max(w, 0.0) + MARGIN * abs(w)) * bound[i]
    worst = 0.0
    for e in edges:
        worst = max(worst, acc[indices[e]])
    for i in range(driven.shape[0]):
        d = driven[i]
        for e in range(indptr[d], indptr[d + 1]):
            acc[indices[e]] = 0.0
    return worst * (1.0 + MARGIN) + 1e-9 < u_th
