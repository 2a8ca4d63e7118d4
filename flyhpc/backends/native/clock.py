"""The compiled clock-driven engine: every neuron evaluated at every step (the oracle of the lazy engine).

A literal transcription of the contract's per-step schedule (groups, thresholds, synapses, resets)
on anchored states: a neuron's (u, g) at step n is computed from its anchor with the shared tables;
an input of exactly 0 mV is dropped without re-anchoring its target (as the lazy engine does).
Self-contained on purpose (numba's cache only tracks the defining file, and the lazy engine must
not share code with its oracle). No Python-level logic. Entry point: `clock_trial`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _grow(buf):
    out = np.empty(buf.shape[0] * 2, buf.dtype)
    out[:buf.shape[0]] = buf
    return out


@njit(cache=True, nogil=True)
def _threshold(step, anchor, u0, g0, pow_a, coef_c, u_th, found):
    """Write the neurons crossing the threshold at `step` (ascending) into `found`; return their count."""
    last = pow_a.shape[0] - 1
    count = 0
    for j in range(anchor.shape[0]):
        k = step - anchor[j]
        if k > 0:  # frozen neurons have anchor >= step
            if k > last:
                k = last
            if u0[j] * pow_a[k] + g0[j] * coef_c[k] > u_th:
                found[count] = j
                count += 1
    return count


@njit(cache=True, nogil=True, inline="always")  # inlined in the inner loops (called, the engine ran ~10 % slower)
def _advance(t, step, anchor, u0, g0, pow_a, pow_b, coef_c, last):
    """Re-anchor neuron t's state at `step` (where it is anchored earlier), before an input is added to it."""
    if anchor[t] < step:
        k = step - anchor[t]
        if k > last:
            k = last
        u = u0[t] * pow_a[k] + g0[t] * coef_c[k]
        g = g0[t] * pow_b[k]
        u0[t] = u
        g0[t] = g
        anchor[t] = step


@njit(cache=True, nogil=True)
def clock_trial(indptr, indices, weights, weight_unit, refractory_steps, pow_a, pow_b, coef_c, u_th, u_rst, kick_mv,
                delay_steps, n_steps, kick_steps, kick_neurons):
    """Simulate one trial clock-driven; synapse e adds weights[e] x weight_unit mV to its target's g.

    Returns (spike_neurons int32, step_starts int64[n_steps + 1], anchor int64, u0, g0): spikes of
    step s are spike_neurons[step_starts[s]:step_starts[s + 1]] in ascending order; the last three
    arrays are the final anchored state (state after step anchor[j] is (u0[j], g0[j])).
    """
    n = indptr.shape[0] - 1
    last = pow_a.shape[0] - 1
    anchor = np.full(n, -1, np.int64)
    frozen_until = np.full(n, -1, np.int64)
    u0 = np.zeros(n)
    g0 = np.zeros(n)
    starts = np.zeros(n_steps + 1, np.int64)
    found = np.empty(n, np.int32)
    rec = np.empty(1024, np.int32)
    n_rec = 0
    kp = 0
    n_kicks = kick_steps.shape[0]
    for step in range(n_steps):
        starts[step] = n_rec
        # 1 + 2: groups and thresholds (frozen neurons have anchor >= step)
        n_new = _threshold(step, anchor, u0, g0, pow_a, coef_c, u_th, found)
        while n_rec + n_new > rec.shape[0]:
            rec = _grow(rec)
        rec[n_rec:n_rec + n_new] = found[:n_new]
        n_rec += n_new
        # 4 (applied first, same effect): a spiking neuron is reset and drops every input of this step
        for i in range(starts[step], n_rec):
            j = rec[i]
            r = refractory_steps[j]
            until = step + (r if r > 0 else 1) - 1
            frozen_until[j] = until
            anchor[j] = until
            u0[j] = u_rst
            g0[j] = 0.0
        # 3: synapses, spikes of step - delay in ascending order, then this step's drive kicks
        if step >= delay_steps:
            src = step - delay_steps
            for i in range(starts[src], starts[src + 1]):
                pre = rec[i]
                for e in range(indptr[pre], indptr[pre + 1]):
                    t = indices[e]
                    if frozen_until[t] >= step or weights[e] == 0:  # a 0 mV input touches nothing
                        continue
                    _advance(t, step, anchor, u0, g0, pow_a, pow_b, coef_c, last)
                    g0[t] = g0[t] + weights[e] * weight_unit
        while kp < n_kicks and kick_steps[kp] == step:
            t = kick_neurons[kp]
            kp += 1
            if frozen_until[t] >= step or kick_mv == 0.0:
                continue
            _advance(t, step, anchor, u0, g0, pow_a, pow_b, coef_c, last)
            u0[t] = u0[t] + kick_mv
    starts[n_steps] = n_rec
    return rec[:n_rec].copy(), starts, anchor, u0, g0
