"""How long a screen's experiments take, and how many go into one task so that a task lasts minutes.

A deliberately simple, conservative model in seconds on one core (constants measured on the 2-core development
machine with the native engine, docs/NOTES.md "Screens"): per task a fixed setup (interpreter, imports,
connectome, engine build); per experiment-trial an overhead outside the engine plus engine time that grows
with the drive (events per trial: the recurrent activity they cause dominates) and scales with the number of
edges; per experiment with a silence set the silenced rows zeroed and put back. `chunk_costs` picks the model a
backend asks for (`Backend.screen_costs`). Pure functions, no I/O.
Entry points: `CostModel`, `experiment_cost_s`, `chunk_costs`, `plan_chunks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from flyhpc.errors import ConfigError
from flyhpc.model import Experiment

FULL_SCALE_EDGES = 15_091_983


@dataclass(frozen=True)
class CostModel:
    """Seconds on one core at full scale (FULL_SCALE_EDGES edges; engine terms scale with the edge count).

    task_setup_s: a task's start (Python, imports, cached connectome, engine network and kernels);
    trial_overhead_s: per experiment-trial outside the engine (drive, masking, rates, writing: 0.33 ms measured);
    quiet_trial_second_s: engine seconds per simulated second with nothing driven (the per-trial bookkeeping);
    drive_event_s: engine seconds per drive event (fitted on sugar, where 4,200 events per second recruit
    ~17,000 recurrent spikes in 0.028-0.036 s; single-neuron activations recruit far less: measured 0.38 ms
    mean per 1-s activation against 2.0 ms estimated, so atlas chunks come out short rather than long);
    silence_s: per experiment with a silence set (the silenced rows zeroed and put back: 0.1 ms measured);
    max_experiments: the most experiments one task holds, whatever their time: a task keeps its plan slice and
    every experiment's rates in memory and loses them all if it fails (69,320: the largest atlas chunk measured).
    All measured 2026-12-02 (docs/NOTES.md "Screens on Slurm").
    """

    task_setup_s: float = 3.0
    trial_overhead_s: float = 0.0004
    quiet_trial_second_s: float = 0.0004
    drive_event_s: float = 8e-6
    silence_s: float = 0.001
    max_experiments: int = 100_000


def experiment_cost_s(experiment: Experiment, t_run_s: float, n_run: int, n_edges: int = FULL_SCALE_EDGES,
                      model: CostModel = CostModel()) -> float:
    """Estimated seconds of one experiment (all its trials) on one core, task setup excluded."""
    events = t_run_s * (len(experiment.activate) * experiment.rate_hz + len(experiment.activate2) * experiment.rate2_hz)
    scale = n_edges / FULL_SCALE_EDGES
    engine = n_run * (t_run_s * model.quiet_trial_second_s + events * model.drive_event_s) * scale
    silence = model.silence_s * scale if experiment.silence else 0.0
    return engine + n_run * model.trial_overhead_s + silence


CHUNK_MODELS = ("calibrated", "build-once", "whole-run")  # what `Backend.screen_costs` may answer


def chunk_costs(model: str, experiments: Sequence[Experiment], t_run_s: float, n_run: int, n_edges: int,
                run_wall_s: Callable[[float, int], float] | None) -> tuple[float, list[float]]:
    """(seconds once per chunk, seconds of each experiment) on a backend whose `screen_costs()` is `model`.

    "calibrated": `CostModel`'s task setup and `experiment_cost_s` (the native engine's; also any backend's when
    there is no time model `run_wall_s`). `run_wall_s(t_run_s, n_run)` is the profile's wall seconds of a whole
    run; its part at n_run = 0 is the start and build. "build-once" (the experiment hook: one build per chunk)
    pays that part once and the rest per experiment; "whole-run" pays a whole run per experiment.

    Raises
    ------
    ConfigError
        A model not in CHUNK_MODELS.
    """
    if model not in CHUNK_MODELS:
        raise ConfigError(f"screen cost model {model!r} (Backend.screen_costs): known: {', '.join(CHUNK_MODELS)}")
    setup = CostModel().task_setup_s
    if model == "calibrated" or run_wall_s is None:
        return setup, [experiment_cost_s(e, t_run_s, n_run, n_edges) for e in experiments]
    whole = run_wall_s(t_run_s, n_run)
    if model == "build-once":
        build = run_wall_s(t_run_s, 0)
        return build, [whole - build] * len(experiments)
    return setup, [whole] * len(experiments)


def plan_chunks(costs_s: Sequence[float], target_task_s: float = 300.0,
                task_setup_s: float = CostModel().task_setup_s,
                max_experiments: int = CostModel().max_experiments) -> list[range]:
    """Split experiments (in order) into contiguous chunks whose estimated cost fills `target_task_s` less the
    task's setup, with at most `max_experiments` each; every chunk holds at least one experiment (one costlier
    than a task alone gets its own).

    Raises
    ------
    ConfigError
        A target not above the setup time, or a cost that is negative or not finite.
    """
    budget = target_task_s - task_setup_s
    if not (math.isfinite(budget) and budget > 0):
        raise ConfigError(f"target_task_s ({target_task_s}) must exceed the task setup ({task_setup_s} s)")
    chunks: list[range] = []
    start, used = 0, 0.0
    for i, cost in enumerate(costs_s):
        if not (math.isfinite(cost) and cost >= 0):
            raise ConfigError(f"experiment {i}: cost must be a finite number of seconds >= 0, got {cost!r}")
        if i > start and (used + cost > budget or i - start >= max_experiments):
            chunks.append(range(start, i))
            start, used = i, 0.0
        used += cost
    if start < len(costs_s):
        chunks.append(range(start, len(costs_s)))
    return chunks
