"""flyhpc's Slurm layer against a real one-node Slurm (scripts/local-slurm/start.sh), faults included.

Needs `sbatch`, `sacct` and a cluster that answers (skipped with the reason otherwise). Start it with
`scripts/local-slurm/start.sh` (root; CI does). Nothing is mocked except two things, said here:
- Apptainer cannot be installed on the test machines: tests/integration/fake-apptainer stands in for
  it. It checks the arguments flyhpc builds (exec, --nv, --bind sources that exist, a .sif image)
  and runs the inner command on the host.
- To make a task slow or failing on purpose, the tests submit `fault_run` (below) as the job
  function instead of `flyhpc.cluster.executors.run_task`. It sleeps (first attempt only) or turns the task into
  one the real worker rejects, then calls the real `run_task` -> `worker.run`. Resubmits use the
  default job function, as the CLI does.
"""

from __future__ import annotations

import csv
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


def _slurm_dir() -> Path | None:
    """The folder of the running cluster as scripts/local-slurm/start.sh lays it out ($DIR/etc/slurm.conf,
    $DIR/pids/), asked of the cluster itself (its SLURM_CONF) rather than assumed."""
    if shutil.which("scontrol") is None:
        return None
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=20).stdout
    conf = next((v.strip() for k, _, v in (line.partition("=") for line in out.splitlines())
                 if k.strip() == "SLURM_CONF"), "")
    return Path(conf).resolve().parent.parent if conf else None


SLURM_DIR = _slurm_dir()


def _pid_file(daemon: str) -> Path | None:
    """The PID file of a daemon of the loopback cluster, if there is one (killing it needs root)."""
    path = SLURM_DIR / "pids" / f"{daemon}.pid" if SLURM_DIR else None
    return path if path is not None and path.is_file() and os.geteuid() == 0 else None


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
    from flyhpc.cluster import job_signals
    from flyhpc.cluster import executors

    job_signals.install()  # as run_task does, before the sleep
    plan = json.loads(Path(os.environ["FLYHPC_TEST_FAULTS"]).read_text())
    action = plan.get(task.key, "")
    marker = Path(os.environ["FLYHPC_TEST_FAULTS"]).with_name(task.key.replace("/", "_") + ".started")
    first = not marker.exists()
    marker.write_text("started\n")
    if action.startswith("sleep") and first:
        time.sleep(float(action.split(":")[1]))
    if action == "raise":
        task = dataclasses.replace(task, connectome=task.connectome + "-missing")  # the real worker rejects it
    return executors.run_task(task)


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
    from flyhpc.cluster.profiles import profile_from_dict

    # signal_delay_s 0: the shortest limit Slurm's early warning allows, 2 min (profiles.WARNING_EARLY_S)
    table = {"executor": "slurm", "array_parallelism": 8, "min_time_min": 1, "max_time_min": 10, "signal_delay_s": 0,
             "python": sys.executable, "private_dir": str(tmp_path / "private"),
             "slurm_setup": [f"export PATH={HERE}:$PATH", f"export FAKE_APPTAINER_LOG={tmp_path / 'apptainer.log'}"]}
    table.update(cluster)
    default = {"cpus": 1, "mem_gb": 0.25, "base_s": 5, "per_trial_s": 0, "per_sim_s": 0, "image": "flyhpc-test.sif"}
    source = tmp_path / "test.toml"  # the same profile as a file, for the CLI (JSON scalars and lists are TOML)
    source.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in t.items())
                              for name, t in (("cluster", table), ("default", default))))
    return profile_from_dict({"cluster": table, "default": default}, "test", str(source))


def _squeue_state(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def _wait_running(job: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _squeue_state(job) != "RUNNING":
        assert time.monotonic() < deadline, f"{job} never started"
        time.sleep(0.3)


def _wait_ended(job: str, timeout_s: float = 60) -> None:
    """Until the controller no longer holds the job (its files say done a moment before Slurm ends it)."""
    deadline = time.monotonic() + timeout_s
    while _squeue_state(job):
        assert time.monotonic() < deadline, f"{job} never ended"
        time.sleep(0.5)


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
    leftovers = list(label_dir.rglob("*.tmp"))
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
    from flyhpc.cluster import slurm

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
    script = next(Path(sub["folder"]).glob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%2" in script and "#SBATCH --time=2" in script
    assert f"-u -m flyhpc.cluster.job_folder {sub['folder']}" in script and sub["folder"] in sub["python"]  # bound
    saved = json.loads((root / "ok" / "submission.json").read_text())
    assert saved["tasks"].keys() == {t.key for t in sp.arrays[0].tasks} and saved["profile"]["name"] == "test"
    assert slurm.plan(_tasks("ok", root, 2), prof).arrays == ()  # done tasks are skipped
    _assert_bundle_clean(root, "ok")


def test_faults_then_resubmit_completes(tmp_path, env):
    """scancel, time-out, exception and requeue in one array; each ends right; a --time-factor the
    profile caps is refused; resubmit (limits raised) completes the label."""
    from flyhpc.cluster import slurm
    from flyhpc.errors import ConfigError

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
    report = slurm.wait(root, "faults", timeout_s=360, poll_s=2)
    states = {r.key: r for r in report.rows}
    print(*report.rows, sep="\n")
    assert states[ok].state == "done"
    assert states[boom].state == "failed" and states[boom].reason.startswith("error"), states[boom]
    assert Path(states[boom].log).name.endswith(".log")
    assert states[cancelled].state == "cancelled"
    assert states[timeout].state == "timeout"
    assert states[requeued].state == "done"  # ran again after the requeue
    _assert_bundle_clean(root, "faults")

    assert report.exit_code == 4
    capped = _profile(tmp_path, max_time_min=2)
    with pytest.raises(ConfigError, match="max_time_min = 2; raise max_time_min there"):
        slurm.resubmit(root, "faults", ("timeout",), profile=capped, time_factor=4.0)
    sp, _ = slurm.resubmit(root, "faults", ("failed", "timeout", "cancelled", "out-of-memory", "missing"),
                           profile=prof, time_factor=2.0)
    assert sorted(t.key for a in sp.arrays for t in a.tasks) == sorted([boom, cancelled, timeout])
    assert {a.time_min for a in sp.arrays} == {5}  # 2 min before, x 2 -> rung 5: raised, whatever the model says
    env.write_text("{}")  # the resubmitted tasks run as they are (the raise was the fault)
    report = slurm.wait(root, "faults", timeout_s=180, poll_s=1)
    assert report.complete and report.exit_code == 0, report.rows
    assert _cli("collect", "faults", "--results-root", root).returncode == 0
    assert _cli("verify", "faults", "--results-root", root).returncode == 0
    subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=root / "faults", check=True)
    _assert_bundle_clean(root, "faults")


@pytest.mark.skipif(_pid_file("slurmd") is None, reason="needs root and the cluster of scripts/local-slurm/start.sh")
def test_slurmd_stopped_under_running_task(tmp_path, env):
    """slurmd dies while a task runs: the step survives, the task finishes, and status says done."""
    from flyhpc.cluster import slurm

    root = tmp_path / "results"
    (task,) = _tasks("slurmd", root, 1)
    env.write_text(json.dumps({task.key: "sleep:8"}))
    slurm.submit(slurm.plan([task], _profile(tmp_path)), job_fn=fault_run)
    _wait_started(env, task.key)
    pid = int(_pid_file("slurmd").read_text())
    os.kill(pid, 15)
    time.sleep(10)  # the task ends while slurmd is down
    subprocess.run(["/usr/sbin/slurmd", "-N", subprocess.check_output(["hostname", "-s"], text=True).strip()],
                   check=True)
    report = slurm.wait(root, "slurmd", timeout_s=120, poll_s=1)
    assert [r.state for r in report.rows] == ["done"], report.rows
    _assert_bundle_clean(root, "slurmd")


# ----------------------------------------------------------------------------- exit codes, damage, labels

def _cli(*args: str) -> subprocess.CompletedProcess:
    """The real `flyhpc` command in a fresh process (exit codes as a script sees them)."""
    return subprocess.run([sys.executable, "-m", "flyhpc", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def _flip(path: Path, at: int, n: int = 8) -> None:
    data = bytearray(path.read_bytes())
    for k in range(at, at + n):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_bundle_is_never_blessed_and_resubmit_repairs_it(tmp_path, env):
    """Flipped bytes, a truncated parquet and a deleted record: status/collect/verify exit non-zero,
    the checksums leave the damaged files out, resubmit (which hashes) reruns exactly those three,
    and then collect, verify and sha256sum -c are clean."""
    from flyhpc.cluster import slurm
    from flyhpc.bundle import BundlePaths

    env.write_text("{}")
    root = tmp_path / "results"
    todo = _tasks("damage", root, 4)
    prof = _profile(tmp_path)
    slurm.submit(slurm.plan(todo, prof))
    assert slurm.wait(root, "damage", timeout_s=180, poll_s=1).complete
    assert _cli("status", "damage", "--results-root", root).returncode == 0
    assert _cli("collect", "damage", "--results-root", root).returncode == 0
    assert _cli("verify", "damage", "--results-root", root).returncode == 0

    paths = BundlePaths(root, "damage")
    flipped, truncated, unrecorded, intact = todo
    _flip(paths.parquet(flipped), 8)  # inside the first data page: same size, footer intact
    with open(paths.parquet(truncated), "r+b") as fh:
        fh.truncate(paths.parquet(truncated).stat().st_size // 2)
    paths.record(unrecorded).unlink()

    cheap = _cli("status", "damage", "--results-root", root)
    assert cheap.returncode == 4, cheap.stdout  # truncated -> corrupt, no record -> missing
    deep = _cli("status", "damage", "--results-root", root, "--deep")
    assert deep.returncode == 4 and deep.stdout.count("corrupt") >= 2, deep.stdout
    collected = _cli("collect", "damage", "--results-root", root)
    assert collected.returncode == 4, collected.stdout + collected.stderr
    manifest = {row["task_key"]: row for row in csv.DictReader(open(paths.manifest))}
    assert {k: manifest[k]["state"] for k in manifest} == {
        flipped.key: "corrupt", truncated.key: "corrupt", unrecorded.key: "missing", intact.key: "done"}
    assert "sha256 differs" in manifest[flipped.key]["reason"]
    listed = paths.checksums.read_text()
    for task in (flipped, truncated, unrecorded):
        assert paths.relative(paths.parquet(task)) not in listed
    assert paths.relative(paths.parquet(intact)) in listed
    subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=paths.label_dir, check=True)
    verified = _cli("verify", "damage", "--results-root", root)
    assert verified.returncode == 5 and "incomplete" in verified.stdout, verified.stdout

    sp, _ = slurm.resubmit(root, "damage", ("failed", "timeout", "cancelled", "out-of-memory", "missing", "corrupt"),
                           profile=prof)
    assert sorted(t.key for a in sp.arrays for t in a.tasks) == sorted(t.key for t in (flipped, truncated, unrecorded))
    assert slurm.wait(root, "damage", timeout_s=180, poll_s=1).complete
    assert _cli("collect", "damage", "--results-root", root).returncode == 0
    assert _cli("verify", "damage", "--results-root", root).returncode == 0
    subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=paths.label_dir, check=True)
    assert paths.log(flipped).read_text().count("=== attempt ") == 2  # the first attempt's log is kept
    _assert_bundle_clean(root, "damage")


def test_double_submit_and_label_reuse_are_refused(tmp_path, env):
    """Submitting tasks that are still queued/running is refused (unless --force); so is a label reused
    for another experiment or seed; status says 75 while they run and 0 after."""
    from flyhpc.cluster import slurm
    from flyhpc.errors import ConfigError

    root = tmp_path / "results"
    todo = _tasks("busy", root, 2)
    env.write_text(json.dumps({todo[0].key: "sleep:15"}))
    prof = _profile(tmp_path)
    record = slurm.submit(slurm.plan(todo, prof), job_fn=fault_run)
    _wait_started(env, todo[0].key)
    running = _cli("status", "busy", "--results-root", root)
    assert running.returncode == 75, running.stdout
    with pytest.raises(ConfigError, match="still queued or running"):
        slurm.submit(slurm.plan(todo, prof, skip_done=False))
    other = [dataclasses.replace(t, experiment="index:0,1@200") for t in todo]
    with pytest.raises(ConfigError, match="experiment 'index:0,1,2@200' there, 'index:0,1@200' now"):
        slurm.submit(slurm.plan(other, prof))
    with pytest.raises(ConfigError, match="seed 0 there, 3 now"):
        slurm.submit(slurm.plan([dataclasses.replace(t, seed=3) for t in todo], prof))
    saved = json.loads((root / "busy" / "submission.json").read_text())
    assert len(saved["submissions"]) == len(record["submissions"]) == 1  # nothing was added
    assert slurm.wait(root, "busy", timeout_s=120, poll_s=1).complete
    assert _cli("status", "busy", "--results-root", root).returncode == 0
    assert _cli("status", "busy", "--results-root", root, "--watch", "--interval", "0.5").returncode == 0


def test_scancel_of_a_whole_array_and_cancel_of_only_this_labels_jobs(tmp_path, env):
    """scancel of an array: every task 'cancelled', status/collect exit 4. `flyhpc cancel` signals only
    jobs that are still queued/running and carry this label's job name — not a stranger's job that
    happens to have an id the label once had."""
    from flyhpc.cluster import slurm

    root = tmp_path / "results"
    mine, theirs = _tasks("mine", root, 2), _tasks("theirs", root, 1)
    env.write_text(json.dumps({t.key: "sleep:300" for t in mine + theirs}))
    prof = _profile(tmp_path)
    stranger = slurm.submit(slurm.plan(theirs, prof), job_fn=fault_run)["submissions"][0]["job_id"]
    record = slurm.submit(slurm.plan(mine, prof), job_fn=fault_run)
    array = record["submissions"][0]["job_id"]
    _wait_running(f"{array}_0")
    # a recreated cluster reused an id: the label's record now also names the stranger's job
    sub_path = root / "mine" / "submission.json"
    saved = json.loads(sub_path.read_text())
    saved["submissions"].append({**saved["submissions"][0], "job_id": stranger, "tasks": []})
    sub_path.write_text(json.dumps(saved))
    cancelled = _cli("cancel", "mine", "--results-root", root)
    assert cancelled.returncode == 0 and array in cancelled.stdout and stranger not in cancelled.stdout, cancelled.stdout
    report = slurm.wait(root, "mine", timeout_s=120, poll_s=1)
    assert [r.state for r in report.rows] == ["cancelled", "cancelled"], report.rows
    assert report.exit_code == 4
    assert _squeue_state(stranger) in ("RUNNING", "PENDING")
    subprocess.run(["scancel", stranger], check=True)
    collected = _cli("collect", "mine", "--results-root", root)
    assert collected.returncode == 4 and "cancelled" in collected.stdout
    assert _cli("status", "mine", "--results-root", root).stdout.count("canc") >= 1


def test_concurrent_collects_never_write_a_half_bundle(tmp_path, env):
    from flyhpc.cluster import slurm

    env.write_text("{}")
    root = tmp_path / "results"
    slurm.submit(slurm.plan(_tasks("twice", root, 3), _profile(tmp_path)))
    assert slurm.wait(root, "twice", timeout_s=180, poll_s=1).complete
    procs = [subprocess.Popen([sys.executable, "-m", "flyhpc", "collect", "twice", "--results-root", str(root)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outs = [(p.wait(timeout=120), p.stdout.read()) for p in procs]
    assert any(code == 0 for code, _ in outs), outs
    for code, text in outs:  # the others waited for nothing: they failed at once, naming the lock (75: try again)
        assert code == 0 or (code == 75 and "holds" in text), (code, text)
    subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=root / "twice", check=True)
    assert _cli("verify", "twice", "--results-root", root).returncode == 0


def test_submission_folder_is_private_and_a_writable_one_is_refused(tmp_path, env):
    from flyhpc.bundle import BundlePaths
    from flyhpc.cluster import slurm
    from flyhpc.errors import ConfigError

    env.write_text("{}")
    root = tmp_path / "results"
    todo = _tasks("private", root, 1)
    prof = _profile(tmp_path)
    record = slurm.submit(slurm.plan(todo, prof))
    jobs = Path(record["submissions"][0]["folder"])
    assert jobs.parent == tmp_path / "private" and jobs.stat().st_mode & 0o777 == 0o700
    assert not (root / "private" / "slurm").exists()  # nothing of submitit's in the results
    assert (root / "private" / "submission.json").stat().st_mode & 0o022 == 0
    assert slurm.wait(root, "private", timeout_s=120, poll_s=1).complete
    _wait_ended(record["submissions"][0]["job_id"])
    BundlePaths(root, "private").record(todo[0]).unlink()  # something to resubmit
    jobs.chmod(0o770)
    with pytest.raises(ConfigError, match="group/other-writable"):
        slurm.resubmit(root, "private", ("missing",), profile=prof)
    out = _cli("resubmit", "private", "--results-root", root)
    assert out.returncode == 2 and "chmod go-w" in out.stderr, out.stderr


class Planted:
    """What a group member plants as a job's pickle: unpickling it runs their code (it creates a file)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps(Planted(str(marker))))
    os.chown(path, 65534, 65534)  # a group member's file (nobody stands in for them)


@pytest.mark.skipif(os.geteuid() != 0, reason="planting someone else's file needs root")
def test_a_pickle_planted_by_a_group_member_is_never_run(tmp_path, env):
    """umask 002 (a project group): the label folder is 775, so a group member can rename anything in it
    and plant `<jobid>_submitted.pkl` before the job starts. Before, the job ran it (the pickles lived in
    <label>/slurm/). Now no pickle is there to swap, the job's own folder is private (0700), and a job whose
    folder became writable by others refuses its pickle without loading it."""
    from flyhpc.bundle import BundlePaths
    from flyhpc.cluster import slurm

    env.write_text("{}")
    root, marker = tmp_path / "results", tmp_path / "planted-code-ran"
    before = os.umask(0o002)
    try:
        prof = dataclasses.replace(_profile(tmp_path), sbatch={"additional_parameters": {"hold": True}})
        (task,) = _tasks("shared", root, 1)
        record = slurm.submit(slurm.plan([task], prof))
        job = record["submissions"][0]["job_id"]
        label = root / "shared"
        assert label.stat().st_mode & 0o777 == 0o775  # group-writable, as in a project group
        if (label / "slurm").exists():
            (label / "slurm").rename(label / "slurm.away")
        (label / "slurm").mkdir()
        for planted in (label / "slurm" / f"{job}_submitted.pkl", label / f"{job}_submitted.pkl"):
            _plant(planted, marker)
        subprocess.run(["scontrol", "release", job], check=True)
        report = slurm.wait(root, "shared", timeout_s=150, poll_s=1)
        assert not marker.exists(), "the job ran a pickle a group member planted"
        assert [r.state for r in report.rows] == ["done"], report.rows

        _wait_ended(job)
        BundlePaths(root, "shared").record(task).unlink()  # run it again, and swap its pickle this time
        sp, record = slurm.resubmit(root, "shared", ("missing",), profile=prof)
        assert sp.n_tasks == 1 and len(record["submissions"]) == 2
        sub = record["submissions"][-1]
        folder, job = Path(sub["folder"]), sub["job_id"]
        folder.chmod(0o770)  # a folder others could write to (misconfigured): the job must not trust it
        _plant(folder / f"{job}_submitted.pkl", marker)
        subprocess.run(["scontrol", "release", job], check=True)
        report = slurm.wait(root, "shared", timeout_s=150, poll_s=1)
        assert not marker.exists(), "the job loaded a pickle from a folder others could write"
        (row,) = report.rows
        assert row.state == "failed" and row.log.endswith("_log.err"), row  # status points at the job's stderr
        assert "this job stops without loading it" in Path(row.log).read_text()
        assert _cli("status", "shared", "--results-root", root).returncode == 4
    finally:
        os.umask(before)


@pytest.mark.skipif(_pid_file("slurmdbd") is None,
                    reason="needs root and the cluster of scripts/local-slurm/start.sh")
def test_status_watch_survives_a_slurmdbd_restart(tmp_path, env):
    from flyhpc.cluster import slurm

    root = tmp_path / "results"
    (task,) = _tasks("dbd", root, 1)
    env.write_text(json.dumps({task.key: "sleep:10"}))
    slurm.submit(slurm.plan([task], _profile(tmp_path)), job_fn=fault_run)
    _wait_started(env, task.key)
    os.kill(int(_pid_file("slurmdbd").read_text()), 15)
    time.sleep(2)
    watch = subprocess.Popen([sys.executable, "-m", "flyhpc", "status", "dbd", "--results-root", str(root),
                              "--watch", "--interval", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(6)
    subprocess.run(["/usr/sbin/slurmdbd"], check=True, env={**os.environ, "SLURM_CONF": str(SLURM_DIR / "etc" / "slurm.conf")})
    code = watch.wait(timeout=180)
    text = watch.stdout.read()
    assert code == 0 and "sacct failed" in text and "retrying" in text, text


def test_an_array_sbatch_refuses_leaves_nothing_behind(tmp_path, env):
    from flyhpc.cluster import slurm
    from flyhpc.errors import ConfigError

    env.write_text("{}")
    root = tmp_path / "results"
    prof = _profile(tmp_path, partition="no-such-partition")
    with pytest.raises(ConfigError, match="sbatch refused array 1 of 1 of run label 'refused'.*[Pp]artition"):
        slurm.submit(slurm.plan(_tasks("refused", root, 2), prof))
    assert not (root / "refused").exists()  # no submission.json claiming the label, no orphan pickle
    (tmp_path / "bad.toml").write_text(f'[cluster]\nexecutor = "slurm"\npartition = "no-such-partition"\n'
                                       f'min_time_min = 1\nmax_time_min = 10\npython = "{sys.executable}"\n')
    out = _cli("submit", "--grid", "quick", "--backend", _tasks("x", root, 1)[0].backend, "--experiment",
               "index:0,1,2@200", "--t-run", "0.05", "--n-run", "1", "--rounds", "1", "--connectome",
               root / "tiny-connectome", "--profile", tmp_path / "bad.toml", "--no-container", "--results-root", root,
               "--run-label", "refused")
    assert out.returncode == 2 and "sbatch refused" in out.stderr and "┃" not in out.stdout, (out.stdout, out.stderr)
    assert not (root / "refused").exists()


@pytest.mark.skipif(_pid_file("slurmdbd") is None,
                    reason="needs root and the cluster of scripts/local-slurm/start.sh")
def test_resubmit_waits_out_a_slurmdbd_restart(tmp_path, env):
    from flyhpc.cluster import slurm

    root = tmp_path / "results"
    (task,) = _tasks("dbd2", root, 1)
    env.write_text(json.dumps({task.key: "raise"}))
    prof = _profile(tmp_path)
    (tmp_path / "test.toml").write_text(  # resubmit loads the profile again from its file
        f'[cluster]\nexecutor = "slurm"\narray_parallelism = 8\nmin_time_min = 1\nmax_time_min = 10\n'
        f'signal_delay_s = 0\npython = "{sys.executable}"\nslurm_setup = {json.dumps(list(prof.slurm_setup))}\n'
        f'[default]\ncpus = 1\nmem_gb = 0.25\nbase_s = 5\nper_trial_s = 0\nper_sim_s = 0\n'
        f'image = "flyhpc-test.sif"\n')
    slurm.submit(slurm.plan([task], prof), job_fn=fault_run)
    assert slurm.wait(root, "dbd2", timeout_s=120, poll_s=1).rows[0].state == "failed"
    os.kill(int(_pid_file("slurmdbd").read_text()), 15)
    time.sleep(2)
    resub = subprocess.Popen([sys.executable, "-m", "flyhpc", "resubmit", "dbd2", "--results-root", str(root)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(6)
    subprocess.run(["/usr/sbin/slurmdbd"], check=True, env={**os.environ, "SLURM_CONF": str(SLURM_DIR / "etc" / "slurm.conf")})
    code = resub.wait(timeout=180)
    text = resub.stdout.read()
    assert code == 0 and "sacct failed" in text and "retrying" in text and "1 task(s)" in text, text
    assert slurm.wait(root, "dbd2", timeout_s=120, poll_s=1).complete
