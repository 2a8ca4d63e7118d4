"""The model contract's 14 scenarios (DESIGN §1a): one network, hand-made and seeded drives, the spikes they imply.

One network (`contract_spec`) holds every scenario as independent neurons, so a compiling backend builds once;
`contract_runs_of` builds, sets up and runs a backend class on the hand-made trials (`HAND_TRIALS`) and on two
seeded trials, and each function of `SCENARIOS` checks one rule on the result, raising `AssertionError` naming what
differs (`ScenarioSkipped` where a rule does not apply). The expected steps follow from DESIGN §1 / §1a and were
checked against Brian2 itself (tests/contract/test_brian2_schedule.py). Shared by the test suite
(tests/contract/test_backend_contract.py runs each scenario on every backend) and `flyhpc check`, which runs them
wherever flyhpc is installed (an image's %test). Imports no simulator: the backend class is passed in.

Neuron roles of the contract network (row index):
  0 D0, 1 D1, 2 D2, 3 D3, 4 D4, 7 D7, 8 D8: drive set 1;  5 D5, 6 D6: drive set 2 (own rate)
  9 B1 <- D0, D7 (5455 syn = 1500.125 mV each): input arriving while refractory is dropped
 10 B2 <- D0, D8 (5455 each): input arriving at the first non-refractory step is kept
 11 C  <- D2, D1 (5455 each): a delivery in the step C spikes is lost
 12 E  <- D2, D1 (90 syn = 24.75 mV each): threshold only through two summed PSPs
 13 F  <- D4 (5455): 18-step delay
 14 S  <- D0 (5455), silenced;  15 G <- S (5455): silent because S is silenced
 16 Z  no input, never spikes
 17 H  <- D0 (5455), D8 (90): an input arriving mid-refractory leaves no trace in g or v
Entry points: `contract_spec`, `hand_drive`, `contract_runs_of`, `SCENARIOS`, `run_scenarios`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from flyhpc.drive import Drive, TrialDrive, make_drive
from flyhpc.model import Experiment, Params
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable

PARAMS = Params()
CONTRACT_N = 18
BIG = 5455  # synapses; 5455 x 0.275 = 1500.125 mV: one step of integration crosses threshold
SMALL = 90  # 24.75 mV: one PSP peaks at 3.9 mV, two at 7.8 mV
CONTRACT_EDGES = [(0, 9, BIG), (7, 9, BIG), (0, 10, BIG), (8, 10, BIG), (2, 11, BIG), (1, 11, BIG),
                  (2, 12, SMALL), (1, 12, SMALL), (4, 13, BIG), (0, 14, BIG), (14, 15, BIG), (0, 17, BIG),
                  (8, 17, SMALL)]
CONTRACT_STEPS = 2000  # 0.2 s
SET1, SET2 = (0, 1, 2, 3, 4, 7, 8), (5, 6)
RATE1_HZ, RATE2_HZ = 150.0, 600.0
SILENCED = 14
NEVER_SPIKE = (14, 15, 16)
RANDOM_SEED = 11

# Hand-made trials: {trial: [(step, neuron), ...]} and the spikes the contract implies (derivations in the
# docstrings of the scenarios below).
HAND_TRIALS = {
    0: [(0, 0), (10, 0), (1, 1), (0, 2), (30, 3), (31, 3), (32, 3), (33, 3), (34, 3), (100, 4),
        (22, 7), (23, 8)],
    1: [(5, 0), (50, 3), (52, 3), (1999, 4)],
    2: [],
}
HAND_SPIKES = {  # {trial: {neuron: [steps]}}
    0: {0: [1, 11], 1: [2], 2: [1], 3: [31, 33, 35], 4: [101], 7: [23], 8: [24],
        9: [20], 10: [20, 43], 11: [20], 12: [74], 13: [120], 17: [20]},
    1: {0: [6], 3: [51, 53], 9: [25], 10: [25], 17: [25]},
    2: {},
}


class ScenarioSkipped(Exception):
    """A scenario that does not apply to this backend (the reason is the message)."""


def hand_drive(n_steps: int, trials: dict[int, list[tuple[int, int]]]) -> Drive:
    """A Drive from {trial: [(step, neuron), ...]} (sorted here by step, then neuron)."""
    out = []
    for trial, events in sorted(trials.items()):
        events = sorted(events)
        out.append(TrialDrive(trial=trial, steps=np.array([e[0] for e in events], dtype=np.int64),
                              neurons=np.array([e[1] for e in events], dtype=np.int32)))
    return Drive(n_steps=n_steps, base_seed=0, round=1, trials=tuple(out))


def spikes_of(table: SpikeTable, trial: int, neuron: int) -> list[int]:
    """Spike steps of one neuron in one trial of a SpikeTable."""
    t = table.of_trial(trial)
    return [int(s) for s in t.step[t.neuron == neuron]]


def contract_spec() -> NetworkSpec:
    """The contract network, built through connectome_from_edges + build_network (silencing applied)."""
    from flyhpc.data.connectome import connectome_from_edges
    from flyhpc.network import build_network

    ids = np.arange(1000, 1000 + CONTRACT_N, dtype=np.int64)
    pre, post, counts = zip(*CONTRACT_EDGES)
    conn = connectome_from_edges(ids, np.array(pre), np.array(post), np.array(counts),
                                 source="contract", digest="contract-v1")
    experiment = Experiment(name="contract", key="contract", activate=tuple(int(ids[k]) for k in SET1),
                            rate_hz=RATE1_HZ, activate2=tuple(int(ids[k]) for k in SET2), rate2_hz=RATE2_HZ,
                            silence=(int(ids[SILENCED]),))
    return build_network(conn, experiment, PARAMS)


def driven_spikes_from_kicks(kick_steps, n_steps: int) -> list[int]:
    """Spikes of a driven neuron without recurrent input, by the contract.

    A kick at step k lifts v from rest to 16.75 mV, so the neuron spikes at k + 1 — unless k is
    itself a spike step, where the reset wipes the kick. Spikes at or after n_steps are not seen.
    """
    spikes: list[int] = []
    for k in sorted(int(x) for x in kick_steps):
        if spikes and k == spikes[-1]:
            continue
        if k + 1 < n_steps:
            spikes.append(k + 1)
    return spikes


def contract_runs_of(cls, work_root: Path, options=None, n_threads: int = 1) -> dict:
    """Build, set up and run backend class `cls` (with `options`, else its defaults and environment) on the
    contract network: the hand trials, two seeded trials and (where `caps.deterministic`) the seeded trials
    again. Returns {"spec", "hand", "drive", "random", "repeat", "report"}; the scenarios read it."""
    spec = contract_spec()
    backend = cls(options, n_threads=n_threads, work_root=work_root)
    try:
        report = backend.build(spec, CONTRACT_STEPS)
        backend.setup()
        backend.run(hand_drive(CONTRACT_STEPS, HAND_TRIALS))
        hand = backend.spikes()
        random_drive = make_drive(spec, CONTRACT_STEPS, n_trials=2, base_seed=RANDOM_SEED, round_=1)
        backend.run(random_drive)
        random = backend.spikes()
        repeat = None
        if cls.caps.deterministic:
            backend.run(random_drive)
            repeat = backend.spikes()
    finally:
        backend.close()
    return {"spec": spec, "hand": hand, "drive": random_drive, "random": random, "repeat": repeat,
            "report": report}


def _expect(ok: bool, message: str) -> None:
    if not ok:  # not `assert`: the checks must hold under python -O too
        raise AssertionError(message)


def _expect_spikes(runs: dict, key: str, trial: int, neuron: int, want: list[int]) -> None:
    got = spikes_of(runs[key], trial, neuron)
    _expect(got == want, f"{key} trial {trial}, neuron {neuron}: spikes at {got}, the contract says {want}")


# -- the 14 scenarios ------------------------------------------------------------------------------------------
def spike_table_types_and_order(runs: dict) -> None:
    """The spike table has int32 trials, int64 steps, int32 neurons, sorted by (trial, step, neuron)."""
    table = runs["hand"]
    _expect(isinstance(table, SpikeTable), f"spikes() returned a {type(table).__name__}, not a SpikeTable")
    dtypes = (table.trial.dtype, table.step.dtype, table.neuron.dtype)
    _expect(dtypes == (np.int32, np.int64, np.int32), f"dtypes (trial, step, neuron) are {dtypes}")
    order = np.lexsort((table.neuron, table.step, table.trial))
    _expect(np.array_equal(order, np.arange(len(table))), "spikes are not sorted by (trial, step, neuron)")


def hand_trials_give_exactly_the_derived_spikes(runs: dict) -> None:
    """Every spike of every hand trial, no more, no fewer (trial 2 has no drive: no spike at all)."""
    table = runs["hand"]
    for trial, expected in HAND_SPIKES.items():
        got: dict[int, list[int]] = {}
        t = table.of_trial(trial)
        for step, neuron in zip(t.step.tolist(), t.neuron.tolist()):
            got.setdefault(neuron, []).append(step)
        _expect(got == expected, f"trial {trial}: spikes {got}, the contract says {expected}")
    extra = set(np.unique(table.trial).tolist()) - set(HAND_TRIALS)
    _expect(not extra, f"spikes in trials {sorted(extra)} that the drive does not have")


def kick_gives_spike_one_step_later(runs: dict) -> None:
    """A kick in the synapses slot of step k lifts v to 16.75 mV; the threshold fires at step k + 1."""
    _expect_spikes(runs, "hand", 0, 4, [101])   # D4 kicked at 100
    _expect_spikes(runs, "hand", 0, 2, [1])     # D2 kicked at 0
    _expect_spikes(runs, "hand", 1, 4, [])      # kicked at the last step 1999: would spike at 2000


def driven_neurons_spike_every_other_step_at_most(runs: dict) -> None:
    """Refractory 0: a kick at k+1 is wiped by the reset of the spike at k+1, the kick at k+2 fires at k+3."""
    _expect_spikes(runs, "hand", 0, 3, [31, 33, 35])   # kicks 30..34
    _expect_spikes(runs, "hand", 1, 3, [51, 53])       # kicks 50, 52: two steps apart, no refractoriness


def delay_is_18_steps(runs: dict) -> None:
    """D4 spikes at 101; g of F jumps in the synapses slot of 101 + 18 = 119; F integrates 1500.125 mV
    of g for one step at 120: u = 1500.125/3 x (a - b) = 7.4075 mV > 7 mV, so F spikes at 120."""
    _expect_spikes(runs, "hand", 0, 13, [120])


def input_while_refractory_is_dropped(runs: dict) -> None:
    """B1: D0 (spike 1) delivers at 19 -> B1 spikes at 20 and is refractory at steps 20..41 (its spike
    step included: Brian2 writes g only where not_refractory). D0's second spike (11) delivers at 29
    and D7's (23) at 41: both dropped, so B1 never spikes again."""
    _expect_spikes(runs, "hand", 0, 9, [20])
    _expect_spikes(runs, "hand", 1, 9, [25])   # D0 kicked at 5 -> spike 6 -> 6 + 19


def input_mid_refractory_leaves_no_trace(runs: dict) -> None:
    """H: D0 (spike 1) delivers 1500.125 mV at 19 -> H spikes at 20; D0's second spike (11) delivers another
    1500.125 mV at 29, mid-window (refractory 20..41); D8 (spike 24) delivers 24.75 mV at 42, the first step H
    integrates again. Dropped (Brian2): g = 24.75 mV after step 42, a lone PSP peaking at 3.9 mV, no spike.
    Kept in g (frozen or decaying through the window, as some simulators do) it would be over 1100 mV at 42 and H
    would spike at 43."""
    _expect_spikes(runs, "hand", 0, 17, [20])
    _expect_spikes(runs, "hand", 1, 17, [25])   # D0 kicked at 5 -> spike 6 -> 6 + 19; no D8 in trial 1


def refractory_window_is_22_steps(runs: dict) -> None:
    """B2: spikes at 20; D8 (spike 24) delivers at 42 = 20 + 22, the first step at which B2 integrates
    again: the input is kept, B2 integrates it in the next step and spikes at 43."""
    _expect_spikes(runs, "hand", 0, 10, [20, 43])


def delivery_in_the_spiking_step_is_lost(runs: dict) -> None:
    """C: D2 (spike 1) delivers at 19 -> C spikes at 20; D1 (spike 2) delivers at 20, in C's spiking
    step (after its threshold, before its reset): lost, so nothing is left for step 42."""
    _expect_spikes(runs, "hand", 0, 11, [20])


def threshold_reached_through_summed_psps(runs: dict) -> None:
    """E gets 24.75 mV of g at step 19 (from D2) and 24.75 mV at step 20 (from D1); from step 20 on

        u(n) = (w/3) [(a^(n-19) - b^(n-19)) + (a^(n-20) - b^(n-20))],  a = e^-0.005, b = e^-0.02.

    n = 73: 8.25 x (0.759572 - 0.332871 + 0.763379 - 0.339596) = 6.967 mV  (below 7)
    n = 74: 8.25 x (0.755784 - 0.326280 + 0.759572 - 0.332871) = 7.017 mV  (above 7): spike at 74.
    One PSP alone peaks at 3.9 mV."""
    a, b, w = np.exp(-0.1 / 20), np.exp(-0.1 / 5), 90 * 0.275
    u = lambda n: w / 3 * ((a ** (n - 19) - b ** (n - 19)) + (a ** (n - 20) - b ** (n - 20)))  # noqa: E731
    _expect(u(73) < 7.0 < u(74) and math.isclose(u(73), 6.9674, abs_tol=1e-4)
            and math.isclose(u(74), 7.0165, abs_tol=1e-4), "the derivation itself is off")
    _expect_spikes(runs, "hand", 0, 12, [74])


def silenced_neuron_and_its_targets_stay_silent(runs: dict) -> None:
    """S is silenced: no synapse into or out of it is left, so neither S nor G (fed only by S) spikes;
    without silencing S would spike at 20 (D0's spike at 1) and G at 39. Z has no input at all."""
    spec = runs["spec"]
    _expect(not np.any(spec.pre_indices == SILENCED) and not np.any(spec.indices == SILENCED),
            "the network still has synapses of the silenced neuron")
    for key in ("hand", "random"):
        table = runs[key]
        loud = sorted(set(table.neuron[np.isin(table.neuron, NEVER_SPIKE)].tolist()))
        _expect(not loud, f"{key}: neurons {loud} spiked; they must stay silent")


def seeded_trials_both_activation_sets(runs: dict) -> None:
    """make_drive trials: every driven neuron (set 1 at 150 Hz, set 2 at 600 Hz, refractory 0) spikes
    exactly as its own kicks dictate (`driven_spikes_from_kicks`); trials keep their numbers
    and differ from each other."""
    drive, table = runs["drive"], runs["random"]
    _expect([t.trial for t in drive.trials] == [0, 1], "the seeded drive should hold trials 0 and 1")
    n_events = {1: 0, 2: 0}
    for trial in drive.trials:
        for neuron in SET1 + SET2:
            kicks = trial.steps[trial.neurons == neuron]
            n_events[1 if neuron in SET1 else 2] += kicks.size
            _expect_spikes(runs, "random", trial.trial, neuron, driven_spikes_from_kicks(kicks, CONTRACT_STEPS))
    # Each set kept its own rate: 600 Hz x 0.2 s x 2 neurons x 2 trials = 480 expected events,
    # 150 Hz x 0.2 s x 7 neurons x 2 trials = 420.
    expected1 = RATE1_HZ * 0.2 * len(SET1) * 2
    expected2 = RATE2_HZ * 0.2 * len(SET2) * 2
    _expect(abs(n_events[1] - expected1) < 5 * np.sqrt(expected1), f"set 1 has {n_events[1]} events")
    _expect(abs(n_events[2] - expected2) < 5 * np.sqrt(expected2), f"set 2 has {n_events[2]} events")
    # Set-2 neurons spike closer than 22 steps apart: their refractory period really is 0.
    s5 = spikes_of(table, 0, 5)
    _expect(len(s5) > 1 and np.min(np.diff(s5)) < 22, "neuron 5 (refractory 0) never spiked < 22 steps apart")
    t1 = table.of_trial(1)
    _expect(not table.of_trial(0).equals(SpikeTable(t1.trial * 0, t1.step, t1.neuron)), "trials 0 and 1 are equal")


def same_drive_same_spikes(runs: dict) -> None:
    """The same drive run twice gives the same spikes (a backend with caps.deterministic)."""
    if runs["repeat"] is None:
        # Only a backend that declares caps.deterministic = False (one drawing its own drive) gets here;
        # every registered backend applies the shared drive and declares True, so none skips today.
        raise ScenarioSkipped("backend declares caps.deterministic = False: repeated runs may differ by design")
    _expect(runs["repeat"].equals(runs["random"]), "a second run of the same drive gave other spikes")


def contract_network_shape(runs: dict) -> None:
    """18 neurons, refractory 22 steps except the driven ones (0), 11 synapses left, weights 24.75 / 1500.125 mV."""
    spec = runs["spec"]
    _expect(spec.n_neurons == CONTRACT_N, f"{spec.n_neurons} neurons")
    expected = np.full(CONTRACT_N, 22)
    expected[list(SET1 + SET2)] = 0
    _expect(spec.refractory_steps.tolist() == expected.tolist(), "refractory steps differ")
    _expect(spec.n_edges == 11, f"{spec.n_edges} edges; 13 minus the two to and from S")
    weights = sorted(set(spec.weights_mv.tolist()))
    _expect(np.allclose(weights, [24.75, 1500.125]), f"weights {weights}")


SCENARIOS: tuple[Callable[[dict], None], ...] = (
    spike_table_types_and_order, hand_trials_give_exactly_the_derived_spikes, kick_gives_spike_one_step_later,
    driven_neurons_spike_every_other_step_at_most, delay_is_18_steps, input_while_refractory_is_dropped,
    input_mid_refractory_leaves_no_trace, refractory_window_is_22_steps, delivery_in_the_spiking_step_is_lost,
    threshold_reached_through_summed_psps,
    silenced_neuron_and_its_targets_stay_silent, seeded_trials_both_activation_sets, same_drive_same_spikes,
    contract_network_shape)


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's outcome: "passed", "failed" or "skipped", with the reason."""

    name: str
    status: str
    detail: str = ""


def run_scenarios(runs: dict) -> list[ScenarioResult]:
    """Every scenario on the result of `contract_runs_of`, in order; never raises for a failing scenario."""
    out = []
    for scenario in SCENARIOS:
        try:
            scenario(runs)
        except ScenarioSkipped as exc:
            out.append(ScenarioResult(scenario.__name__, "skipped", str(exc)))
        except AssertionError as exc:
            out.append(ScenarioResult(scenario.__name__, "failed", str(exc)))
        else:
            out.append(ScenarioResult(scenario.__name__, "passed"))
    return out
