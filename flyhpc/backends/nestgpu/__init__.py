"""NEST GPU side of the `nestgpu` backend: the contract neuron's CUDA sources and the per-trial worker.

`flyhpc_lif.cu` is the neuron kernel built into NEST GPU inside the nestgpu image (never compiled by
the Python package itself); `worker.py` is the entry point the backend starts once per trial.
Nothing here imports nestgpu at module import time.
"""
