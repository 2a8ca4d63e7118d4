"""GeNN backend without a GPU: the neuron code (compiled with gcc in a GeNN-like step loop and compared
spike for spike with the pytorch backend), recording windows and drive tables.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from flyhpc.backends import genn as gb
from flyhpc.drive import make_drive
from flyhpc.errors import ConfigError
from flyhpc.model import DriveSet, Experiment, Params
from flyhpc.network import NetworkSpec


def small_spec(n=40, n_edges=300, seed=1, driven=(0, 1, 2)) -> NetworkSpec:
    rng = np.random.default_rng(seed)
    pre, post = rng.integers(0, n, n_edges), rng.integers(0, n, n_edges)
    w = rng.choice([-1.0, 1.0], n_edges, p=[0.3, 0.7]) * rng.integers(1, 12, n_edges) * 0.275 * 3
    order = np.lexsort((post, pre))
    pre, post, w = pre[order], post[order], w[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(pre, minlength=n), out=indptr[1:])
    ref = np.full(n, 22, np.int32)
    ref[list(driven)] = 0
    ids = np.arange(100, 100 + n, dtype=np.int64)
    return NetworkSpec(params=Params(), flywire_ids=ids, indptr=indptr, indices=post.astype(np.int32), weights_mv=w,
                       refractory_steps=ref, drive_sets=(DriveSet(np.array(driven, np.int32), 300.0),
                                                         DriveSet(np.zeros(0, np.int32), 0.0)),
                       silenced=np.zeros(0, np.int32),
                       experiment=Experiment(name="small", activate=tuple(int(ids[k]) for k in driven), rate_hz=300.0),
                       connectome_source="test", connectome_digest="test")


# -- GeNN ------------------------------------------------------------------------------------------
def _genn_like_c(spec: NetworkSpec, drive, window_vars) -> str:
    """C program: GeNN's per-step order (Isyn of spikes from step n-1-D, then sim/threshold/reset)."""
    steps, nxt, end = window_vars
    p = gb.neuron_params(spec.params)
    arr = lambda name, ctype, a: f"static {ctype} {name}[] = {{{', '.join(str(int(x)) for x in a) or '0'}}};"
    pre = spec.pre_indices
    return textwrap.dedent(f"""
    #include <math.h>
    #include <stdbool.h>
    #include <stdio.h>
    typedef double scalar;
    #define N {spec.n_neurons}
    #define NB {drive.n_trials}
    #define E {spec.n_edges}
    #define D {spec.params.delay_steps}
    #define R (D + 2)
    {arr('pre_i', 'int', pre)} {arr('post_i', 'int', spec.indices)}
    static double w[] = {{{', '.join(repr(float(x)) for x in spec.weights_mv)}}};
    {arr('driveSteps', 'unsigned int', steps)} {arr('next0', 'unsigned int', nxt.ravel())}
    {arr('end0', 'unsigned int', end.ravel())} {arr('ref', 'int', spec.refractory_steps)}
    static double Vs[NB][N], Gs[NB][N], buf[NB][R][N]; static int Ls[NB][N]; static unsigned int Nx[NB][N], En[NB][N];
    int main(void) {{
      const double dt = {spec.params.dt_ms!r};
      const scalar V0 = {p['V0']!r}, Vrst = {p['Vrst']!r}, Vth = {p['Vth']!r}, Kick = {p['Kick']!r};
      const scalar A = {p['A']!r}, B = {p['B']!r}, Coef = {p['Coef']!r};
      for (int b = 0; b < NB; b++) for (int i = 0; i < N; i++) {{
        Vs[b][i] = V0; Gs[b][i] = 0; Ls[b][i] = {gb.NEVER_SPIKED}; Nx[b][i] = next0[b*N+i]; En[b][i] = end0[b*N+i]; }}
      for (int n = 0; n < {drive.n_steps}; n++) for (int b = 0; b < NB; b++) {{
        const double t = n * dt;
        int spiked[N];
        for (int i = 0; i < N; i++) {{
          scalar V = Vs[b][i], G = Gs[b][i]; int LastSpikeStep = Ls[b][i];
          unsigned int DriveNext = Nx[b][i], DriveEnd = En[b][i]; const int RefSteps = ref[i];
          const scalar Isyn = buf[b][n % R][i]; buf[b][n % R][i] = 0;
          {{ {gb.SIM_CODE} }}
          spiked[i] = ({gb.THRESHOLD_CODE});
          if (spiked[i]) {{ {gb.RESET_CODE} printf("%d %d %d\\n", b, n, i); }}
          Vs[b][i] = V; Gs[b][i] = G; Ls[b][i] = LastSpikeStep; Nx[b][i] = DriveNext;
        }}
        for (int e = 0; e < E; e++) if (spiked[pre_i[e]]) buf[b][(n + 1 + D) % R][post_i[e]] += w[e];
      }}
      return 0;
    }}
    """)


def pytorch_reference(spec: NetworkSpec, drive) -> list[tuple[int, int, int]]:
    """Sorted (trial, step, neuron) spikes of the pytorch backend in float64 (the reference here)."""
    from flyhpc.backends.pytorch import PyTorchBackend

    ref = PyTorchBackend(precision="float64")
    ref.build(spec, drive.n_steps)
    ref.setup()
    ref.run(drive)
    table = ref.spikes()
    ref.close()
    assert len(table) > 50  # the network is active
    return sorted(zip(table.trial.tolist(), table.step.tolist(), table.neuron.tolist()))


def program_spikes(binary) -> list[tuple[int, int, int]]:
    out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    return sorted(tuple(map(int, line.split())) for line in out.splitlines())


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_genn_neuron_code_matches_pytorch_spike_for_spike(tmp_path):
    spec = small_spec()
    drive = make_drive(spec, 600, 3, base_seed=5)
    src = tmp_path / "genn_like.c"
    src.write_text(_genn_like_c(spec, drive, gb.drive_tables(drive, spec.n_neurons)))
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "sim"), str(src), "-lm"], check=True)
    assert program_spikes(tmp_path / "sim") == pytorch_reference(spec, drive)


def test_neuron_model_code_names_every_variable():
    code = gb.neuron_model_code()
    names = [v[0] for v in code["vars"]] + code["params"] + ["driveSteps", "Isyn"]
    for token in ("V", "G", "LastSpikeStep", "DriveNext", "RefSteps", "A", "B", "Coef", "Kick", "driveSteps", "Isyn"):
        assert token in names and token in code["sim_code"] + code["threshold_condition_code"]
    assert dict((v[0], v[2]) for v in code["vars"] if len(v) == 3) == {"RefSteps": "READ_ONLY"}  # per neuron, shared by batches (GeNN 5)


def test_propagator_constants():
    c = gb.propagator(Params())
    assert c["A"] == pytest.approx(np.exp(-0.1 / 20)) and c["B"] == pytest.approx(np.exp(-0.1 / 5))
    assert c["Coef"] == pytest.approx(5 / (5 - 20))


@pytest.mark.parametrize("n_steps,n_batch,want", [(1_000_000, 1, 100_000), (1_000_000, 16, 50_000),
                                                  (1_000_000, 32, 25_000), (1000, 1, 1000), (1000, 32, 1000)])
def test_recording_window_defaults(n_steps, n_batch, want):
    assert gb.recording_window_steps(n_steps, n_batch, env={}) == want


def test_recording_window_divides_and_reads_env():
    w = gb.recording_window_steps(1_000_003, 7, env={gb.MAX_SLOTS_ENV: "800000"})
    assert 1_000_003 % w == 0 and w * 7 <= 800_000
    assert gb.recording_window_steps(10_000, 1, env={gb.WINDOW_ENV: "3000"}) == 1000  # gcd(10000, 3000)
    with pytest.raises(ConfigError, match="GENN_RECORDING_WINDOW_MAX_SLOTS"):
        gb.recording_window_steps(100, 1, env={gb.MAX_SLOTS_ENV: "lots"})


def test_drive_tables_slice_each_trial():
    spec = small_spec()
    drive = make_drive(spec, 400, 2, base_seed=3)
    steps, nxt, end = gb.drive_tables(drive, spec.n_neurons)
    for b, trial in enumerate(drive.trials):
        for i in np.unique(trial.neurons):
            assert steps[nxt[b, i]:end[b, i]].tolist() == trial.steps[trial.neurons == i].tolist()
        assert int((end[b] - nxt[b]).sum()) == trial.n_events
