"""Model parameters, experiments and their validation. Imports no simulator.

`Params` holds the Shiu et al. (2024) LIF constants with their derived per-step quantities;
`Experiment` names which neurons are driven (two Poisson sets, each with its own rate), which
are silenced and how (`SILENCE_MODES`); `resolve` checks an experiment against a connectome's
neuron list and returns row indices. Entry points: `Params`, `Experiment`, `SILENCE_MODES`,
`PRESETS` (the paper's sets, `flyhpc.presets`), `preset`, `make_experiment`, `validate_run`.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

import numpy as np

from flyhpc.errors import ConfigError
from flyhpc.presets import NEURON_SETS


@dataclass(frozen=True)
class Params:
    """LIF constants of the whole-brain model (units in the names).

    Sources (Shiu et al. 2024, model.py): v_0, v_rst, v_th, tau_m from Kakaria & de Bivort 2017;
    tau_s from Jürgensen et al.; t_ref from Lazar et al.; delay from Paul et al. 2015;
    w_syn is the paper's free parameter; the Poisson drive kicks v by f_poisson x w_syn.
    """

    v_0_mv: float = -52.0  # resting potential and initial v
    v_rst_mv: float = -52.0  # reset potential
    v_th_mv: float = -45.0  # threshold: spike when v > v_th (strict)
    tau_m_ms: float = 20.0  # membrane time constant
    tau_s_ms: float = 5.0  # synaptic time constant of g
    t_ref_ms: float = 2.2  # absolute refractory period (0 for driven neurons)
    delay_ms: float = 1.8  # axonal delay of every recurrent connection
    w_syn_mv: float = 0.275  # weight per synapse
    f_poisson: float = 250.0  # drive kick = f_poisson x w_syn, added to v
    dt_ms: float = 0.1  # time step

    @property
    def kick_mv(self) -> float:
        """Voltage jump of one drive event (68.75 mV with the defaults)."""
        return self.f_poisson * self.w_syn_mv

    @property
    def delay_steps(self) -> int:
        """Axonal delay in whole steps (18), as Brian2 rounds it."""
        return int(round(self.delay_ms / self.dt_ms))

    @property
    def refractory_steps(self) -> int:
        """Refractory window in steps (22): the neuron is frozen for the 21 steps after its spike."""
        return _timestep(self.t_ref_ms, self.dt_ms)

    @property
    def decay_m(self) -> float:
        """One-step membrane propagator a = exp(-dt/tau_m)."""
        return math.exp(-self.dt_ms / self.tau_m_ms)

    @property
    def decay_s(self) -> float:
        """One-step synaptic propagator b = exp(-dt/tau_s)."""
        return math.exp(-self.dt_ms / self.tau_s_ms)

    def n_steps(self, t_run_s: float) -> int:
        """Number of steps of a run of `t_run_s` seconds (1,000 for 0.1 s)."""
        return _timestep(t_run_s * 1000.0, self.dt_ms)

    def to_dict(self) -> dict:
        return asdict(self)


def _timestep(duration_ms: float, dt_ms: float) -> int:
    """Steps in a duration, with Brian2's tolerance of 1e-3 dt against rounding."""
    return int(math.floor((duration_ms + 1e-3 * dt_ms) / dt_ms))


Selector = Literal["id", "index"]
SilenceMode = Literal["both", "outgoing"]
# "both": every synapse to and from a silenced neuron is zeroed (it neither receives nor sends; the default);
# "outgoing": only its outgoing synapses (it still receives and spikes, but reaches nobody: Shiu et al.'s own).
SILENCE_MODES: tuple[str, ...] = ("both", "outgoing")


@dataclass(frozen=True)
class Experiment:
    """Which neurons are driven (two Poisson sets) and which are silenced.

    Neurons are FlyWire root ids (`by="id"`) or row indices of the Completeness CSV
    (`by="index"`). Silencing zeroes every synapse to and from a silenced neuron
    (`silence_mode="both"`) or only its outgoing ones (`"outgoing"`, the paper's). Driven
    neurons of either set have no refractory period.
    """

    name: str
    activate: tuple[int, ...]
    rate_hz: float
    activate2: tuple[int, ...] = ()
    rate2_hz: float = 0.0
    silence: tuple[int, ...] = ()
    by: Selector = "id"
    key: str = "custom"
    silence_mode: SilenceMode = "both"

    def __post_init__(self) -> None:
        for attr in ("activate", "activate2", "silence"):
            object.__setattr__(self, attr, tuple(map(int, getattr(self, attr))))
        if self.by not in ("id", "index"):
            raise ConfigError(f"experiment {self.name!r}: neurons must be selected by 'id' or 'index', not {self.by!r}")
        if self.silence_mode not in SILENCE_MODES:
            raise ConfigError(f"experiment {self.name!r}: silence_mode must be one of {', '.join(SILENCE_MODES)}, "
                              f"got {self.silence_mode!r}")
        for label, rate in (("rate", self.rate_hz), ("rate2", self.rate2_hz)):
            if not (isinstance(rate, (int, float)) and math.isfinite(rate)) or rate < 0:
                raise ConfigError(f"experiment {self.name!r}: {label} must be a finite rate >= 0 Hz, got {rate!r}")
        if not self.activate and not self.activate2:
            raise ConfigError(f"experiment {self.name!r}: no neuron to activate (give --activate IDS)")
        # the set checks only where they can find something (a screen plans 100,000s of experiments)
        for label, values in (("activate", self.activate), ("activate2", self.activate2), ("silence", self.silence)):
            if len(values) > 1 and len(set(values)) != len(values):
                dup = sorted({v for v in values if values.count(v) > 1})
                raise ConfigError(f"experiment {self.name!r}: {label} lists {_show(dup)} more than once")
        both = sorted(set(self.activate) & set(self.activate2)) if self.activate2 else ()
        if both:
            raise ConfigError(f"experiment {self.name!r}: {_show(both)} in both activation sets")
        clash = sorted((set(self.activate) | set(self.activate2)) & set(self.silence)) if self.silence else ()
        if clash:
            raise ConfigError(f"experiment {self.name!r}: {_show(clash)} both driven and silenced")
        for label, values, rate in (("rate", self.activate, self.rate_hz), ("rate2", self.activate2, self.rate2_hz)):
            if values and rate == 0:  # drives nothing, yet would take the set's refractory period away
                raise ConfigError(f"experiment {self.name!r}: {label} is 0 Hz but {len(values)} neuron(s) are to be "
                                  f"activated at it; give a rate > 0 Hz")

    def digest(self) -> str:
        """Stable hex digest of what the experiment does (not its display name).

        The silence mode counts only where it changes the network (a silence set and a mode other than
        "both"), so every experiment of the default mode keeps the digest (and drive, and task key) it had
        before modes existed.
        """
        # the bytes of json.dumps(body, sort_keys=True) for body {"activate": [...], "rate_hz": float, "activate2":
        # [...], "rate2_hz": float, "silence": [...], "by": str (+ "silence_mode")}, written out (a third of
        # json.dumps's time: screens digest every experiment; tests/unit/test_model.py compares the two)
        mode = f', "silence_mode": "{self.silence_mode}"' if self.silence and self.silence_mode != "both" else ""
        body = (f'{{"activate": [{", ".join(map(str, self.activate))}], '
                f'"activate2": [{", ".join(map(str, self.activate2))}], "by": "{self.by}", '
                f'"rate2_hz": {float(self.rate2_hz)!r}, "rate_hz": {float(self.rate_hz)!r}, '
                f'"silence": [{", ".join(map(str, self.silence))}]{mode}}}')
        return hashlib.sha256(body.encode()).hexdigest()

    def resolve(self, flywire_ids: np.ndarray) -> "ResolvedExperiment":
        """Map the experiment's neurons to row indices of `flywire_ids`.

        Raises
        ------
        ConfigError
            Naming every unknown id (or out-of-range index).
        """
        n = len(flywire_ids)

        def to_index(values: tuple[int, ...], label: str) -> np.ndarray:
            if not values:
                return np.zeros(0, np.int32)
            arr = np.asarray(values, dtype=np.int64)
            if self.by == "index":
                bad = arr[(arr < 0) | (arr >= n)]
                if bad.size:
                    raise ConfigError(
                        f"experiment {self.name!r}: {label} index {_show(bad.tolist())} out of range 0..{n - 1}")
                return arr.astype(np.int32)
            pos = np.searchsorted(flywire_ids, arr)
            pos_c = np.minimum(pos, n - 1)
            ok = (pos < n) & (flywire_ids[pos_c] == arr)
            if not ok.all():
                raise ConfigError(
                    f"experiment {self.name!r}: {label} FlyWire id {_show(arr[~ok].tolist())} "
                    f"not in the connectome's {n} neurons")
            return pos_c.astype(np.int32)

        return ResolvedExperiment(
            experiment=self,
            drive_sets=(
                DriveSet(to_index(self.activate, "activate"), float(self.rate_hz)),
                DriveSet(to_index(self.activate2, "activate2"), float(self.rate2_hz)),
            ),
            silenced=np.sort(to_index(self.silence, "silence")),
        )


@dataclass(frozen=True)
class DriveSet:
    """Row indices of one Poisson-driven set and its rate."""

    indices: np.ndarray
    rate_hz: float


@dataclass(frozen=True)
class ResolvedExperiment:
    """An experiment with its neurons mapped to connectome row indices."""

    experiment: Experiment
    drive_sets: tuple[DriveSet, DriveSet]
    silenced: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @functools.cached_property  # read by the lifecycle, the backend's hook and the screen runner
    def driven(self) -> np.ndarray:
        """Every driven row index (both sets), sorted."""
        return np.sort(np.concatenate([s.indices for s in self.drive_sets]))


def _show(values: Sequence[int], limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in list(values)[:limit])
    more = len(values) - limit
    return shown + (f" (+{more} more)" if more > 0 else "")


SUGAR_IDS = NEURON_SETS["sugar"].ids

# The paper's activation sets (flyhpc.presets: ids, sources, rates), sugar and p9 first: the synthetic
# generator seeds its pathways from those two alone (flyhpc.data.synthetic.SEEDED_PRESETS).
PRESETS: dict[str, Experiment] = {
    key: Experiment(name=s.name, key=key, activate=s.ids, rate_hz=s.rate_hz) for key, s in NEURON_SETS.items()
}


def preset(key: str) -> Experiment:
    """The named experiment preset; raises ConfigError listing the known ones."""
    try:
        return PRESETS[key]
    except KeyError:
        raise ConfigError(f"unknown experiment {key!r}; known: {', '.join(sorted(PRESETS))}") from None


def make_experiment(experiment: str | None = None, activate: Sequence[int] = (), rate_hz: float | None = None,
                    activate2: Sequence[int] = (), rate2_hz: float = 0.0, silence: Sequence[int] = (),
                    by: Selector = "id", silence_mode: SilenceMode = "both") -> Experiment:
    """The experiment of `flyhpc run`'s flags and `flyhpc.run`'s arguments: a preset (its rate replaced by
    `rate_hz` when given, set 2 and silencing added) or custom neurons at `rate_hz`.

    Raises
    ------
    ConfigError
        Both or neither of a preset and neurons to activate; neurons without a rate; an unknown preset; and
        everything `Experiment` refuses.
    """
    if experiment and len(activate):
        raise ConfigError("give either an experiment preset (--experiment, experiment=) or neurons to activate "
                          "(--activate, activate=), not both")
    if experiment:
        exp = preset(experiment)
        if len(activate2) or len(silence) or rate_hz is not None:
            return Experiment(name=exp.name, key=exp.key, activate=exp.activate,
                              rate_hz=exp.rate_hz if rate_hz is None else rate_hz, activate2=tuple(activate2),
                              rate2_hz=rate2_hz, silence=tuple(silence), by=exp.by, silence_mode=silence_mode)
        return exp
    if not len(activate):
        raise ConfigError(f"give an experiment preset ({'|'.join(PRESETS)}) or neurons to activate with a rate")
    if rate_hz is None:
        raise ConfigError("neurons to activate need a rate in Hz (--rate HZ, rate_hz=)")
    return Experiment(name="custom", key="custom", activate=tuple(activate), rate_hz=rate_hz,
                      activate2=tuple(activate2), rate2_hz=rate2_hz, silence=tuple(silence), by=by,
                      silence_mode=silence_mode)


MAX_T_RUN_S = 10_000.0


def validate_run(t_run_s: float, n_run: int, params: Params = Params()) -> int:
    """Check a run's duration and trial count; return the number of steps.

    Raises
    ------
    ConfigError
        If t_run <= 0, not a whole number of steps, above the maximum, or n_run < 1.
    """
    if not isinstance(t_run_s, (int, float)) or not math.isfinite(t_run_s) or t_run_s <= 0:
        raise ConfigError(f"t_run must be > 0 s, got {t_run_s!r}")
    if t_run_s > MAX_T_RUN_S:
        raise ConfigError(f"t_run must be <= {MAX_T_RUN_S:g} s, got {t_run_s!r}")
    steps = params.n_steps(t_run_s)
    if abs(steps * params.dt_ms - t_run_s * 1000.0) > 1e-6 * params.dt_ms * max(1, steps):
        raise ConfigError(f"t_run {t_run_s!r} s is not a whole number of {params.dt_ms} ms steps")
    if isinstance(n_run, bool) or not isinstance(n_run, (int, np.integer)) or n_run < 1:
        raise ConfigError(f"n_run must be an integer >= 1, got {n_run!r}")
    return steps
