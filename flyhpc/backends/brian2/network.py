"""Brian2-family network construction from a `NetworkSpec`, shared by brian2cpp/brian2cuda/brian2genn.

Owns the Brian2 objects of the model (equations, per-neuron refractoriness, recurrent synapses, the
drive as a per-trial bit table read by stateless driver neurons with zero-delay 'v += kick'
synapses, the spike monitor) and the translation of a `TrialDrive` into that bit table. It must
not pick a device, set device preferences, compile or run: callers do that. Entry points: `BrianNetwork`,
`build_brian_network`, `drive_table`, `drive_run_args`, `spike_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flyhpc.drive import TrialDrive
from flyhpc.errors import ConfigError
from flyhpc.network import NetworkSpec

# Explicit names keep the generated code identical from one process to the next, so a
# content-addressed build directory can be reused (Brian2 numbers unnamed objects per process).
NAMES = {
    "clock": "flyhpc_clock",
    "neurons": "flyhpc_neurons",
    "synapses": "flyhpc_synapses",
    "drive": "flyhpc_drivers",
    "bits": "flyhpc_drive_bits",
    "kicks": "flyhpc_kicks",
    "monitor": "flyhpc_spikes",
    "network": "flyhpc_network",
}

EQUATIONS = """
dv/dt = (v_0 - v + g) / tau_m : volt (unless refractory)
dg/dt = -g / tau_s : volt (unless refractory)
rfc : second (constant)
"""

# Drive events travel as a bit table: one row per step, one bit per driven neuron, BITS_PER_COLUMN
# bits per float64 column (exact as integers below 2**53). Brian2 standalone can replace a
# TimedArray's values per run (run_args) but not a SpikeGeneratorGroup's read-only, fixed-size
# arrays; 1e6 steps x 21 neurons is then an 8 MB file per trial instead of 168 MB of 0/1 floats.
BITS_PER_COLUMN = 32
DRIVER_THRESHOLD = "(floor(drive_bits(t, i // {B}) / 2.0**(i % {B})) % 2) > 0.5"

@dataclass
class BrianNetwork:
    """The Brian2 objects of one simulated network (valid on the device that was active at creation)."""

    clock: object
    neurons: object
    synapses: object
    drivers: object
    drive_bits: object
    kicks: object
    monitor: object
    network: object
    n_neurons: int
    driven: np.ndarray
    n_steps: int
    dt_ms: float


def build_brian_network(spec: NetworkSpec, n_steps: int, trial: TrialDrive | None = None,
                        record: bool = True, default_clock: bool = False,
                        drive_source: str = "table") -> BrianNetwork:
    """Construct the model's Brian2 objects on the active device (no run, no build).

    Parameters
    ----------
    spec : NetworkSpec
        The network: CSR weights in mV (silencing applied), per-neuron refractory steps.
    n_steps : int
        Steps the network will be run for (rows of the drive table).
    trial : TrialDrive, optional
        Drive events to load into the drive table now (runtime mode); without it the table is
        empty and each standalone run passes its events as run arguments (`drive_run_args`).
    record : bool
        Attach a SpikeMonitor to the neurons.
    default_clock : bool
        Run every object on Brian2's `defaultclock` (its dt set to the model's) instead of a clock of
        our own: Brian2CUDA's synapse template refers to `defaultclock` whatever clock the synapses use.
    drive_source : str
        "table": driver neurons read the bit table (replaceable per standalone run); "generator": a
        SpikeGeneratorGroup holding `trial`'s events (for devices without TimedArray, Brian2GeNN).

    Returns
    -------
    BrianNetwork

    Raises
    ------
    ConfigError
        If a drive event targets a neuron that is not driven or a step outside the run.
    """
    import brian2 as b2

    p = spec.params
    n = spec.n_neurons
    if default_clock:
        clock = b2.defaultclock
        clock.dt = p.dt_ms * b2.ms
    else:
        clock = b2.Clock(dt=p.dt_ms * b2.ms, name=NAMES["clock"])
    namespace = {"v_0": p.v_0_mv * b2.mV, "tau_m": p.tau_m_ms * b2.ms, "tau_s": p.tau_s_ms * b2.ms,
                 "v_th": p.v_th_mv * b2.mV, "v_rst": p.v_rst_mv * b2.mV, "kick": p.kick_mv * b2.mV}
    neurons = b2.NeuronGroup(n, EQUATIONS, threshold="v > v_th", reset="v = v_rst; g = 0*mV",
                             refractory="rfc", method="linear", clock=clock, namespace=namespace,
                             name=NAMES["neurons"])
    neurons.v = p.v_0_mv * b2.mV
    neurons.g = 0 * b2.mV
    neurons.rfc = np.asarray(spec.refractory_steps, dtype=np.float64) * p.dt_ms * b2.ms

    objects = [neurons]
    synapses = None
    if spec.n_edges:  # Brian2 refuses a Synapses object without synapses
        synapses = b2.Synapses(neurons, neurons, "w : volt (constant)", on_pre="g += w",
                               delay=p.delay_ms * b2.ms, clock=clock, namespace=namespace,
                               name=NAMES["synapses"])
        synapses.connect(i=spec.pre_indices, j=np.asarray(spec.indices, dtype=np.int32))
        synapses.w = np.asarray(spec.weights_mv, dtype=np.float64) * b2.mV
        objects.append(synapses)

    # Driver k (a NeuronGroup without state) fires at the steps of its bit in `drive_bits` and kicks
    # neuron driven[k] in the synapses slot of the same step (zero delay), like Brian2's PoissonInput.
    driven = np.unique(np.concatenate([s.indices for s in spec.drive_sets]).astype(np.int32))
    drivers = kicks = bits = None
    if drive_source not in ("table", "generator"):
        raise ConfigError(f"drive_source must be 'table' or 'generator', got {drive_source!r}")
    if driven.size and drive_source == "generator":
        drive_table(trial, driven, n_steps)  # validates the events (driven neurons, steps in the run)
        steps = np.asarray(trial.steps if trial is not None else [], np.int64)
        slots = np.searchsorted(driven, np.asarray(trial.neurons if trial is not None else [], np.int32))
        drivers = b2.SpikeGeneratorGroup(driven.size, slots.astype(np.int32), steps * p.dt_ms * b2.ms,
                                         clock=clock, name=NAMES["drive"])
    elif driven.size:
        bits = b2.TimedArray(drive_table(trial, driven, n_steps), dt=p.dt_ms * b2.ms, name=NAMES["bits"])
        drivers = b2.NeuronGroup(driven.size, "", threshold=DRIVER_THRESHOLD.format(B=BITS_PER_COLUMN),
                                 reset="", clock=clock, namespace={"drive_bits": bits}, name=NAMES["drive"])
    if driven.size:
        kicks = b2.Synapses(drivers, neurons, on_pre="v += kick", delay=0 * b2.ms, clock=clock,
                            namespace=namespace, name=NAMES["kicks"])
        kicks.connect(i=np.arange(driven.size, dtype=np.int32), j=driven)
        objects += [drivers, kicks]
    monitor = None
    if record:
        monitor = b2.SpikeMonitor(neurons, name=NAMES["monitor"])
        # SpikeMonitor hands its recorded variables ("i", "t") to the code template in the iteration order
        # of a set of strings, which follows the process's hash seed; Brian2CUDA's template emits code in
        # that order, so each process generated different CUDA and recompiled the cached build. Sorted:
        # the same code in every process.
        kwds = getattr(monitor, "template_kwds", None)
        if isinstance(kwds, dict) and isinstance(kwds.get("record_variables"), dict):
            kwds["record_variables"] = dict(sorted(kwds["record_variables"].items()))
        objects.append(monitor)
    network = b2.Network(*objects, name=NAMES["network"])
    return BrianNetwork(clock=clock, neurons=neurons, synapses=synapses, drivers=drivers, drive_bits=bits,
                        kicks=kicks, monitor=monitor, network=network, n_neurons=n, driven=driven,
                        n_steps=int(n_steps), dt_ms=p.dt_ms)


def drive_table(trial: TrialDrive | None, driven: np.ndarray, n_steps: int) -> np.ndarray:
    """The (n_steps, n_columns) float64 bit table of a trial's events for drivers of `driven`.

    Bit k % BITS_PER_COLUMN of column k // BITS_PER_COLUMN in row s is set when neuron driven[k]
    is kicked at step s.

    Raises
    ------
    ConfigError
        If an event targets a neuron that is not driven, lies outside 0..n_steps-1, or repeats
        a (step, neuron) pair.
    """
    n_cols = max(1, -(-int(driven.size) // BITS_PER_COLUMN))
    table = np.zeros((int(n_steps), n_cols), dtype=np.uint64)
    if trial is not None and trial.n_events:
        steps = np.asarray(trial.steps, np.int64)
        neurons = np.asarray(trial.neurons, np.int64)
        slot = np.searchsorted(driven, neurons)
        slot_c = np.minimum(slot, max(driven.size - 1, 0))
        bad = (slot >= driven.size) | (driven[slot_c] != neurons) if driven.size else np.ones(neurons.shape, bool)
        if bad.any():
            raise ConfigError(f"drive of trial {trial.trial} kicks neuron {int(neurons[bad][0])}, which is "
                              f"not in the network's drive sets ({driven.size} driven neurons)")
        out = (steps < 0) | (steps >= n_steps)
        if out.any():
            raise ConfigError(f"drive of trial {trial.trial} has an event at step {int(steps[out][0])}, "
                              f"outside 0..{n_steps - 1}")
        pair = steps * max(driven.size, 1) + slot
        if np.unique(pair).size != pair.size:
            raise ConfigError(f"drive of trial {trial.trial} kicks one neuron twice in one step")
        bit = np.left_shift(np.uint64(1), (slot % BITS_PER_COLUMN).astype(np.uint64))
        np.bitwise_or.at(table, (steps, slot // BITS_PER_COLUMN), bit)
    return table.astype(np.float64)


def drive_run_args(net: BrianNetwork, trial: TrialDrive) -> dict:
    """Standalone `run_args` that load `trial`'s events into the drive table (empty without drivers)."""
    if net.drive_bits is None:
        if trial.n_events:
            raise ConfigError(f"drive of trial {trial.trial} has {trial.n_events} events but the network "
                              "has no driven neuron")
        return {}
    return {net.drive_bits: drive_table(trial, net.driven, net.n_steps)}


def spike_steps(net: BrianNetwork) -> tuple[np.ndarray, np.ndarray]:
    """(steps int64, neurons int32) recorded by the monitor, steps = round(t / dt); copies, not views.

    Brian2 >= 2.10 keeps runtime monitor arrays in C++ dynamic arrays whose numpy views do not keep the
    memory alive: a view read after the network is freed (or the monitor grows) holds garbage.
    """
    t_s = np.array(net.monitor.t_[:], dtype=np.float64)
    steps = np.rint(t_s / (net.dt_ms * 1e-3)).astype(np.int64)
    return steps, np.array(net.monitor.i[:], dtype=np.int32)
