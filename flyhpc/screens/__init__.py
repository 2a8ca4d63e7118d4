"""Screens: many in-silico experiments declared in one file and run in chunks for throughput.

A screen file (`jobs/screens/<name>.toml`, `spec`) holds a base experiment and axes whose product is the list of
experiments (`expand`, each with a stable key and a name); a chunk of them runs in one process on one loaded
connectome and one engine network (`engine`, `chunk`), and writes per-neuron rates, a readout table and a summary
(`results`); `cost` sizes chunks so a task lasts minutes. Knows nothing about Slurm.
Entry points: `load_screen`, `known_screens`, `plan_experiments`, `run_chunk`, `experiment_cost_s`, `plan_chunks`.
"""

from flyhpc.screens.chunk import ChunkOutcome, plan_experiments, run_chunk
from flyhpc.screens.cost import CostModel, experiment_cost_s, plan_chunks
from flyhpc.screens.expand import ScreenExperiment
from flyhpc.screens.spec import NeuronList, Screen, known_screens, load_screen

__all__ = ["ChunkOutcome", "CostModel", "NeuronList", "Screen", "ScreenExperiment", "experiment_cost_s",
           "known_screens", "load_screen", "plan_chunks", "plan_experiments", "run_chunk"]
