"""A screen's experiments: its axes made concrete on a connectome, then their product, each with a key and a name.

Order: the base experiment first (when it drives something at a rate of its own), then the product of
`activate_each` x `silence_each` x `rate_hz`, in the order the axes list their values (the rate varies fastest).
An `activate_each` neuron joins activation set 1, a `silence_each` neuron the silence set, a rate replaces set 1's
rate. An experiment's key is the first 16 hex digits of `Experiment.digest()` (what it does, not its name), so
the same experiment has the same key in every screen; a product point identical to the base runs once, as the
base. "all" and {most_active = N} axes need the connectome (and a run of the base for most_active:
`most_active`). Entry points: `ScreenExperiment`, `base_experiment`, `concrete_axes`, `expand`, `most_active`,
`resolve_neurons`, `KEY_CHARS`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from flyhpc.errors import ConfigError
from flyhpc.model import Experiment
from flyhpc.screens.spec import ALL, NeuronList, Screen

KEY_CHARS = 16


@dataclass(frozen=True)
class ScreenExperiment:
    """One experiment of a screen: `key` (stable digest prefix), `name` (human) and the `Experiment` itself
    (named `name`; its own `key` field, which names presets, is `screen:<screen name>`)."""

    key: str
    name: str
    experiment: Experiment


def _experiment(screen: Screen, name: str, activate: tuple[int, ...], rate_hz: float,
                silence: tuple[int, ...]) -> ScreenExperiment:
    try:
        exp = Experiment(name=name, key=f"screen:{screen.name}", activate=activate, rate_hz=rate_hz,
                         activate2=screen.activate2.values, rate2_hz=screen.rate2_hz, silence=silence, by=screen.by,
                         silence_mode=screen.silence_mode)
    except ConfigError as exc:
        raise ConfigError(f"{screen.path}: {exc}") from None
    return ScreenExperiment(key=exp.digest()[:KEY_CHARS], name=name, experiment=exp)


def base_experiment(screen: Screen) -> ScreenExperiment | None:
    """The [base] table as an experiment; None when it drives nothing or has no rate of its own."""
    if not screen.activate.values or screen.rate_hz is None:
        return None
    return _experiment(screen, f"{screen.name}: base", screen.activate.values, screen.rate_hz, screen.silence.values)


def expand(screen: Screen, activate_each: NeuronList | None = None,
           silence_each: NeuronList | None = None) -> list[ScreenExperiment]:
    """Every experiment of `screen`, base first. Neuron axes must be concrete lists: pass them from
    `concrete_axes` when the screen has "all" or most_active axes (default: the screen's own).

    Raises
    ------
    ConfigError
        An axis that is not concrete; an experiment that drives and silences one neuron, or lists it twice
        (naming the screen file and the experiment).
    """
    activate_each = activate_each or screen.activate_each
    silence_each = silence_each or screen.silence_each
    for label, axis in (("activate_each", activate_each), ("silence_each", silence_each)):
        if axis is not None and axis.kind != "list":
            raise ConfigError(f"{screen.path} [axes].{label}: {axis.kind!r} needs the connectome (concrete_axes)")
    a_axis = list(zip(activate_each.values, activate_each.labels)) if activate_each else [None]
    s_axis = list(zip(silence_each.values, silence_each.labels)) if silence_each else [None]
    r_axis = list(screen.rates_hz) or [None]
    out: list[ScreenExperiment] = []
    base = base_experiment(screen)
    if base:
        out.append(base)
    seen = {e.key for e in out}
    for a, s, r in itertools.product(a_axis, s_axis, r_axis):
        parts = []
        activate, silence, rate_hz = screen.activate.values, screen.silence.values, screen.rate_hz
        if a is not None:
            activate = (*activate, a[0])
            parts.append(f"activate {a[1]}")
        if s is not None:
            silence = (*silence, s[0])
            parts.append(f"silence {s[1]}")
        if r is not None:
            rate_hz = r
            parts.append(f"{r:g} Hz")
        exp = _experiment(screen, f"{screen.name}: {', '.join(parts)}", activate, rate_hz, silence)
        if exp.key not in seen:
            seen.add(exp.key)
            out.append(exp)
    return out


def resolve_neurons(values, by: str, flywire_ids: np.ndarray, where: str) -> np.ndarray:
    """Row indices (int32) of neurons given as FlyWire ids or row indices.

    Raises
    ------
    ConfigError
        Naming every unknown id (or out-of-range index) and `where` they came from.
    """
    arr = np.asarray(values, dtype=np.int64)
    n = len(flywire_ids)
    if by == "index":
        bad = arr[(arr < 0) | (arr >= n)]
        if bad.size:
            raise ConfigError(f"{where}: index {_show(bad)} out of range 0..{n - 1}")
        return arr.astype(np.int32)
    pos = np.minimum(np.searchsorted(flywire_ids, arr), n - 1)
    ok = flywire_ids[pos] == arr
    if not ok.all():
        raise ConfigError(f"{where}: FlyWire id {_show(arr[~ok])} not in the connectome's {n} neurons")
    return pos.astype(np.int32)


def _show(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:limit].tolist())
    return shown + (f" (+{values.size - limit} more)" if values.size > limit else "")


def _in_base(screen: Screen, flywire_ids: np.ndarray) -> np.ndarray:
    """Row indices the base experiment drives or silences."""
    values = screen.activate.values + screen.activate2.values + screen.silence.values
    return resolve_neurons(values, screen.by, flywire_ids, f"{screen.path} [base]")


def _as_values(screen: Screen, rows: np.ndarray, flywire_ids: np.ndarray) -> tuple[int, ...]:
    return tuple((flywire_ids[rows] if screen.by == "id" else rows).tolist())


def most_active(screen: Screen, neuron_index: np.ndarray, spikes: np.ndarray, flywire_ids: np.ndarray,
                count: int) -> NeuronList:
    """The `count` neurons with the most spikes (ties: lower row index first) in a run of the base experiment,
    neurons the base drives or silences excepted; fewer when fewer spiked.

    Raises
    ------
    ConfigError
        If no neuron outside the base spiked.
    """
    keep = ~np.isin(neuron_index, _in_base(screen, flywire_ids))
    rows, counts = np.asarray(neuron_index)[keep], np.asarray(spikes)[keep]
    if not rows.size:
        raise ConfigError(f"{screen.path}: most_active: no neuron outside the base experiment spiked in its run")
    order = np.lexsort((rows, -counts))[:count]
    return NeuronList(values=_as_values(screen, rows[order], flywire_ids))


def concrete_axes(screen: Screen, flywire_ids: np.ndarray,
                  ranking: tuple[np.ndarray, np.ndarray] | dict[str, tuple] | None = None,
                  ) -> dict[str, NeuronList | None]:
    """{"activate_each": ..., "silence_each": ...} as concrete lists on a connectome: "all" is every neuron the
    base neither drives nor silences (in row order); most_active takes `ranking` = (neuron_index, spikes) of a
    run of the base experiment, or {of: (neuron_index, spikes)} with "" for the base and a preset key for an
    axis ranked by a run of that preset. Also checks that every listed neuron is in the connectome.

    Raises
    ------
    ConfigError
        Unknown neurons (naming the key); a most_active axis without `ranking`.
    """
    base = _in_base(screen, flywire_ids)
    resolve_neurons(screen.readout.values, screen.by, flywire_ids, f"{screen.path} [screen].readout")
    out: dict[str, NeuronList | None] = {}
    for label in ("activate_each", "silence_each"):
        axis: NeuronList | None = getattr(screen, label)
        where = f"{screen.path} [axes].{label}"
        if axis is not None and axis.kind == ALL:
            rows = np.setdiff1d(np.arange(len(flywire_ids), dtype=np.int32), base)
            axis = NeuronList(values=_as_values(screen, rows, flywire_ids))
        elif axis is not None and axis.kind == "most_active":
            ranked = ranking.get(axis.of) if isinstance(ranking, dict) else (None if axis.of else ranking)
            if ranked is None:
                run_of = f"preset {axis.of!r}" if axis.of else "the base experiment"
                raise ConfigError(f"{where}: most_active needs a run of {run_of}")
            axis = most_active(screen, ranked[0], ranked[1], flywire_ids, axis.count)
        elif axis is not None:
            resolve_neurons(axis.values, screen.by, flywire_ids, where)
        out[label] = axis
    return out
