"""flyhpc: the whole-brain LIF model of the adult fruit fly on six simulators and on Slurm.

The package is layered one way: cli -> tasks -> worker -> backends -> spikes -> bundle -> compare.
`model`, `connectome`, `drive` and `network` describe the simulation without importing any simulator.
"""

__version__ = "0.1.0"
