"""Compiled CPU engines of the model contract (DESIGN §1): an exact lazy event-driven one and a clock-driven one.

Both engines keep each neuron's state as an *anchor* (the step after which it holds, u = v - v_0, g)
and evaluate the exact linear propagator from that anchor with shared tables of propagator powers,
so they produce bit-identical states and spikes. No backend logic, files or timing here.
Entry points: `make_tables`, `EngineNetwork`, `run_trials` (flyhpc.backends.native.trials), `warm_up`.
"""

from flyhpc.backends.native.trials import EngineNetwork, TrialResult, run_trials, warm_up
from flyhpc.backends.native.tables import Tables, make_tables

__all__ = ["EngineNetwork", "Tables", "TrialResult", "make_tables", "run_trials", "warm_up"]
