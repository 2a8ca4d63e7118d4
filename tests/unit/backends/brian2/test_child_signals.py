"""Slurm's pre-timeout warning (SIGUSR2) must not end the programs a Brian2 backend starts.

Under Slurm the warning reaches every process of the job step. Here it is sent the same way, with
os.kill, to the real processes: first to shells and `sleep` started through the wrappers of
`child_signals`, then to make, the compilers and the standalone binary of a real (tiny) brian2cpp build
and run. Those are found under this process in /proc. The build and the run must still succeed, and
this process's own SIGUSR2 handler (the job side's) must still see the warning. SIGTERM must still end
the binary, and the failed run must leave no files behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from flyhpc.backends.brian2.child_signals import (brian2_children_ignore_usr2, ignoring_argv, ignoring_shell_command,
                                           usr2_ignored_in_process)

SHELLS = {"sh", "dash", "bash"}


def ignored(pid: int, sig: int) -> bool:
    """Whether process `pid` ignores `sig` (SigIgn of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    raise AssertionError(f"no SigIgn line for {pid}")


def wait_for_exec(pid: int, comm: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}/comm").read_text().strip() != comm:
        assert time.monotonic() < deadline, f"{pid} never became {comm!r}"
        time.sleep(0.005)


@pytest.fixture
def usr2_seen():
    """A SIGUSR2 handler in this process, as the job side installs one; yields the list of arrivals."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
    try:
        yield seen
    finally:
        signal.signal(signal.SIGUSR2, previous)


# -- the wrappers, on plain programs ----------------------------------------------------------------

def test_shell_command_ignores_usr2_and_keeps_the_exit_status():
    assert os.waitstatus_to_exitcode(os.system("kill -USR2 $$; exit 7")) == -signal.SIGUSR2  # the problem
    assert os.waitstatus_to_exitcode(os.system(ignoring_shell_command("kill -USR2 $$; exit 7"))) == 7
    assert os.waitstatus_to_exitcode(os.system(ignoring_shell_command("kill -TERM $$; exit 7"))) == -signal.SIGTERM
    once = ignoring_shell_command("make")
    assert ignoring_shell_command(once) == once


def test_argv_execs_the_program_with_usr2_ignored_and_sigterm_still_ends_it():
    proc = subprocess.Popen(ignoring_argv(["sleep", "60"]))
    try:
        wait_for_exec(proc.pid, "sleep")
        assert ignored(proc.pid, signal.SIGUSR2) and not ignored(proc.pid, signal.SIGTERM)
        os.kill(proc.pid, signal.SIGUSR2)
        time.sleep(0.2)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_argv_passes_arguments_through_unchanged():
    argv = ignoring_argv("printf") + ["%s|", "a b", "$HOME", "'q'", ""]
    assert subprocess.run(argv, capture_output=True, text=True, check=True).stdout == "a b|$HOME|'q'||"
    assert ignoring_argv(ignoring_argv(["./main"])) == ignoring_argv("./main")


def test_brian2_command_preferences_are_wrapped_then_restored():
    b2 = pytest.importorskip("brian2")
    node = b2.prefs.devices.cpp_standalone
    before = (node.make_cmd_unix, node.run_cmd_unix)
    with pytest.raises(RuntimeError, match="inside"):
        with brian2_children_ignore_usr2():
            assert node.make_cmd_unix == ignoring_shell_command(before[0])
            assert node.run_cmd_unix == ignoring_argv(before[1])
            with brian2_children_ignore_usr2():  # nested: not wrapped twice
                assert node.make_cmd_unix == ignoring_shell_command(before[0])
            raise RuntimeError("inside")
    assert (node.make_cmd_unix, node.run_cmd_unix) == before


def test_process_wide_ignore_reaches_children_and_is_undone(usr2_seen):
    handler = signal.getsignal(signal.SIGUSR2)
    with usr2_ignored_in_process():
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
        proc = subprocess.Popen(["sleep", "60"])
        try:
            wait_for_exec(proc.pid, "sleep")
            os.kill(proc.pid, signal.SIGUSR2)
            time.sleep(0.2)
            assert proc.poll() is None and ignored(proc.pid, signal.SIGUSR2)
        finally:
            proc.kill()
            proc.wait()
    assert signal.getsignal(signal.SIGUSR2) is handler
    os.kill(os.getpid(), signal.SIGUSR2)
    time.sleep(0.05)
    assert usr2_seen == [signal.SIGUSR2]

    def elsewhere():  # signal dispositions can only be changed from the main thread: no-op there
        with usr2_ignored_in_process():
            outcome.append(signal.getsignal(signal.SIGUSR2))
    outcome: list = []
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert outcome == [handler]


# -- a real brian2cpp build and run under fire ---------------------------------------------------------

def process_table() -> dict[int, tuple[str, int]]:
    """{pid: (comm, ppid)} of every process in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            close = stat.rindex(")")
            table[int(name)] = (stat[stat.index("(") + 1:close], int(stat[close + 2:].split()[1]))
    return table


class Sender(threading.Thread):
    """Sends `sig` once to every process under this one that a Brian2 build or run started:
    processes named in `names` and everything under a `make`. Not sent: direct children that are
    still a shell (the wrapper before its first command). Also sends `sig` once to this process
    itself when `to_self`. Records (pid, comm) of each process signalled."""

    def __init__(self, sig: int, names: set[str], to_self: bool = False):
        super().__init__(daemon=True)
        self.sig, self.names, self.to_self = sig, names, to_self
        self.hit: dict[int, str] = {}
        self.halt = threading.Event()

    def targets(self) -> dict[int, str]:
        table, me = process_table(), os.getpid()
        out = {}
        for pid, (comm, ppid) in table.items():
            chain, p = [], pid
            while p in table and p != me and p > 1:
                chain.append(table[p][0])
                p = table[p][1]
            if p != me or pid == me:
                continue  # not under this process
            if ppid == me and comm in SHELLS:
                continue
            if comm in self.names or "make" in chain[1:]:
                out[pid] = comm
        return out

    def run(self) -> None:
        while not self.halt.is_set():
            for pid, comm in self.targets().items():
                if pid not in self.hit:
                    try:
                        os.kill(pid, self.sig)
                    except ProcessLookupError:
                        continue
                    self.hit[pid] = comm
                    if self.to_self:
                        os.kill(os.getpid(), self.sig)
                        self.to_self = False
            time.sleep(0.002)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.join()


N_STEPS = 1_000_000  # 100 s of model time: the binary runs long enough (about 1 s) to be signalled
EXPECTED = [(1, 0), (20, 1)]  # neuron 0 kicked at step 0 spikes at 1; its 5455 synapses fire neuron 1 at 20


@pytest.fixture(scope="module")
def tiny():
    """Neuron 0 (driven) with 5455 synapses onto neuron 1; two trials that kick neuron 0 once."""
    pytest.importorskip("brian2")
    from flyhpc.backends.brian2.cpp import Brian2CppBackend
    from flyhpc.data.connectome import connectome_from_edges
    from flyhpc.drive import Drive, TrialDrive
    from flyhpc.model import Experiment, Params
    from flyhpc.network import build_network

    probe = Brian2CppBackend.probe()
    if not probe.ok:
        pytest.skip(probe.reason)
    ids = np.array([1000, 1001], dtype=np.int64)
    conn = connectome_from_edges(ids, np.array([0]), np.array([1]), np.array([5455]), source="tiny",
                                 digest="tiny-child-signals")
    spec = build_network(conn, Experiment(name="tiny", activate=(1000,), rate_hz=150.0), Params())
    trials = tuple(TrialDrive(trial=k, steps=np.array([step], np.int64), neurons=np.array([0], np.int32))
                   for k, step in enumerate((0, 3)))
    return spec, Drive(n_steps=N_STEPS, base_seed=0, round=1, trials=trials)


@pytest.fixture
def backend(tiny, tmp_path_factory):
    from flyhpc.backends.brian2.cpp import Brian2CppBackend

    root = tmp_path_factory.getbasetemp() / "child-signals-builds"
    b = Brian2CppBackend(n_threads=1, work_root=root)
    yield b
    b.close()


def test_brian2cpp_build_survives_usr2_to_make_and_the_compilers(tiny, backend, usr2_seen):
    spec, _ = tiny
    with Sender(signal.SIGUSR2, {"make"}, to_self=True) as sender:
        report = backend.build(spec, N_STEPS)
    comms = set(sender.hit.values())
    assert {"make", "cc1plus"} <= comms, comms
    assert not report.cached and (Path(report.work_dir) / "main").is_file()
    assert usr2_seen == [signal.SIGUSR2]  # this process kept its own handler


def test_brian2cpp_run_survives_usr2_to_the_binary(tiny, backend, usr2_seen):
    spec, drive = tiny
    backend.build(spec, N_STEPS)
    with Sender(signal.SIGUSR2, {"main"}) as sender:
        backend.run(drive)
    assert sorted(sender.hit.values()) == ["main", "main"]  # one binary per trial
    table = backend.spikes()
    for trial, shift in ((0, 0), (1, 3)):
        got = table.of_trial(trial)
        assert list(zip(got.step.tolist(), got.neuron.tolist())) == [(s + shift, n) for s, n in EXPECTED]
    assert usr2_seen == []


def test_brian2cpp_run_ended_by_sigterm_fails_and_leaves_no_files(tiny, backend):
    from flyhpc.backends.brian2.cpp import host_name

    spec, drive = tiny
    report = backend.build(spec, N_STEPS)
    work_dir = Path(report.work_dir)
    gone = subprocess.Popen(["true"])
    gone.wait()
    litter = work_dir / f"results_{host_name()}_{gone.pid}_0123abcd"  # a run killed outright, earlier
    litter.mkdir()
    with Sender(signal.SIGTERM, {"main"}) as sender:
        with pytest.raises(RuntimeError, match="Project run failed"):
            backend.run(drive)
    assert list(sender.hit.values()) == ["main"]
    assert not litter.exists()
    assert not [p.name for p in work_dir.iterdir() if p.name.startswith("results_")]
    assert not [p.name for p in (work_dir / "static_arrays").iterdir() if p.name.startswith("init_")]
