"""Python side of the split engine (flyhpc.backends.native.split): the cut, the row layout, the worker threads.

`split_bounds` cuts the ids into contiguous parts of about equal in-degree + 1 (deliveries and per-neuron
work); `SplitLayout` holds the row split points and, only when some row is not already ordered by target part,
a stably partitioned copy of indices and weights (built once per network and cut, `layout_for`). `run_split`
runs one trial on that many threads (worker 0 on the calling thread) and returns what `lazy.lazy_trial` does,
state sorted by neuron id. A worker that raises raises the abort flag (the others stop waiting) and the error
is raised here. No backend protocol, files or timing here.
Entry points: `split_bounds`, `cut_for`, `layout_for`, `run_split`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from flyhpc.backends.native.split import (PAD, RING_EXTRA, merge_records, part_of_neurons, partition_rows,
                                          split_layout, split_worker)
from flyhpc.errors import ConfigError


def split_bounds(indptr: np.ndarray, indices: np.ndarray, n_parts: int) -> np.ndarray:
    """int64 bounds (n_parts + 1) of contiguous id ranges with about equal sum of (in-degree + 1), none empty."""
    n = int(indptr.shape[0] - 1)
    if not 1 <= n_parts <= max(n, 1):
        raise ConfigError(f"cannot split {n} neurons into {n_parts} parts")
    cum = np.cumsum(np.bincount(indices, minlength=n) + 1)
    cuts = np.searchsorted(cum, cum[-1] * np.arange(1, n_parts) / n_parts, side="right")
    bounds = np.concatenate([[0], cuts, [n]]).astype(np.int64)
    return np.maximum.accumulate(np.maximum(bounds, np.arange(n_parts + 1)))  # no empty part


@dataclass(frozen=True)
class SplitLayout:
    """A network's rows for one cut: worker p reads row pre at [split[pre, p], split[pre, p + 1]) of the
    network's own indices/weights when every row is already ordered by target part (every connectome: its rows
    ascend by target), else of indices and net.weights_mv[order] (gathered per trial: weights change in place)."""

    bounds: np.ndarray  # int64, n_parts + 1
    split: np.ndarray  # int64, (n, n_parts + 1)
    indices: np.ndarray
    order: np.ndarray | None  # edge positions of the stably partitioned rows; None: the network's order

    def weights(self, net) -> np.ndarray:
        return net.weights_mv if self.order is None else net.weights_mv[self.order]


def cut_for(net, n_parts: int) -> np.ndarray:
    """`split_bounds` of `net` (an EngineNetwork), computed once per n_parts and kept on the network."""
    cuts = net.split_layouts.setdefault("cuts", {})
    if n_parts not in cuts:
        cuts[n_parts] = split_bounds(net.indptr, net.indices, n_parts)
    return cuts[n_parts]


def layout_for(net, bounds: np.ndarray) -> SplitLayout:
    """The layout of `net` (an EngineNetwork) for `bounds`, built once and kept on the network (one cut)."""
    key = tuple(int(b) for b in bounds)
    cache = net.split_layouts.setdefault("layouts", {})
    if key not in cache:
        b = np.asarray(key, np.int64)
        if b[0] != 0 or b[-1] != net.n_neurons or np.any(np.diff(b) < 1):
            raise ConfigError(f"split bounds {list(key)} are not ascending parts of 0..{net.n_neurons}")
        part = part_of_neurons(net.n_neurons, b)
        split, ordered = split_layout(net.indptr, net.indices, part)
        indices, order = net.indices, None
        if not ordered:
            indices, order = partition_rows(net.indptr, net.indices, np.arange(net.indices.size), part, split)
        cache.clear()  # one layout kept per network
        cache[key] = SplitLayout(bounds=b, split=split, indices=indices, order=order)
    return cache[key]


def _own_kicks(steps: np.ndarray, neurons: np.ndarray, lo: int, hi: int):
    keep = (neurons >= lo) & (neurons < hi)
    return np.ascontiguousarray(steps[keep]), np.ascontiguousarray(neurons[keep])


def run_split(net, steps: np.ndarray, neurons: np.ndarray, settings, bounds: np.ndarray, workspace: list):
    """One lazy trial on len(bounds) - 1 threads, the same spikes as `lazy_trial` bit for bit.

    workspace: the rows and wheel links (st, pred, queued, nxt, prv) of a clean one-thread workspace, left clean.
    Returns (spike_neurons, step_starts, state ids (ascending), anchor, u0, g0, stats int64): stats summed over
    the workers except clock_steps (the most any worker ran) and max_queue (the sum of each worker's maximum,
    an upper bound of the queue's).
    """
    layout = layout_for(net, bounds)
    weights = layout.weights(net)
    b = layout.bounds
    n_workers = b.shape[0] - 1
    t = net.tables
    n_slots = 2 * net.delay_steps + RING_EXTRA
    widest = int(np.diff(b).max())
    ring = np.empty((n_workers, n_slots, widest), np.int32)
    ring_meta = np.full((n_workers, n_slots, 2), -1, np.int64)  # (step, count) of each slot
    progress = np.zeros((n_workers + 1) * PAD, np.int64)  # last line: the abort flag
    results: list = [None] * n_workers
    errors: list = []

    def work(w: int) -> None:
        lo, hi = int(b[w]), int(b[w + 1])
        kick_steps, kick_neurons = _own_kicks(steps, neurons, lo, hi)
        try:
            results[w] = split_worker(
                w, b, layout.split, layout.indices, weights, net.weight_unit_mv, net.refractory_steps,
                t.pow_a, t.pow_b, t.coef_c, t.u_th_mv, t.u_rst_mv, net.kick_mv, net.delay_steps, net.n_steps,
                kick_steps, kick_neurons, t.log_a, t.log_b, t.kappa, t.peak_bound, float(t.peak_bins_per_ratio),
                float(t.coef_c_max), t.propagators, int(settings.wheel_bits), float(settings.clock_on),
                float(settings.clock_off), int(settings.window_steps), float(settings.predict_cost), *workspace,
                np.empty(hi - lo, np.int32), np.empty(hi - lo, np.int32), np.empty(net.n_steps + 1, np.int64),
                np.empty(max(1024, 2 * (hi - lo)), np.int32), ring, ring_meta, progress)
        except BaseException as exc:  # noqa: BLE001 - raised again below, after every worker stopped
            progress[n_workers * PAD] = 1
            errors.append(exc)

    threads = []
    try:
        for w in range(1, n_workers):
            threads.append(threading.Thread(target=work, args=(w,), name=f"flyhpc-split-{w}"))
            threads[-1].start()
    except BaseException as exc:  # no thread to start: the started ones must not wait for it
        progress[n_workers * PAD] = 1
        errors.append(exc)
        threads = [th for th in threads if th.ident is not None]
    else:
        work(0)
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    if not all(r[0] for r in results):
        raise RuntimeError("a split worker stopped on the abort flag but no worker reported an error")
    own = [r[7][:r[1][-1]] for r in results]
    offsets = np.concatenate([[0], np.cumsum([x.size for x in own])]).astype(np.int64)
    spikes, starts = merge_records(np.stack([r[1] for r in results]), np.concatenate(own), offsets)
    ids, anchor, u0, g0 = (np.concatenate([r[k] for r in results]) for k in range(2, 6))
    order = np.argsort(ids, kind="stable")
    stats = np.stack([r[6] for r in results])
    total = stats.sum(axis=0)
    total[0] = stats[:, 0].max()
    return spikes, starts, ids[order], anchor[order], u0[order], g0[order], total
