"""STAND-IN engine (tests only) behind tests/support/nestgpu_standin/nestgpu.py's Simulate: NOT NEST GPU.

It steps the network the stand-in recorded the way NEST GPU's source (nest/nest-gpu d3be46f) reads, and runs
flyhpc's own neuron model for the user_m1 nodes (user_m1_host.cpp: user_m1_Update's body around flyhpc_lif.cuh's
lif_step, compiled here by g++), so that the spikes the worker reads back are the spikes the model emits. Per step
it_ of a Simulate call (nestgpu.cu SimulationStep), at absolute index T = t0/dt + it_ + 1 and time t0 + dt x (it_+1)
(double, with dt the float time resolution):
1. a spike emitted in step T_e along a connection of delay d (stored as round(d/dt) - 1, connect.cu) is sent in step
   T_e + d (SpikeBufferUpdate, before the updates);
2. each node group updates: user_m1 as above; a spike_generator emits its next event when that event's step index
   round(t/dt) equals it_, which restarts at 0 with every Simulate call (spike_generator.cu); each spike of a node
   whose group records spike times is recorded at the step's time as a float, at most max_n - 1 per neuron between
   two bufferings (spike_buffer.cu PushSpike; NEST GPU prints and drops the rest, the stand-in raises);
3. the spikes sent in 1. add float(height x weight) in double per target port, and each port variable (in_g, in_v)
   becomes float(its value + that sum) (get_spike.cu), read by the next update;
4. recorded times move to the host buffer when T % n == n - 1 (n from SetRecSpikeTimesStep; nestgpu.cu).
Entry point: `Engine` (calibrates on construction, as NEST GPU does in its first Simulate).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE.parents[1].parent / "flyhpc" / "backends" / "nestgpu"
HOST_SOURCE = HERE / "user_m1_host.cpp"


class StandInError(RuntimeError):
    """A call the real NEST GPU would accept but that corrupts memory, reads freed memory or loses data there."""


def _round(x):
    """C's round(): halves away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def user_m1_defaults() -> dict[str, float]:
    """The values user_m1::Init sets (user_m1.cu SetScalParam / SetScalVar), by name."""
    text = (MODEL_DIR / "user_m1.cu").read_text()
    consts = {m[1]: float(m[2].rstrip("f")) for m in re.finditer(r"static const float (\w+) = ([-0-9.eE+f]+);", text)}
    calls = re.finditer(r'SetScal(?:Param|Var)\(0, n_node, "(\w+)", ([-\w.]+)\);', text)
    return {m[1]: consts[m[2]] if m[2] in consts else float(m[2]) for m in calls}


def _host_library() -> ctypes.CDLL:
    """user_m1_host.cpp compiled (once per source version) into a temporary folder of this user."""
    source = HOST_SOURCE.read_bytes() + (MODEL_DIR / "flyhpc_lif.cuh").read_bytes()
    lib = Path(tempfile.gettempdir()) / f"flyhpc-nestgpu-standin-{os.getuid()}" / (
        f"user_m1_host_{hashlib.sha256(source).hexdigest()[:16]}.so")
    if not lib.is_file():
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_name(f".{lib.name}.{os.getpid()}.tmp")
        # -ffp-contract=off: no fused multiply-adds, so the float arithmetic is what the source says
        subprocess.run([os.environ.get("CXX", "g++"), "-O2", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC",
                        "-I", str(MODEL_DIR), "-o", str(tmp), str(HOST_SOURCE)], check=True, capture_output=True)
        os.replace(tmp, lib)
    dll = ctypes.CDLL(str(lib))
    f32 = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
    dll.user_m1_update.argtypes = [ctypes.c_int, ctypes.c_longlong] + [f32] * 12 + [
        np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")]
    dll.user_m1_update.restype = None
    return dll


class _UserM1:
    """One user_m1 group: its float variables and parameters, one array each."""

    VARS = ("V_m", "g", "in_g", "in_v", "last_spike")
    PARAMS = ("A", "B", "Coef", "V_0", "V_rst", "V_th", "ref_steps")

    def __init__(self, group: dict, status: dict, dt32: np.float32):
        defaults = user_m1_defaults()
        nodes = range(group["i0"], group["i0"] + group["n"])
        self.i0, self.n = group["i0"], group["n"]
        self.a = {name: np.array([status.get(k, {}).get(name, defaults[name]) for k in nodes], np.float32)
                  for name in self.VARS + self.PARAMS + ("tau_m", "tau_s")}
        # user_m1_Calibrate: the propagator in double from the float time resolution and time constants, stored float
        h, tau_m, tau_s = float(dt32), self.a["tau_m"].astype(np.float64), self.a["tau_s"].astype(np.float64)
        self.a["A"] = np.exp(-h / tau_m).astype(np.float32)
        self.a["B"] = np.exp(-h / tau_s).astype(np.float32)
        self.a["Coef"] = (tau_s / (tau_s - tau_m)).astype(np.float32)
        self.spiked = np.zeros(self.n, np.int32)

    def update(self, dll, time_idx: int) -> np.ndarray:
        dll.user_m1_update(self.n, time_idx, *(self.a[k] for k in self.VARS + self.PARAMS), self.spiked)
        return self.i0 + np.flatnonzero(self.spiked)

    def add_input(self, port_sums: np.ndarray) -> None:
        """get_spike.cu GetSpikes: port variable = float(double(port variable) + double sum of the port)."""
        for port, var in enumerate(("in_g", "in_v")):
            self.a[var] = (self.a[var].astype(np.float64) + port_sums[port, self.i0:self.i0 + self.n]).astype(np.float32)


class _Generator:
    """One spike_generator node: its event step indices and heights, checked as spike_generator::SetSpikes does."""

    def __init__(self, node: int, status: dict, dt32: np.float32):
        times = np.asarray(status.get("spike_times", []), np.float32)
        heights = np.asarray(status.get("spike_heights", []), np.float32)
        if times.size and heights.size == 0:
            heights = np.ones(times.size, np.float32)
        if times.size and heights.size != times.size:
            raise ValueError("spike time array and spike height array must have the same size in spike generator")
        self.idx = _round((times - np.float32(0.0)) / dt32).astype(np.int64)  # float arithmetic, then round
        if np.any(np.diff(self.idx) <= 0):
            raise ValueError("Spike times must be ordered, and the difference between\nconsecutive spikes must be >= "
                             "the time resolution")
        self.node, self.heights, self.next = node, heights, 0


class Engine:
    """The stand-in's network, calibrated from the stand-in's STATE, stepped by `simulate`."""

    def __init__(self, state: dict):
        self.state, self.dll = state, _host_library()
        self.dt32 = np.float32(state["time_resolution"])
        self.neurons, self.generators = [], []
        for group in state["groups"]:
            if group["model"] == "user_m1":
                self.neurons.append(_UserM1(group, state["status"], self.dt32))
            else:
                self.generators += [_Generator(k, state["status"].get(k, {}), self.dt32)
                                    for k in range(group["i0"], group["i0"] + group["n"])]
        conns = state["connections"]
        cat = lambda key, dtype: np.concatenate([c[key] for c in conns]).astype(dtype) if conns else np.zeros(0, dtype)
        src, tgt, w, delay = cat("source", np.int64), cat("target", np.int64), cat("weight", np.float32), cat(
            "delay", np.float32)
        port = np.concatenate([np.full(c["source"].size, c["port"]) for c in conns]) if conns else np.zeros(0, int)
        order = np.argsort(src, kind="stable")
        self.tgt, self.port, self.w = tgt[order], port[order], w[order]
        self.d_int = (_round(delay[order] / self.dt32) - 1).astype(np.int64)  # connect.cu: round(delay / dt) - 1
        self.first = np.searchsorted(src[order], np.arange(state["n_nodes"] + 1))  # node k's connections: first[k:k+2]
        self.pending: dict[int, list] = {}  # step T -> [(targets, ports, values)] sent in T
        self.time_ms = 0.0  # NEST GPU's neural_time_

    def _push(self, nodes: np.ndarray, heights: np.ndarray, time_idx: int, time_ms: float) -> None:
        """PushSpike: record the spike where recording is active, and put it on its way along every connection."""
        for node, height in zip(nodes.tolist(), heights.tolist()):
            rec = self.state["rec"].get(self._group(node))
            if rec is not None:
                device = rec["device"][node - rec["i0"]]
                if len(device) >= rec["max_n"] - 1:
                    raise StandInError(
                        f"node {node} recorded {len(device)} spike times since the last buffering, the most "
                        f"ActivateRecSpikeTimes({rec['max_n']}) keeps: NEST GPU prints 'Maximum number of recorded "
                        "spike times exceeded' and drops the spike (buffer more often: SetRecSpikeTimesStep)")
                device.append(float(np.float32(time_ms)))
            lo, hi = self.first[node], self.first[node + 1]
            for d in np.unique(self.d_int[lo:hi]).tolist():
                sel = lo + np.flatnonzero(self.d_int[lo:hi] == d)
                values = (np.float32(height) * self.w[sel]).astype(np.float64)  # double(float(height x weight))
                self.pending.setdefault(time_idx + 1 + d, []).append((self.tgt[sel], self.port[sel], values))

    def _group(self, node: int) -> int:
        for k, group in enumerate(self.state["groups"]):
            if group["i0"] <= node < group["i0"] + group["n"]:
                return k
        raise ValueError(f"node {node} does not exist")

    def simulate(self, sim_time_ms: float) -> None:
        n_steps = int(_round(np.float32(sim_time_ms) / self.dt32))
        t0, i0 = self.time_ms, int(_round(self.time_ms / float(self.dt32)))
        for it in range(n_steps):
            time_idx, time_ms = i0 + it + 1, t0 + float(self.dt32) * (it + 1)
            for group in self.neurons:
                spiking = group.update(self.dll, time_idx)
                self._push(spiking, np.ones(spiking.size, np.float32), time_idx, time_ms)
            for gen in self.generators:
                if gen.next < gen.idx.size and gen.idx[gen.next] == it:
                    self._push(np.array([gen.node]), gen.heights[gen.next:gen.next + 1], time_idx, time_ms)
                    gen.next += 1
            sent = self.pending.pop(time_idx, [])
            if sent:
                sums = np.zeros((2, self.state["n_nodes"]), np.float64)
                for tgt, port, values in sent:
                    np.add.at(sums, (port, tgt), values)
                for group in self.neurons:
                    group.add_input(sums)
            for k, rec in self.state["rec"].items():
                every = self.state["rec_steps"].get(k, 0)
                if every > 0 and time_idx % every == every - 1:
                    buffer_rec_spike_times(rec)
            self.time_ms = time_ms


def buffer_rec_spike_times(rec: dict) -> None:
    """BufferRecSpikeTimes: the device records move to the host buffer."""
    for device, host in zip(rec["device"], rec["host"]):
        host.extend(device)
        device.clear()
