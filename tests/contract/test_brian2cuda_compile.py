"""Brian2CUDA without a GPU: the brian2cuda backend generates and nvcc-compiles the CUDA project of a
small contract network, and a second process reuses that build.

Brian2CUDA 1.0a7 needs Brian2 2.8.0, so this runs in its own environment (`.venv-brian2cuda`, made by
`scripts/bootstrap-sim-env.sh brian2cuda`; FLYHPC_BRIAN2CUDA_PYTHON names another interpreter). The two
processes run with different string hash seeds, which once changed the generated CUDA (forcing a rebuild).
Without that environment the test skips, except where FLYHPC_REQUIRE_SIM_ENVS=1 (set by .ci/run) makes it
fail.
Simulating needs a GPU and is not done here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
from conftest import tiny_spec
from flyhpc.backends.brian2.cuda import Brian2CudaBackend, Brian2CudaOptions

spec = tiny_spec(6, [(0, 1, 2.0), (1, 2, -1.0), (0, 3, 5.0), (3, 4, 0.8), (2, 5, 1.5)],
                 driven=(0,), driven2=(2,), rate_hz=200.0, rate2_hz=50.0)
backend = Brian2CudaBackend(Brian2CudaOptions(compute_capability=8.0, detect_gpus="no"),
                            work_root=sys.argv[1], n_threads=2)
try:
    report = backend.build(spec, 200)
finally:
    backend.close()
print("REPORT " + json.dumps({"cached": report.cached, "work_dir": report.work_dir, "versions": report.versions}))
"""


def cuda_python() -> Path | None:
    path = Path(os.environ.get("FLYHPC_BRIAN2CUDA_PYTHON") or REPO / ".venv-brian2cuda" / "bin" / "python")
    return path if path.is_file() else None


def build_in_child(python: Path, work_root: Path, hash_seed: int) -> dict:
    # Different string hash seeds per process, as in real use: the generated code must not depend on them.
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
    proc = subprocess.run([str(python), "-c", CHILD, str(work_root), str(REPO / "tests" / "contract")],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


@pytest.mark.slow
def test_brian2cuda_generates_and_compiles_then_reuses_the_build(tmp_path):
    python = cuda_python()
    if python is None:
        if os.environ.get("FLYHPC_REQUIRE_SIM_ENVS") == "1":
            pytest.fail("FLYHPC_REQUIRE_SIM_ENVS=1 but .venv-brian2cuda is missing "
                        "(scripts/bootstrap-sim-env.sh brian2cuda)")
        pytest.skip("no Brian2CUDA environment: run scripts/bootstrap-sim-env.sh brian2cuda")

    first = build_in_child(python, tmp_path, hash_seed=1)
    work = Path(first["work_dir"])
    assert first["cached"] is False
    assert first["versions"]["brian2"] == "2.8.0" and first["versions"]["brian2cuda"] == "1.0a7"
    assert work.parent == tmp_path / "brian2cuda"
    binary = work / "main"
    assert binary.read_bytes()[:4] == b"\x7fELF"
    record = json.loads((work / "flyhpc_build.json").read_text())
    assert record["device"] == "cuda_standalone" and record["n_steps"] == 200

    makefile = (work / "makefile").read_text()
    assert "-arch=sm_80" in makefile
    assert "use_fast_math" not in makefile  # the contract's exact exp() in float64 on the device
    # The neuron update is Brian2's exact linear integration, in double precision, on the device.
    updater = (work / "code_objects" / "flyhpc_neurons_stateupdater_codeobject.cu").read_text()
    assert "__global__" in updater and "_brian_exp" in updater and "const double" in updater
    # The drive's bit table is a per-run argument (one build, one run per trial), and the kicks are
    # zero-delay synapses on the same (default) clock as the network.
    assert any("flyhpc_drive_bits" in p.name for p in work.rglob("*")) or "flyhpc_drive_bits" in (
        work / "objects.cu").read_text()
    linked = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    assert "libcurand" in linked and "not found" not in linked, linked

    mtime = binary.stat().st_mtime_ns
    second = build_in_child(python, tmp_path, hash_seed=2)
    rewritten = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.stat().st_mtime_ns > mtime)
    assert second["cached"] is True and second["work_dir"] == first["work_dir"], f"rewritten: {rewritten}"
    assert binary.stat().st_mtime_ns == mtime
