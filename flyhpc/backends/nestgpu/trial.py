"""One NEST GPU trial in its own process: `python -m flyhpc.backends.nestgpu.trial REQUEST.json`.

Reads the request written by `nestgpu_backend` (network .npz, this trial's drive .npz, seed,
retrieval chunks), builds the network from our contract neuron, registered in NEST GPU as `user_m1`
(nestgpu/user_m1.cu; port 0 adds to g, port 1 adds the drive kick to v), simulates the trial in one call
with spike times moved off the device every chunk, writes the spikes .npz and prints exactly one JSON line.
Written against NEST GPU's Python API and source (master d3be46f): user_m1 is created with its 2 ports and the
weights reach NEST GPU as a ctypes buffer this process owns until Connect returns (tests run it against a stand-in
of the module, tests/support/nestgpu_standin, that enforces both and NEST GPU's refusals, and records the spikes
our neuron emits in NEST GPU's step order); NOT RUN ON A GPU HERE.
"""

from __future__ import annotations

import ctypes
import json
import sys
import time

import numpy as np

NEURON_MODEL = "user_m1"  # NEST GPU's user-model slot, filled with nestgpu/user_m1.{h,cu} in the image
# Receptor ports of user_m1 (0 -> g, 1 -> v; user_m1.h `user_m1_n_port`). NEST GPU sizes a group's input buffer
# from the n_ports given to Create (default 1; neuron_models.cu sets it for built-in models only), so Create
# must be told: with 1, every port-1 delivery and the per-step clear would write past the buffer.
N_PORTS = 2
# NEST GPU step m is contract step m - 1 (user_m1.cu explains why): one lead-in step first, and a spike of
# contract step n is recorded at time (n + RECORD_OFFSET_STEPS) * dt.
LEAD_IN_STEPS = 1
RECORD_OFFSET_STEPS = 2
MAX_REC_SPIKE_TIMES = 4000  # NEST GPU keeps at most this minus one spike times per neuron on the device


def _result(trial: int, status: str, **fields) -> None:
    print(json.dumps({"trial": trial, "status": status, **fields}, sort_keys=True), flush=True)


def simulate(request: dict) -> dict:
    """Build and simulate one trial with NEST GPU; write its spikes; return the result fields."""
    import nestgpu as ngpu

    t0 = time.perf_counter()
    net = np.load(request["network_file"])
    drv = np.load(request["drive_file"])
    v_0, v_rst, v_th, tau_m, tau_s, dt_ms, delay_steps, kick = (float(x) for x in net["params"])
    n = int(net["indptr"].shape[0] - 1)
    ngpu.SetRandomSeed(int(request["seed"]))
    ngpu.SetTimeResolution(dt_ms)
    neurons = ngpu.Create(NEURON_MODEL, n, N_PORTS)
    i0 = neurons.i0  # node ids of neuron k: i0 + k (node lists below are absolute ids)
    ngpu.SetStatus(neurons, {"V_0": v_0, "V_rst": v_rst, "V_th": v_th, "tau_m": tau_m, "tau_s": tau_s,
                             "V_m": v_0, "g": 0.0})
    refractory = net["refractory_steps"].astype(np.int64)
    for r in np.unique(refractory):
        ngpu.SetStatus([i0 + int(i) for i in np.flatnonzero(refractory == r)], {"ref_steps": float(r)})
    pre = np.repeat(np.arange(n), np.diff(net["indptr"]))
    if pre.size:  # recurrent synapses: port 0 (g), delay D steps, one weight per connection
        # NEST GPU keeps only a pointer to the weights and reads it during the connect; its wrapper would copy a
        # list into a ctypes array that dies before that read. So the weights are a ctypes view of a float32 array
        # that this frame owns until Connect has returned.
        weights32 = np.ascontiguousarray(net["weights_mv"], dtype=np.float32)
        weights = (ctypes.c_float * weights32.size).from_buffer(weights32)
        ngpu.Connect((pre + i0).tolist(), (net["indices"].astype(np.int64) + i0).tolist(), {"rule": "one_to_one"},
                     {"weight_array": weights, "delay": delay_steps * dt_ms, "receptor": 0})
        del weights, weights32
    driven = np.unique(drv["neurons"])
    if driven.size:  # drive: one spike_generator per driven neuron, port 1 (v), delay 1 step
        gens = ngpu.Create("spike_generator", int(driven.size))
        for k, idx in enumerate(driven):
            # An event of contract step k, given as time k*dt, is emitted in NEST GPU step k (contract k - 1)
            # and feeds contract step k + 1, as the contract's kick at step k does. NEST GPU refuses event steps
            # that are not strictly increasing (spike_generator.cu SetSpikes): events of one step are one spike
            # whose height is their count (each adds height x kick to v).
            steps, counts = np.unique(drv["steps"][drv["neurons"] == idx], return_counts=True)
            ngpu.SetStatus(gens[k:k + 1], {"spike_times": (steps * dt_ms).tolist(),
                                           "spike_heights": counts.astype(float).tolist()})
        ngpu.Connect(gens, [i0 + int(i) for i in driven], {"rule": "one_to_one"},
                     {"weight": kick, "delay": dt_ms, "receptor": 1})
    # One Simulate call for the whole trial: NEST GPU's spike generators compare their event steps with the
    # step count of the current Simulate call, so a second call would shift the drive. Retrieval is still
    # chunked: every chunk_steps steps NEST GPU moves the recorded spike times from its per-neuron device
    # buffer (at most 3,999 events) to host memory, and a chunk never holds more than that (retrieval_chunks).
    n_steps = sum(length for _, length in request["chunks"])
    chunk_steps = max(length for _, length in request["chunks"])
    ngpu.ActivateRecSpikeTimes(neurons, MAX_REC_SPIKE_TIMES)
    ngpu.SetRecSpikeTimesStep(neurons, chunk_steps)
    t1 = time.perf_counter()
    ngpu.Simulate((LEAD_IN_STEPS + n_steps) * dt_ms)  # the lead-in step: no input reaches a neuron yet
    sim_s = time.perf_counter() - t1
    steps_out, neurons_out = [], []
    # GetRecSpikeTimes: per neuron of the group, its recorded times in ms (float32 values; base_neuron.cu)
    for idx, times in enumerate(ngpu.GetRecSpikeTimes(neurons)):
        if len(times):
            steps_out.append(np.rint(np.asarray(times, np.float64) / dt_ms).astype(np.int64) - RECORD_OFFSET_STEPS)
            neurons_out.append(np.full(len(times), idx, np.int32))
    steps_all = np.concatenate(steps_out) if steps_out else np.zeros(0, np.int64)
    neurons_all = np.concatenate(neurons_out) if neurons_out else np.zeros(0, np.int32)
    pairs = np.unique(np.stack([steps_all, neurons_all.astype(np.int64)], 1), axis=0)  # sorted by step
    np.savez(request["spikes_file"], steps=pairs[:, 0], neurons=pairs[:, 1].astype(np.int32))
    return {"network_creation_time": t1 - t0, "simulation_time": sim_s, "n_spikes": int(len(pairs)),
            "recording_chunks": len(request["chunks"]), "chunk_steps": chunk_steps}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m flyhpc.backends.nestgpu.trial REQUEST.json", file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        request = json.load(fh)
    trial = int(request["trial"])
    try:
        fields = simulate(request)
    except Exception as exc:  # reported to the parent, which retries
        _result(trial, "error", error=f"{type(exc).__name__}: {exc}")
        return 1
    _result(trial, "success", **fields)
    return 0


if __name__ == "__main__":
    sys.exit(main())
