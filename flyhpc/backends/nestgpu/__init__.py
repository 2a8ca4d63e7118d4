"""NEST GPU side of the `nestgpu` backend: the contract neuron's CUDA sources and the per-trial worker.

`user_m1.h` / `user_m1.cu` fill NEST GPU's user-model slot with the contract neuron, whose one-step
update lives in `flyhpc_lif.cuh`; scripts/build-nestgpu.sh (run by the nestgpu image) copies the three into
NEST GPU's src/ and builds it (never compiled by the Python package itself). `trial.py` is the entry point the
backend starts once per trial.
Nothing here imports nestgpu at module import time.
"""
