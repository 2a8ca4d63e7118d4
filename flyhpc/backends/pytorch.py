"""PyTorch backend: the model contract stepped on one device, all trials batched, delivery event-driven.

Owns the batched state (u = v - v_0 and g, flattened as trial x neuron), the exact propagators,
Brian2's refractory semantics (frozen neurons ignore deliveries and kicks, as Brian2 2.9 does), and the event-driven delivery: spikes are
expanded into (target, weight) lists once per block of steps (block <= delay), so a step costs a
few dense element-wise ops plus one scatter. It implements the experiment hook (`Backend.experiment`): a driven
neuron's refractory window and a silenced neuron's out-degree set to 0 in place (its spikes then expand into no
delivery at all, as without its synapses), put back afterwards. It must not draw random numbers, read files or
time itself. Entry points: `PyTorchBackend` (key "pytorch"), `PyTorchOptions`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flyhpc.backends.base import Backend, BuildReport, Capabilities, Probe, RunReport, import_probe
from flyhpc.drive import Drive
from flyhpc.errors import BackendUnavailable, ConfigError, UnsupportedFeature
from flyhpc.model import ResolvedExperiment
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable

_DTYPES = {"float64": "float64", "float32": "float32"}


@dataclass(frozen=True)
class PyTorchOptions:
    """Settings of the pytorch backend.

    device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:<k>".
    block_size: neurons per block of the two-level threshold search (a power of two >= 16).
    """

    device: str = "auto"
    block_size: int = 512

    def __post_init__(self) -> None:
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(f"pytorch: device must be 'auto', 'cpu', 'cuda' or 'cuda:<k>', got {dev!r}")
        bs = self.block_size
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 16 or bs & (bs - 1):
            raise ConfigError(f"pytorch: block_size must be a power of two >= 16, got {bs!r}")


@dataclass
class _Network:
    """The network on the device, plus the host-side constants of the step loop."""

    device: object
    dtype: object
    n_neurons: int
    indptr: object  # int64 [N+1]
    degree: object  # int64 [N] out-degree: a spike is expanded into the first degree[j] edges of row j
    indices: object  # int64 [E] postsynaptic rows
    weights: object  # dtype [E] (mV)
    refractory: object  # int64 [N] refractory steps
    frozen: object  # bool [N]: refractory window >= 2 steps (frozen for at least one step)
    frozen_np: np.ndarray
    min_frozen_steps: int  # smallest window among frozen neurons (0 if none)


class PyTorchBackend(Backend):
    """Exact, batched, event-driven simulation of the contract with PyTorch tensors.

    Capabilities are static: device "cpu" because that is where it is verified and what a plain
    CPU partition can run (needs nothing); with `device="auto"` the same code runs on CUDA where a
    GPU is visible (a Slurm profile asking for GPUs would pass the "gpu" feature itself).
    """

    name: ClassVar[str] = "pytorch"
    caps: ClassVar[Capabilities] = Capabilities(
        device="cpu", batching="batched", drive="events", precisions=("float64", "float32"),
        compiles=False, deterministic=True, image="flyhpc-pytorch", verified_here="yes",
        display_name="PyTorch ({device})", needs=frozenset(), gpus=1)  # its CUDA build uses a GPU it is given
    Options: ClassVar[type] = PyTorchOptions

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._net: _Network | None = None
        self._record = None  # (trial ids, [(flat spike tensor, counts per step, first step)], n_neurons)
        self._undo = None  # what `_restore` puts back (see `_apply`)

    # -- probe / build / setup ----------------------------------------------------------------
    @classmethod
    def runs_on_gpu(cls, options) -> bool:
        """An explicit CUDA device ("cuda", "cuda:<k>"); "auto" is not a promise to run on one."""
        return options.device.startswith("cuda")

    @classmethod
    def probe(cls) -> Probe:
        """torch's version and whether CUDA is visible; imports torch, allocates nothing."""
        probe = import_probe("torch")
        if not probe.ok:
            return probe
        import torch

        return Probe(True, "", {**probe.versions, "cuda": str(torch.version.cuda or "none"),
                                "cuda_available": str(torch.cuda.is_available())})

    def _build(self, spec: NetworkSpec, n_steps: int, probe: Probe) -> BuildReport:
        """Check what the engine needs (nothing to compile: PyTorch runs eagerly).

        Raises
        ------
        BackendUnavailable
            If CUDA was asked for and is not available.
        UnsupportedFeature
            If the delay is shorter than one step (same-step delivery is not implemented).
        """
        if spec.params.delay_steps < 1:
            raise UnsupportedFeature(f"backend {self.name!r} needs a synaptic delay of >= 1 step, "
                                     f"got delay_ms={spec.params.delay_ms} (dt_ms={spec.params.dt_ms})")
        self._torch_device()  # fail early on a bad device choice
        return BuildReport(cached=False, work_dir="", versions=probe.versions)

    def _torch_device(self):
        import torch

        want = self.options.device
        if want == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"backend {self.name!r}: device {want!r} asked for but CUDA is not available")
        return torch.device(want)

    def _setup(self) -> None:
        """Upload the CSR network (int64 indices, weights in the run's dtype) to the device."""
        import torch

        spec, device = self._spec, self._torch_device()
        dtype = getattr(torch, _DTYPES[self.precision])
        refractory = np.array(spec.refractory_steps, dtype=np.int64)  # a copy: `_apply` changes it in place
        frozen = refractory >= 2  # a window of 0 or 1 step never freezes the neuron
        indptr = np.asarray(spec.indptr, dtype=np.int64)
        self._net = _Network(
            device=device, dtype=dtype, n_neurons=spec.n_neurons,
            indptr=torch.as_tensor(indptr, device=device),
            degree=torch.as_tensor(np.diff(indptr), device=device),
            indices=torch.as_tensor(np.asarray(spec.indices, dtype=np.int64), device=device),
            weights=torch.as_tensor(np.asarray(spec.weights_mv, dtype=np.float64), device=device).to(dtype),
            refractory=torch.as_tensor(refractory, device=device),
            frozen=torch.as_tensor(frozen, device=device),
            frozen_np=frozen,
            min_frozen_steps=int(refractory[frozen].min()) if frozen.any() else 0,
        )

    def _apply(self, resolved: ResolvedExperiment) -> None:
        """Driven neurons: refractory 0 steps (never frozen); silenced neurons: out-degree 0."""
        import torch

        net = self._net
        driven_np = np.asarray(resolved.driven, dtype=np.int64)
        driven = torch.as_tensor(driven_np, device=net.device)
        silenced = torch.as_tensor(np.asarray(resolved.silenced, dtype=np.int64), device=net.device)
        self._undo = (driven, net.refractory[driven], net.frozen[driven], driven_np, net.frozen_np[driven_np],
                      silenced, net.degree[silenced], net.min_frozen_steps)
        net.refractory[driven] = 0
        net.frozen[driven] = False
        net.frozen_np[driven_np] = False
        net.degree[silenced] = 0
        frozen = net.frozen_np  # every other neuron keeps the bare build's window
        net.min_frozen_steps = int(np.asarray(self._spec.refractory_steps)[frozen].min()) if frozen.any() else 0

    def _restore(self) -> None:
        driven, refractory, frozen, driven_np, frozen_np, silenced, degree, min_frozen = self._undo
        self._undo, net = None, self._net
        net.refractory[driven] = refractory
        net.frozen[driven] = frozen
        net.frozen_np[driven_np] = frozen_np
        net.degree[silenced] = degree
        net.min_frozen_steps = min_frozen

    # -- run ------------------------------------------------------------------------------------
    def _run(self, drive: Drive) -> RunReport:
        """Simulate every trial of `drive` as one batch; return once the device is idle.

        Raises
        ------
        ConfigError
            If a drive event names a step or neuron outside the network.
        """
        import torch

        saved_threads = torch.get_num_threads()
        threads = self._threads_for(drive.n_trials)
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                blocks = _Engine(self._net, self._spec, drive, self.options.block_size).run()
            if self._net.device.type == "cuda":
                torch.cuda.synchronize(self._net.device)
        finally:
            torch.set_num_threads(saved_threads)
        self._record = (np.array([t.trial for t in drive.trials], dtype=np.int32), blocks, self._net.n_neurons)
        return RunReport(inner_s=None, notes={"dtype": self.precision, "device": str(self._net.device),
                                             "threads": str(threads), "batch": str(drive.n_trials)})

    def _threads_for(self, n_trials: int) -> int:
        # torch splits element-wise work in grains of 32,768 entries; below two grains per thread
        # extra threads only spin (and steal the CPU from the one doing the work).
        per_thread = 2 * 32_768
        return max(1, min(self.n_threads, (self._spec.n_neurons * n_trials) // per_thread))

    def _collect(self) -> SpikeTable:
        """The recorded blocks off the device as one table (and let go of them)."""
        trial_ids, blocks, n = self._record
        self._record = None
        steps, flats = [], []
        for flat, counts, first_step in blocks:
            if not sum(counts):
                continue
            flats.append(flat.cpu().numpy())
            steps.append(np.repeat(np.arange(first_step, first_step + len(counts), dtype=np.int64), counts))
        if not flats:
            return SpikeTable.from_arrays([], [], [])
        flat = np.concatenate(flats)
        return SpikeTable.from_arrays(trial_ids[flat // n], np.concatenate(steps), flat % n)

    def _close(self) -> None:
        """Drop the device tensors and recorded spikes."""
        self._net = None
        self._record = None
        self._undo = None
        if self._spec is not None:
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:  # pragma: no cover - torch went away
                pass


class _Engine:
    """One batched run: the step loop and the block-wise expansion of spikes into deliveries.

    State is flat: entry r * N + j is neuron j of batch row r, padded with inert entries (u = -inf,
    g = 0) to a whole number of threshold blocks. A frozen (refractory) neuron holds u = -inf: the
    dense update keeps it at -inf, it cannot cross the threshold and kicks into it are lost, as in
    Brian2, which drops every synaptic effect on a refractory neuron. Whatever reaches its g in the
    window is wiped when the window ends (u = u_rst, g = 0 at step spike + refractory_steps).
    """

    def __init__(self, net: _Network, spec: NetworkSpec, drive: Drive, block_size: int):
        import torch

        self.torch, self.net = torch, net
        p = spec.params
        self.n_steps, self.delay = drive.n_steps, p.delay_steps
        a, b = p.decay_m, p.decay_s
        self.a, self.b = a, b
        self.c = p.tau_s_ms / (p.tau_s_ms - p.tau_m_ms) * (b - a)
        self.u_th = p.v_th_mv - p.v_0_mv
        self.u_rst = p.v_rst_mv - p.v_0_mv
        n, batch = net.n_neurons, drive.n_trials
        self.n, self.batch = n, batch
        # A block of spikes is expanded before its first delivery and its first release is due.
        self.block = min(self.delay, net.min_frozen_steps) if net.min_frozen_steps else self.delay
        self.cuda = net.device.type == "cuda"
        self._prepare_state(block_size)
        self._prepare_kicks(drive, spec.params.kick_mv)

    def _prepare_state(self, bs: int) -> None:
        torch, net = self.torch, self.net
        total = self.n * self.batch
        self.bs = bs
        self.n_blocks = -(-total // bs)
        padded = self.n_blocks * bs
        dev, dt = net.device, net.dtype
        # state rows: u, g; reset table rows: u after a spike (-inf while frozen), g = 0
        self.state = torch.zeros((2, padded), dtype=dt, device=dev)
        self.state[0, total:] = -math.inf
        frozen = net.frozen.repeat(self.batch)
        reset = torch.zeros((2, total), dtype=dt, device=dev)
        reset[0] = torch.where(frozen, torch.tensor(-math.inf, dtype=dt, device=dev),
                               torch.tensor(self.u_rst, dtype=dt, device=dev))
        self.reset = reset
        self.u, self.g = self.state[0], self.state[1]
        self.u_blocks = self.u.view(self.n_blocks, bs)
        self.has_frozen = bool(net.frozen_np.any())

    def _prepare_kicks(self, drive: Drive, kick_mv: float) -> None:
        torch, net, n = self.torch, self.net, self.n
        steps, flats = [], []
        for row, trial in enumerate(drive.trials):
            s = np.asarray(trial.steps, dtype=np.int64)
            j = np.asarray(trial.neurons, dtype=np.int64)
            if s.size and (s.min() < 0 or s.max() >= self.n_steps):
                bad = s[(s < 0) | (s >= self.n_steps)][:5].tolist()
                raise ConfigError(f"drive trial {trial.trial}: event steps {bad} outside 0..{self.n_steps - 1}")
            if j.size and (j.min() < 0 or j.max() >= n):
                bad = j[(j < 0) | (j >= n)][:5].tolist()
                raise ConfigError(f"drive trial {trial.trial}: neurons {bad} outside 0..{n - 1}")
            steps.append(s)
            flats.append(row * n + j)
        step = np.concatenate(steps)
        flat = np.concatenate(flats)
        order = np.lexsort((flat, step))
        step, flat = step[order], flat[order]
        self.kick_bounds = np.searchsorted(step, np.arange(self.n_steps + 1)).tolist()
        self.kick_targets = torch.as_tensor(flat, device=net.device)
        self.kick_values = torch.full((flat.size,), kick_mv, dtype=net.dtype, device=net.device)

    def _scatter_add(self, target, index, values) -> None:
        # CUDA's index_add_ uses atomics (order varies); index_put_ with accumulate sorts first.
        if self.cuda:
            target.index_put_((index,), values, accumulate=True)
        else:
            target.index_add_(0, index, values)

    def run(self) -> list:
        """Step through the run; return the spike record as [(flat indices, counts per step, first step)]."""
        torch = self.torch
        u, g, state, reset = self.u, self.g, self.state, self.reset
        a, b, c, u_th, u_rst, bs = self.a, self.b, self.c, self.u_th, self.u_rst, self.bs
        kb, kt, kv = self.kick_bounds, self.kick_targets, self.kick_values
        empty = torch.zeros(0, dtype=torch.int64, device=self.net.device)
        deliveries: dict[int, tuple] = {}
        releases: dict[int, list] = {}
        record: list = []
        pending: list = []
        counts: list[int] = []
        block_start = 0
        for step in range(self.n_steps):
            if step - block_start == self.block:
                self._expand(pending, counts, block_start, deliveries, releases, record)
                pending, counts, block_start = [], [], step
            # 1. groups: frozen windows that end now (inputs they got are dropped), then the
            #    exact propagator for everyone (frozen entries stay at u = -inf)
            for released in releases.pop(step, ()):
                u.index_fill_(0, released, u_rst)
                g.index_fill_(0, released, 0.0)
            u.mul_(a).add_(g, alpha=c)
            g.mul_(b)
            # 2. thresholds: per-block maxima first, then only the blocks above threshold
            hot = torch.nonzero(self.u_blocks.amax(dim=1) > u_th).view(-1)
            if hot.numel():
                where = torch.nonzero(self.u_blocks.index_select(0, hot) > u_th)
                spiking = hot.index_select(0, where[:, 0]) * bs + where[:, 1]
            else:
                spiking = empty
            # 3. synapses: spikes of step - delay, then the drive kicks of this step
            arriving = deliveries.pop(step, None)
            if arriving is not None:
                self._scatter_add(g, arriving[0], arriving[1])
            lo, hi = kb[step], kb[step + 1]
            if hi > lo:
                self._scatter_add(u, kt[lo:hi], kv[lo:hi])
            # 4. resets: u and g from the reset table (u = -inf for a neuron that will be frozen)
            k = spiking.numel()
            if k:
                state.index_copy_(1, spiking, reset.index_select(1, spiking))
            pending.append(spiking)
            counts.append(k)
        record.append((torch.cat(pending) if pending else empty, counts, block_start))
        return record

    def _expand(self, pending, counts, first_step, deliveries, releases, record) -> None:
        """Turn the spikes of steps first_step.. into per-step (targets, weights) and releases."""
        torch, net, n = self.torch, self.net, self.n
        flat = torch.cat(pending)
        record.append((flat, counts, first_step))
        if not flat.numel():
            return
        neuron = flat % n
        degree = net.degree.index_select(0, neuron)
        ends = torch.cumsum(degree, 0)
        # edge offsets at the step boundaries of the block (one host transfer)
        spike_ends = np.cumsum(counts)
        has = spike_ends > 0
        edge_ends = np.zeros(len(counts), dtype=np.int64)
        if has.any():
            edge_ends[has] = ends.index_select(0, torch.as_tensor(spike_ends[has] - 1, device=net.device)).cpu().numpy()
        total = int(edge_ends[-1])
        if total:
            owner = torch.repeat_interleave(degree, output_size=total)
            first_edge = net.indptr.index_select(0, neuron) - (ends - degree)
            edge = torch.arange(total, device=net.device) + first_edge.index_select(0, owner)
            targets = net.indices.index_select(0, edge) + (flat - neuron).index_select(0, owner)
            weights = net.weights.index_select(0, edge)
            lo = 0
            for k, hi in enumerate(edge_ends.tolist()):
                when = first_step + k + self.delay
                if hi > lo and when < self.n_steps:
                    deliveries[when] = (targets[lo:hi], weights[lo:hi])
                lo = hi
        if self.has_frozen:
            self._schedule_releases(flat, neuron, counts, first_step, releases)

    def _schedule_releases(self, flat, neuron, counts, first_step, releases) -> None:
        torch, net = self.torch, self.net
        steps = torch.repeat_interleave(
            torch.arange(first_step, first_step + len(counts), device=net.device),
            torch.as_tensor(counts, device=net.device), output_size=int(flat.numel()))
        due = steps + net.refractory.index_select(0, neuron)
        keep = net.frozen.index_select(0, neuron) & (due < self.n_steps)
        flat, due = flat[keep], due[keep]
        if not flat.numel():
            return
        due, order = torch.sort(due, stable=True)
        flat = flat.index_select(0, order)
        when, sizes = torch.unique_consecutive(due, return_counts=True)
        for w, part in zip(when.tolist(), torch.split(flat, sizes.tolist())):
            releases.setdefault(w, []).append(part)
