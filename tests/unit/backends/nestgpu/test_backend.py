"""NEST GPU backend without a GPU: the per-trial process protocol (with an honest fake trial process
that only echoes the drive as spikes), retries, timeouts, retrieval chunks, trial seeds, and the neuron
step (`flyhpc_lif.cuh`, compiled by nvcc for the host) against pytorch spike for spike.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from flyhpc.backends import genn as gb
from flyhpc.backends.nestgpu import backend as nb
from flyhpc.backends.nestgpu import trial
from flyhpc.drive import make_drive
from flyhpc.errors import ConfigError, TaskFailed, UnsupportedFeature
from flyhpc.network import NetworkSpec

from tests.unit.backends.networks import program_spikes, pytorch_reference, small_spec


FAKE_WORKER = """
# A FAKE NEST GPU worker for protocol tests only: it simulates nothing. It reports the trial's drive
# events as its "spikes", and fails (exit 1) while the attempt counter is below FAIL_FIRST.
import json, os, sys, numpy as np
req = json.load(open(sys.argv[1]))
count_file = sys.argv[1] + ".attempts"
n = int(open(count_file).read()) + 1 if os.path.exists(count_file) else 1
open(count_file, "w").write(str(n))
if n <= int(os.environ.get("FAIL_FIRST", "0")):
    print(json.dumps({"trial": req["trial"], "status": "error", "error": "injected"})); sys.exit(1)
d = np.load(req["drive_file"])
np.savez(req["spikes_file"], steps=d["steps"], neurons=d["neurons"])
print("noise line")
print(json.dumps({"trial": req["trial"], "status": "success", "n_spikes": int(len(d["steps"])), "simulation_time": 0.5}))
"""


def _fake_backend(tmp_path, **opts):
    worker = tmp_path / "fake_worker.py"
    worker.write_text(FAKE_WORKER)
    return nb.NestGpuBackend(nb.NestGpuOptions(worker_cmd=(sys.executable, str(worker)), **opts), work_root=tmp_path)


def _nestgpu_host_program(spec: NetworkSpec, drive) -> str:
    """C++ host program stepping every neuron with flyhpc_lif.cuh's lif_step, as user_m1_Update does:
    the port sums of step n (recurrent spikes of step n - D, drive kicks of step n) feed step n + 1."""
    p = gb.neuron_params(spec.params)
    arr = lambda name, ctype, a: f"static const {ctype} {name}[] = {{{', '.join(str(int(x)) for x in a) or '0'}}};"
    events = [(t.steps, t.neurons) for t in drive.trials]
    return textwrap.dedent(f"""
    #include <cstdio>
    #include "flyhpc_lif.cuh"
    #define N {spec.n_neurons}
    #define E {spec.n_edges}
    #define D {spec.params.delay_steps}
    {arr('pre_i', 'int', spec.pre_indices)} {arr('post_i', 'int', spec.indices)} {arr('ref', 'int', spec.refractory_steps)}
    static const float w[] = {{{', '.join(repr(float(x)) for x in spec.weights_mv)}}};
    int main() {{
      const flyhpc::LifParams p = {{{p['A']!r}, {p['B']!r}, {p['Coef']!r}, {p['V0']!r}, {p['Vrst']!r}, {p['Vth']!r}}};
      {" ".join(arr(f"ks{b}", "long long", st) + " " + arr(f"kn{b}", "int", nr) for b, (st, nr) in enumerate(events))}
      const long long* ks[] = {{{", ".join(f"ks{b}" for b in range(len(events)))}}};
      const int* kn[] = {{{", ".join(f"kn{b}" for b in range(len(events)))}}};
      const int nk[] = {{{", ".join(str(len(st)) for st, _ in events)}}};
      for (int b = 0; b < {len(events)}; b++) {{
        static float v[N], g[N], in_g[N], in_v[N], ring[D + 1][N]; static long long last[N];
        for (int i = 0; i < N; i++) {{ v[i] = p.v_0; g[i] = 0; in_g[i] = in_v[i] = 0; last[i] = -10000000; }}
        for (int d = 0; d <= D; d++) for (int i = 0; i < N; i++) ring[d][i] = 0;
        int k = 0;
        for (long long n = 0; n < {drive.n_steps}; n++) {{
          int spiked[N];
          for (int i = 0; i < N; i++) {{
            spiked[i] = flyhpc::lif_step(p, n, ref[i], in_g[i], in_v[i], v[i], g[i], last[i]);
            in_g[i] = in_v[i] = 0;
            if (spiked[i]) printf("%d %lld %d\\n", b, n, i);
          }}
          for (int e = 0; e < E; e++) if (spiked[pre_i[e]]) ring[(n + D) % (D + 1)][post_i[e]] += w[e];
          for (int i = 0; i < N; i++) {{ in_g[i] += ring[n % (D + 1)][i]; ring[n % (D + 1)][i] = 0; }}
          for (; k < nk[b] && ks[b][k] == n; k++) in_v[kn[b][k]] += (float){p['Kick']!r};
        }}
      }}
      return 0;
    }}
    """)


def test_nestgpu_protocol_collects_each_trial(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIL_FIRST", "0")
    spec = small_spec()
    drive = make_drive(spec, 300, 3, base_seed=2, first_trial=4)
    be = _fake_backend(tmp_path)
    be.build(spec, 300)
    rep = be.run(drive)
    table = be.spikes()
    for trial in drive.trials:
        t = table.of_trial(trial.trial)
        assert sorted(zip(t.step.tolist(), t.neuron.tolist())) == sorted(zip(trial.steps.tolist(), trial.neurons.tolist()))
    assert rep.notes["attempts"] == "1,1,1" and rep.inner_s == pytest.approx(1.5)
    be.close()


def test_nestgpu_retries_then_succeeds(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIL_FIRST", "2")
    spec = small_spec()
    be = _fake_backend(tmp_path, max_attempts=3)
    be.build(spec, 200)
    assert be.run(make_drive(spec, 200, 1)).notes["attempts"] == "3"


def test_nestgpu_gives_up_after_max_attempts(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIL_FIRST", "5")
    spec = small_spec()
    be = _fake_backend(tmp_path, max_attempts=2)
    be.build(spec, 200)
    with pytest.raises(TaskFailed, match="failed after 2 attempts; last: attempt 2: exit code 1"):
        be.run(make_drive(spec, 200, 1))


def test_nestgpu_timeout_is_a_failed_attempt(tmp_path):
    be = nb.NestGpuBackend(nb.NestGpuOptions(worker_cmd=(sys.executable, "-c", "import time; time.sleep(5)"), max_attempts=1, timeout_s=0.2),
                           work_root=tmp_path)
    spec = small_spec()
    be.build(spec, 100)
    with pytest.raises(TaskFailed, match="timed out"):
        be.run(make_drive(spec, 100, 1))


def test_retrieval_chunks_never_overflow():
    assert nb.retrieval_chunks(10_000, np.array([0, 22])) == [(0, 3999), (3999, 3999), (7998, 2002)]
    assert nb.retrieval_chunks(200_000, np.array([22, 22])) == [(0, 87_978), (87_978, 87_978), (175_956, 24_044)]
    with pytest.raises(ConfigError):
        nb.retrieval_chunks(0, np.array([22]))


def test_trial_seeds_are_distinct_and_stable():
    seeds = [nb.trial_seed(0, 1, k) for k in range(64)]
    assert len(set(seeds)) == 64
    assert nb.trial_seed(0, 1, 3) == nb.trial_seed(0, 1, 3) != nb.trial_seed(0, 2, 3)


@pytest.mark.nvcc
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc on PATH (.ci/run installs one from PyPI: "
                                                         "scripts/bootstrap-nvcc.sh)")
def test_nestgpu_neuron_step_matches_pytorch_spike_for_spike(tmp_path):
    """flyhpc_lif.cuh (the step user_m1.cu runs on the GPU), compiled by nvcc and run on the host."""
    pytest.importorskip("torch", reason="the pytorch backend (torch: pip install -e '.[torch]') is the reference here")
    spec = small_spec()
    drive = make_drive(spec, 600, 3, base_seed=5)
    src = tmp_path / "nestgpu_step.cu"
    src.write_text(_nestgpu_host_program(spec, drive))
    include = os.path.dirname(nb.__file__)
    subprocess.run(["nvcc", "-std=c++17", "-I", include, "-o", str(tmp_path / "sim"), str(src)], check=True,
                   timeout=300)
    assert program_spikes(tmp_path / "sim") == pytorch_reference(spec, drive)


def test_a_delay_under_one_step_is_refused_before_any_worker_runs(tmp_path):
    """NEST GPU's Connect refuses a delay below its time resolution (connect.cu): refused at build, as genn does."""
    spec = small_spec()
    short = dataclasses.replace(spec, params=dataclasses.replace(spec.params, delay_ms=0.04))
    assert short.params.delay_steps == 0
    with pytest.raises(UnsupportedFeature, match="needs a delay of >= 1 step"):
        nb.NestGpuBackend(nb.NestGpuOptions(worker_cmd=("false",)), work_root=tmp_path).build(short, 100)


def test_trials_longer_than_float32_spike_times_resolve_are_refused(tmp_path):
    """NEST GPU records spike times as float32 ms: past 2^20 ms (at 0.1 ms steps) they no longer name their step."""
    limit = nb.max_recorded_steps(0.1)
    dt32 = float(np.float32(0.1))
    last = limit + trial.RECORD_OFFSET_STEPS - 1  # recorded time index of the trial's last step
    idx = np.arange(last - 100_000, last + 1)
    assert np.array_equal(np.rint(np.float32(dt32 * idx).astype(np.float64) / 0.1), idx)  # exact up to the limit
    beyond = np.arange(last + 1, 2 * last)
    assert not np.array_equal(np.rint(np.float32(dt32 * beyond).astype(np.float64) / 0.1), beyond)
    assert 1_000_000 < limit * 0.1 < 2**20 + 1  # about 1,048 s
    be = nb.NestGpuBackend(nb.NestGpuOptions(worker_cmd=("false",)), work_root=tmp_path)
    with pytest.raises(UnsupportedFeature, match="float32 spike times"):
        be.build(small_spec(), limit + 1)
