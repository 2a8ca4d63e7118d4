"""flyhpc's Slurm layer against a real one-node Slurm (scripts/local-slurm/start.sh), faults included.

Needs `sbatch`, `sacct` and a cluster that answers (skipped with the reason otherwise). Start it with
`scripts/local-slurm/start.sh` (root; CI does). Nothing is mocked except two things, said here:
- Apptainer cannot be installed on the test machines: tests/integration/fake-apptainer stands in for
  it. It checks the arguments flyhpc builds (exec, --nv, --bind sources that exist, a .sif image)
  and runs the inner command on the host.
- To make a task slow or failing on purpose, the tests submit `fault_run` (below) as the job
  function instead of `flyhpc.slurm.run_task`. It sleeps (first attempt only) or turns the task into
  one the real worker rejects, then calls the real `run_task` -> `worker.run`. Resubmits use the
  default job function, as the CLI does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

HERE = Path(__file__).resolve().parent
SLURM_DIR = Path(os.environ.get("FLYHPC_SLURM_DIR", "/tmp/flyhpc-slurm"))


def _cluster_reason() -> str | None:
    for exe in ("sbatch", "sacct", "sinfo", "scontrol"):
        if shutil.which(exe) is None:
            return f"{exe} not on PATH (start scripts/local-slurm/start.sh)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"no Slurm cluster answers: {proc.stderr.strip()}"
    if subprocess.run(["sacct", "-n", "-X"], capture_output=True, timeout=20).returncode != 0:
        return "sacct does not answer (accounting needed)"
    return None


_REASON = _cluster_reason()
if _REASON:
    pytestmark = [pytest.mark.slurm, pytest.mark.skip(reason=_REASON)]


# ----------------------------------------------------------------------------- job-side hook

def fault_run(task):
    """Test job function: act on the fault planned for this task, then run the real task."""
    from flyhpc import slurm

    slurm.leave_time_limits_to_slurm()  # as run_task does, before the sleep
    plan = json.loads(Path(os.environ["FLYHPC_TEST_FAULTS"]).read_text())
    action = plan.get(task.key, "")
    marker = Path(os.environ["FLYHPC_TEST_FAULTS"]).with_name(task.key.replace("/", "_") + ".started")
    first = not marker.exists()
    marker.write_text("started\n")
    if action.startswith("sleep") and first:
        time.sleep(float(action.split(":")[1]))
    if action == "raise":
        task = dataclasses.replace(task, experiment="no-such-experiment")  # the real worker rejects it
    return slurm.run_task(task)


# ----------------------------------------------------------------------------- helpers

def _tasks(label: str, root: Path, n: int):
    """n tiny real tasks of one run label (distinct rounds), on the cheapest backend here."""
    from flyhpc import backends, tasks

    from tests.integration.test_quick_grid import write_tiny_connectome

    backend = os.environ.get("FLYHPC_TEST_BACKEND") or ("native" if "native" in backends.names() else "brian2cpp")
    conn = root / "tiny-connectome"
    if not conn.exists():
        write_tiny_connectome(conn)
    return [tasks.BenchmarkTask(run_label=label, round=r, backend=backend, experiment="index:0,1,2@200",
                                t_run_s=0.05, n_run=1, seed=0, connectome=str(conn), connectome_digest="",
                                results_root=str(root))
            for r in range(1, n + 1)]


def _profile(tmp_path: Path, **cluster):
    from flyhpc.profiles import profile_from_dict

    table = {"executor": "slurm", "array_parallelism": 8, "min_time_min": 1, "max_time_min": 10,
             "python": sys.executable, "slurm_setup": [f"export PATH={HERE}:$PATH",
                                                       f"export FAKE_APPTAINER_LOG={tmp_path / 'apptainer.log'}"]}
    table.update(cluster)
    return profile_from_dict({"cluster": table, "default": {"cpus": 1, "mem_gb": 0.25, "base_s": 5, "per_trial_s": 0,
                                                            "per_sim_s": 0, "image": "flyhpc-test.sif"}},
                             "test", str(tmp_path / "test.toml"))


def _squeue_state(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def _wait_running(job: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _squeue_state(job) != "RUNNING":
        assert time.monotonic() < deadline, f"{job} never started"
        time.sleep(0.3)


def _wait_started(faults: Path, key: str, timeout_s: float = 60) -> None:
    marker = faults.with_name(key.replace("/", "_") + ".started")
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        assert time.monotonic() < deadline, f"{key} never started"
        time.sleep(0.2)


def _assert_bundle_clean(root: Path, label: str) -> None:
    """Every parquet in the bundle matches its record; no temporary file is left behind."""
    from flyhpc.files import sha256_file

    label_dir = root / label
    leftovers = [p for p in label_dir.rglob("*.tmp") if "slurm" not in p.parts]
    assert not leftovers, leftovers
    for parquet in label_dir.rglob("*.parquet"):
        record = json.loads(parquet.with_suffix(".json").read_text())
        assert sha256_file(parquet) in json.dumps(record), parquet


@pytest.fixture
def env(tmp_path, monkeypatch):
    faults = tmp_path / "faults.json"
    monkeypatch.setenv("FLYHPC_TEST_FAULTS", str(faults))
    # jobs inherit this environment (sbatch --export=ALL): they can import this module for fault_run
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    return faults


# ----------------------------------------------------------------------------- tests

def test_array_in_container_to_done(tmp_path, env):
    """Two tasks, one array, wrapped by (fake) apptainer; status done; resubmit has nothing to do."""
    from flyhpc import slurm

    env.write_text("{}")
    root = tmp_path / "results"
    prof = _profile(tmp_path, container=True, image_dir="/images", apptainer="fake-apptainer exec --nv")
    sp = slurm.plan(_tasks("ok", root, 2), prof)
    assert len(sp.arrays) == 1 and sp.arrays[0].n_tasks == 2
    record = slurm.submit(sp)
    sub = record["submissions"][0]
    assert sub["array"] and sub["python"].startswith("fake-apptainer exec --nv --bind ")
    report = slurm.wait(root, "ok", timeout_s=180, poll_s=1)
    assert [r.state for r in report.rows] == ["done", "done"], report.rows
    log = (tmp_path / "apptainer.log").read_text()
    assert log.count("image /images/flyhpc-test.sif") == 2
    script = next((root / "ok" / "slurm").glob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%2" in script and "#SBATCH --time=1" in script
    saved = json.loads((root / "ok" / "submission.json").read_text())
    assert saved["tasks"].keys() == {t.key for t in sp.arrays[0].tasks} and saved["profile"]["name"] == "test"
    assert slurm.plan(_tasks("ok", root, 2), prof).arrays == ()  # done tasks are skipped
    _assert_bundle_clean(root, "ok")


def test_faults_then_resubmit_completes(tmp_path, env):
    """scancel, time-out, exception and requeue in one array; each ends right; resubmit completes the label."""
    from flyhpc import slurm

    root = tmp_path / "results"
    tasks = _tasks("faults", root, 5)
    ok, boom, cancelled, timeout, requeued = (t.key for t in tasks)
    env.write_text(json.dumps({boom: "raise", cancelled: "sleep:600", timeout: "sleep:600", requeued: "sleep:600"}))
    prof = _profile(tmp_path)
    record = slurm.submit(slurm.plan(tasks, prof), job_fn=fault_run)
    job = record["submissions"][0]["job_id"]
    _wait_running(f"{job}_2")
    subprocess.run(["scancel", f"{job}_2"], check=True)
    _wait_started(env, requeued)  # the first attempt is inside its sleep
    subprocess.run(["scontrol", "requeue", f"{job}_4"], check=True)
    report = slurm.wait(root, "faults", timeout_s=240, poll_s=2)
    states = {r.key: r for r in report.rows}
    print(*report.rows, sep="\n")
    assert states[ok].state == "done"
    assert states[boom].state == "failed" and states[boom].reason.startswith("error"), states[boom]
    assert Path(states[boom].log).name.endswith(".log")
    assert states[cancelled].state == "cancelled"
    assert states[timeout].state == "timeout"
    assert states[requeued].state == "done"  # ran again after the requeue
    _assert_bundle_clean(root, "faults")

    sp, _ = slurm.resubmit(root, "faults", ("failed", "timeout", "cancelled", "out-of-memory", "missing"),
                           profile=prof, time_factor=2.0)
    assert sorted(t.key for a in sp.arrays for t in a.tasks) == sorted([boom, cancelled, timeout])
    env.write_text("{}")  # the resubmitted tasks run as they are (the raise was the fault)
    report = slurm.wait(root, "faults", timeout_s=180, poll_s=1)
    assert report.complete, report.rows
    _assert_bundle_clean(root, "faults")


@pytest.mark.skipif(os.geteuid() != 0 or not (SLURM_DIR / "pids" / "slurmd.pid").exists(),
                    reason="needs root and the cluster of scripts/local-slurm/start.sh")
def test_slurmd_stopped_under_running_task(tmp_path, env):
    """slurmd dies while a task runs: the step survives, the task finishes, and status says done."""
    from flyhpc import slurm

    root = tmp_path / "results"
    (task,) = _tasks("slurmd", root, 1)
    env.write_text(json.dumps({task.key: "sleep:8"}))
    slurm.submit(slurm.plan([task], _profile(tmp_path)), job_fn=fault_run)
    _wait_started(env, task.key)
    pid = int((SLURM_DIR / "pids" / "slurmd.pid").read_text())
    os.kill(pid, 15)
    time.sleep(10)  # the task ends while slurmd is down
    subprocess.run(["/usr/sbin/slurmd", "-N", subprocess.check_output(["hostname", "-s"], text=True).strip()],
                   check=True)
    report = slurm.wait(root, "slurmd", timeout_s=120, poll_s=1)
    assert [r.state for r in report.rows] == ["done"], report.rows
    _assert_bundle_clean(root, "slurmd")
