"""STAND-IN for NEST GPU's Python module `nestgpu`, for tests only. It is NOT NEST GPU.

Put this folder first on sys.path (or in sys.modules as "nestgpu") and flyhpc's trial worker
(`flyhpc.backends.nestgpu.trial`) runs against it. It mirrors the signatures of the calls the worker makes, as
nest/nest-gpu pythonlib/nestgpu.py has them at d3be46f, raises ValueError with NEST GPU's own message where NEST GPU
refuses a call, and a `StandInError` where the real wrapper and library would get it wrong silently:

- `Create(model_name, n_node=1, n_ports=1, status_dict=None)`: NEST GPU sizes a group's input buffer
  (`get_spike_array_`, n_node x n_ports doubles) from the `n_ports` given to Create (nestgpu.cu CreateNodeGroup ->
  InitGetSpikeArray), while the model's Init sets the port count its kernels use (`n_port_`); neuron_models.cu
  overrides `n_port` for built-in models only (spike_generator 0, iaf_psc_exp 2, ...), not for user_m1. flyhpc's
  user_m1 has 2 ports (0 -> g, 1 -> v): Create("user_m1", n) with the default 1 makes the per-step clear and every
  port-1 delivery write past the buffer: a `StandInError`.
- `Connect(source, target, conn_dict, syn_dict)`: "weight_array"/"delay_array" (and {"weight": {"array": ...}})
  reach the library as a bare pointer that the C side keeps (connect_rules.cpp SynSpec::SetParam) and reads while the
  connect runs. The real wrapper turns a list or tuple into a ctypes array local to SetSynSpecFloatPtParam (or
  SetSynParamFromArray), which is freed when that function returns, before the connect reads it. The stand-in does
  exactly that conversion, keeps only a weak reference where the library keeps the pointer, and reads through it inside
  Connect: a freed buffer is a `StandInError` ("use after free"). Only ctypes arrays are accepted (the lifetime of a
  bare address cannot be checked); they must hold at least the rule's number of values and stay owned by the caller
  until Connect returns. A receptor port must exist on the target (NEST GPU does not check; it writes out of bounds:
  `StandInError`). A delay shorter than the time resolution is a ValueError (connect.cu NetConnection::Connect).
- `SetStatus` accepts NodeSeq, list or tuple and only names the group has (user_m1's from flyhpc's user_m1.h); after
  the first Simulate it is a `StandInError` (the stand-in does not model it; NEST GPU would not even pass new
  spike_times to the device, which spike_generator::Calibrate uploads once). Create and Connect after the first
  Simulate are ValueErrors (CheckUncalibrated).
- Spike recording (base_neuron.cu, nestgpu.cu): `ActivateRecSpikeTimes`, `SetRecSpikeTimesStep` and
  `GetRecSpikeTimes` need a NodeSeq (ValueError otherwise, as in the real wrapper) that is one whole group (a part of
  a group, or nodes of two groups, is a ValueError); ActivateRecSpikeTimes only once per group, with a maximum > 0,
  before the first Simulate; GetRecSpikeTimes without it is a ValueError. GetRecSpikeTimes returns one list per node
  of the float32 times (ms) recorded since the previous call (it empties NEST GPU's buffers).
- `Simulate` calibrates on its first call (spike_generator: spike_times and spike_heights of one size, event steps
  round(t/dt) strictly increasing, else ValueError) and then steps the network with `standin_engine.Engine`, which runs
  flyhpc's user_m1 step itself (user_m1_host.cpp around flyhpc_lif.cuh) in NEST GPU's step order: the spikes it
  records are the spikes the model emits, and more than max_n - 1 of one neuron between two bufferings is a
  `StandInError` (NEST GPU drops them).

Inspect `STATE` (groups, connections as numpy arrays, recording, calls); `reset()` clears it.
"""

from __future__ import annotations

import ctypes
import re
import weakref
from pathlib import Path

import numpy as np

from standin_engine import Engine, StandInError, buffer_rec_spike_times

STAND_IN = True  # lets a test assert it got this module, not NEST GPU


def _user_m1_names() -> tuple[list[str], list[str], int]:
    """(scalar variables, scalar parameters, receptor ports) of flyhpc's user_m1, read from its header."""
    header = Path(__file__).resolve().parents[3] / "flyhpc" / "backends" / "nestgpu" / "user_m1.h"
    text = header.read_text()

    def names(array: str) -> list[str]:
        m = re.search(array + r"\[[A-Z_]+\]\s*=\s*\{([^}]*)\}", text)
        return re.findall(r'"([^"]+)"', m.group(1)) if m else []

    ports = re.search(r"user_m1_n_port\s*=\s*(\d+)", text)
    return names("user_m1_scal_var_name"), names("user_m1_scal_param_name"), int(ports.group(1)) if ports else 2


USER_M1_VARS, USER_M1_PARAMS, USER_M1_PORTS = _user_m1_names()
# Models the worker uses: (scalar variables + parameters, array parameters, receptor ports the model's Init sets,
# port count neuron_models.cu forces in Create or None where it keeps the caller's n_ports).
MODELS = {
    "user_m1": (set(USER_M1_VARS) | set(USER_M1_PARAMS), set(), USER_M1_PORTS, None),
    "spike_generator": (set(), {"spike_times", "spike_heights"}, 0, 0),
}
CONN_RULES = ("one_to_one", "all_to_all", "fixed_total_number", "fixed_indegree", "fixed_outdegree")
SYN_INT, SYN_FLOAT, SYN_FLOAT_PT = ("synapse_group", "receptor"), ("weight", "delay"), ("weight_array", "delay_array")

STATE: dict = {}


def reset() -> None:
    """Forget every group, connection and call (a fresh NEST GPU instance)."""
    STATE.clear()
    STATE.update(groups=[], n_nodes=0, connections=[], calls=[], calibrated=False, time_resolution=0.1, seed=None,
                 status={}, rec={}, rec_steps={}, engine=None)


reset()


class NodeSeq:
    """As the real NodeSeq: a contiguous range of node indices [i0, i0 + n)."""

    def __init__(self, i0, n=1):
        self.i0, self.n = i0, n

    def __getitem__(self, i):
        if isinstance(i, slice):
            if i.step is not None:
                raise ValueError("Subsequence cannot have a step")
            start, stop = i.start or 0, self.n if i.stop is None else i.stop
            if start < 0 or stop > self.n or stop <= start:
                raise ValueError("Sequence subset out of range")
            return NodeSeq(self.i0 + start, stop - start)
        if i >= self.n or i < -self.n:
            raise ValueError("Sequence index out of range")
        return self.i0 + (i % self.n)

    def ToList(self):
        return list(range(self.i0, self.i0 + self.n))

    def __len__(self):
        return self.n


def _call(name: str, **fields) -> None:
    STATE["calls"].append((name, fields))


def _check_uncalibrated(message: str) -> None:
    """nestgpu.cu CheckUncalibrated: calibration is the first Simulate."""
    if STATE["calibrated"]:
        raise ValueError(message)


def _node_list(nodes) -> list[int]:
    if isinstance(nodes, NodeSeq):
        return nodes.ToList()
    if isinstance(nodes, (list, tuple)):
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in nodes):
            raise ValueError("node lists must hold Python ints (they go through ctypes.c_int arrays)")
        return list(nodes)
    raise ValueError("Unknown node type")


def _group_of(node: int) -> dict:
    for group in STATE["groups"]:
        if group["i0"] <= node < group["i0"] + group["n"]:
            return group
    raise ValueError(f"node {node} does not exist")


def SetRandomSeed(seed):
    ctypes.c_ulonglong(seed)  # the real wrapper's conversion: must be an int
    STATE["seed"] = int(seed)
    _call("SetRandomSeed", seed=seed)


def SetTimeResolution(time_res):
    STATE["time_resolution"] = float(ctypes.c_float(time_res).value)
    _call("SetTimeResolution", time_res=time_res)


def Create(model_name, n_node=1, n_ports=1, status_dict=None):
    """As the real Create; the input buffer gets n_node x n_ports slots whatever the model's Init declares."""
    _check_uncalibrated("Nodes cannot be created after calibration")
    if model_name not in MODELS:
        raise ValueError(f"Unknown neuron model name: {model_name}")
    if not isinstance(n_node, int) or n_node <= 0:
        raise ValueError("Number of nodes must be greater than zero.")
    names, arrays, model_ports, forced = MODELS[model_name]
    buffer_ports = forced if forced is not None else int(n_ports)
    if buffer_ports != model_ports:
        raise StandInError(
            f"Create({model_name!r}, {n_node}, n_ports={n_ports}): the model's Init declares {model_ports} receptor "
            f"ports but NEST GPU sizes its input buffer for {buffer_ports} ({n_node} x {buffer_ports} doubles); every "
            "step clears and fills past its end (memory corruption on a GPU)")
    group = {"model": model_name, "i0": STATE["n_nodes"], "n": n_node, "ports": model_ports, "names": names,
             "arrays": arrays}
    STATE["groups"].append(group)
    STATE["n_nodes"] += n_node
    _call("Create", model_name=model_name, n_node=n_node, n_ports=n_ports)
    nodes = NodeSeq(group["i0"], n_node)
    if status_dict is not None:
        SetStatus(nodes, status_dict)
    return nodes


def SetStatus(gen_object, params, val=None):
    """Set parameters/variables of nodes (NodeSeq, list or tuple) from a dict or one name and value."""
    if STATE["calibrated"]:
        raise StandInError("SetStatus after the first Simulate: not modelled by the stand-in (NEST GPU itself would not "
                           "pass new spike_times to the device: spike_generator::Calibrate uploads them once)")
    nodes = _node_list(gen_object)
    items = [(params, val)] if val is not None else list(params.items()) if isinstance(params, dict) else None
    if items is None:
        raise ValueError("Wrong argument in SetStatus")
    for name, value in items:
        for node in nodes:
            group = _group_of(node)
            if name in group["arrays"]:
                value = [float(ctypes.c_float(x).value) for x in value]
            elif name in group["names"]:
                value = float(ctypes.c_float(value).value)
            else:
                raise ValueError(f"Unknown neuron variable or parameter {name!r} of {group['model']}")
            STATE["status"].setdefault(node, {})[name] = value
    _call("SetStatus", nodes=nodes, names=[n for n, _ in items])


class _Pointer:
    """What the C side keeps of a float array parameter: a pointer, here a weak reference to its buffer."""

    def __init__(self, buffer):
        if not isinstance(buffer, ctypes.Array) or buffer._type_ is not ctypes.c_float:
            raise StandInError(f"float array parameters must be ctypes c_float arrays the caller keeps alive (the stand-in "
                               f"cannot check the lifetime of a {type(buffer).__name__}); got {type(buffer).__name__}")
        self.ref, self.size = weakref.ref(buffer), len(buffer)

    def read(self, n: int, name: str) -> np.ndarray:
        buffer = self.ref()
        if buffer is None:
            raise StandInError(f"use after free: the {name} buffer was freed before Connect read it (the real wrapper "
                               "copies a list into a ctypes array local to one function and the library keeps only its "
                               "pointer; pass a ctypes array the caller owns until Connect returns)")
        if n > self.size:
            raise StandInError(f"{name} holds {self.size} values, the rule reads {n}: out-of-bounds read")
        return np.ctypeslib.as_array(buffer)[:n].copy()


def _set_float_pt(spec: dict, name: str, arr) -> None:
    """The real SetSynSpecFloatPtParam: a list or tuple becomes a ctypes array local to this call."""
    if isinstance(arr, (list, tuple)):
        arr = (ctypes.c_float * len(arr))(*arr)
    spec[name] = _Pointer(arr)


def _from_dict(spec: dict, name: str, par: dict, size: int) -> None:
    """The real SetSynParamFromArray/DictToArray for {"array": values}: the array is local to this call too."""
    if set(par) != {"array"}:
        raise ValueError("the stand-in supports only {'array': values} distributions")
    arr = par["array"]
    if isinstance(arr, (list, tuple)):
        if len(arr) != size:
            raise ValueError("Wrong array size.")
        arr = (ctypes.c_float * len(arr))(*arr)
    _set_float_pt(spec, name + "_array", arr)


def Connect(source, target, conn_dict, syn_dict):
    """Connect with the real wrapper's argument handling; records (source, target, port, weight, delay) per synapse."""
    _check_uncalibrated("Connections cannot be created after calibration")
    for side in (source, target):
        if not isinstance(side, (list, tuple, NodeSeq)):
            raise ValueError("Unknown source type")
    src, tgt = _node_list(source), _node_list(target)
    rule = conn_dict.get("rule")
    if rule not in CONN_RULES or set(conn_dict) != {"rule"}:
        raise ValueError(f"the stand-in supports conn_dict {{'rule': one of {CONN_RULES}}}, got {conn_dict!r}")
    if rule != "one_to_one":
        raise ValueError(f"the stand-in implements only one_to_one, got {rule!r}")
    if len(src) != len(tgt):
        raise ValueError("Number of source and target nodes must be equal for the one-to-one connection rule")
    size = len(src)
    spec = {"weight": 0.0, "delay": 0.0, "receptor": 0, "synapse_group": 0}
    for name, value in syn_dict.items():
        if name in SYN_INT:
            spec[name] = int(ctypes.c_int(value).value)
        elif name in SYN_FLOAT:
            if isinstance(value, dict):
                _from_dict(spec, name, value, size)
            else:
                spec[name] = float(ctypes.c_float(value).value)
        elif name in SYN_FLOAT_PT:
            _set_float_pt(spec, name, value)
        else:
            raise ValueError("Unknown synapse parameter")
    # The library's connect loop: it reads the arrays through the pointers it was given.
    weights = spec["weight_array"].read(size, "weight_array") if "weight_array" in spec else np.full(size, spec["weight"],
                                                                                                     np.float32)
    delays = spec["delay_array"].read(size, "delay_array") if "delay_array" in spec else np.full(size, spec["delay"],
                                                                                                 np.float32)
    if np.any(delays < np.float32(STATE["time_resolution"])):  # float compare, as connect.cu does
        raise ValueError("Delay must be >= time resolution")
    port = spec["receptor"]
    for node in set(tgt):
        group = _group_of(node)
        if not 0 <= port < group["ports"]:
            raise StandInError(f"receptor {port} on {group['model']} with {group['ports']} ports: NEST GPU does not check "
                               "and writes past the target's input buffer")
    STATE["connections"].append({"source": np.asarray(src, np.int64), "target": np.asarray(tgt, np.int64),
                                 "port": port, "weight": weights.astype(np.float32), "delay": delays.astype(np.float32)})
    _call("Connect", n=size, port=port)


def _need_nodeseq(nodes, what: str) -> None:
    if not isinstance(nodes, NodeSeq):
        raise ValueError(f"Argument type of {what} must be NodeSeq")


def _whole_group(nodes, message: str) -> int:
    """nestgpu.cu GetNodeSequenceOffset and its callers: the index of the one group `nodes` is, all of it."""
    if nodes.i0 < 0 or nodes.i0 + nodes.n > STATE["n_nodes"]:
        raise ValueError("Unrecognized node in getting node sequence offset")
    first, last = (_group_index(nodes.i0), _group_index(nodes.i0 + nodes.n - 1))
    if first != last:
        raise ValueError("Nodes belong to different node groups in setting parameter")
    group = STATE["groups"][first]
    if group["i0"] != nodes.i0 or group["n"] != nodes.n:
        raise ValueError(message)
    return first


def _group_index(node: int) -> int:
    return STATE["groups"].index(_group_of(node))


def ActivateRecSpikeTimes(nodes, max_n_rec_spike_times):
    """Record the spike times of one whole group, at most max_n - 1 per neuron between two bufferings."""
    _need_nodeseq(nodes, "ActivateRecSpikeTimes")
    max_n = int(ctypes.c_int(max_n_rec_spike_times).value)
    _check_uncalibrated("Spike time recording must be activated before calibration")
    k = _whole_group(nodes, "Spike count must be activated for all and only  the nodes of the same group")
    if max_n <= 0:
        raise ValueError("Maximum number of recorded spike times must be greater than 0")
    if k in STATE["rec"]:
        raise ValueError("Spike times recording already activated")
    STATE["rec"][k] = {"i0": nodes.i0, "max_n": max_n, "device": [[] for _ in range(nodes.n)],
                       "host": [[] for _ in range(nodes.n)]}
    _call("ActivateRecSpikeTimes", i0=nodes.i0, n=nodes.n, max_n=max_n_rec_spike_times)


def SetRecSpikeTimesStep(nodes, rec_spike_times_step):
    """Move one whole group's recorded times to the host every `rec_spike_times_step` steps."""
    _need_nodeseq(nodes, "SetRecSpikeTimesStep")
    k = _whole_group(nodes, "Time step for buffering spike time recording must be set for all and only the nodes of "
                            "the same group")
    STATE["rec_steps"][k] = int(ctypes.c_int(rec_spike_times_step).value)
    _call("SetRecSpikeTimesStep", i0=nodes.i0, n=nodes.n, step=rec_spike_times_step)


def Simulate(sim_time=1000.0):
    """Calibrate on the first call, then step the network for round(sim_time / dt) steps (standin_engine)."""
    if STATE["engine"] is None:
        STATE["engine"] = Engine(STATE)
    STATE["calibrated"] = True
    STATE["engine"].simulate(float(ctypes.c_float(sim_time).value))
    _call("Simulate", sim_time=sim_time)


def GetRecSpikeTimes(nodes):
    """Per node of one whole group, the spike times (ms, float32 values) recorded since the previous call."""
    _need_nodeseq(nodes, "GetRecSpikeTimes")
    k = _whole_group(nodes, "Spike times must be extracted for all and only  the nodes of the same group")
    if k not in STATE["rec"]:
        raise ValueError("Spike times recording was not activated")
    rec = STATE["rec"][k]
    buffer_rec_spike_times(rec)
    out = [list(host) for host in rec["host"]]
    for host in rec["host"]:
        host.clear()
    _call("GetRecSpikeTimes", i0=nodes.i0, n=nodes.n)
    return out
