"""Keep Slurm's pre-timeout warning (SIGUSR2) away from the programs a Brian2 backend starts.

Slurm sends the warning that the job asks for (`--signal=USR2@<delay>`) to every process of the job
step (proctrack/cgroup), not only to the task's Python process. The task process handles it (the job
side notes it), but a handler is not inherited across exec: make, the compilers and the standalone
binary run with SIGUSR2's default action, which ends them. Brian2 then raises "Project compilation
failed (error code: 12)" or "Project run failed" and the task looks like an ordinary failure instead of
the timeout it is heading for. An *ignored* disposition (SIG_IGN) is inherited across fork and exec;
that is what this module arranges, for SIGUSR2 only.

How Brian2 starts its children (read from the installed sources):

* Brian2 2.8 / 2.9 `cpp_standalone` (brian2/devices/cpp_standalone/device.py) and Brian2CUDA 1.0a7's
  `cuda_standalone`, which inherits both methods unchanged: `CPPStandaloneDevice.compile_source` runs
  ``os.system(f"{make_cmd_unix} {make_args}")`` (a /bin/sh command line; make then starts g++ or nvcc),
  and `CPPStandaloneDevice.run` runs ``subprocess.call(run_cmd_unix + run_args)``. Neither accepts a
  preexec hook, but both commands are preferences (`devices.cpp_standalone.make_cmd_unix` and
  `run_cmd_unix`). `brian2_children_ignore_usr2` rewrites them for its duration so that /bin/sh first
  runs ``trap '' USR2`` (sets SIG_IGN) and then runs make, or execs the binary. The children ignore
  the warning while the task process keeps its own handler and still sees the warning at once.
  Not covered: the few-millisecond compiler probes Brian2 runs once per process before the first build
  (`brian2/codegen/cpp_prefs.py`: flag checks through distutils, the C99 check through os.system).
  Also not covered: a warning that lands in the sub-millisecond gap between the fork of that /bin/sh
  and its `trap`. Slurm sends the warning once per job.
* Brian2GeNN 1.7 (brian2genn/device.py): `GeNNDevice.compile_source` runs genn-buildmodel.sh and
  make, and `GeNNDevice.run` runs ./main, all through `subprocess.check_call`/`call` with fixed
  argument lists. There is no preference or hook to wrap them. `usr2_ignored_in_process` sets SIG_IGN
  in the task process itself (main thread only) while a trial is built and run, and restores the
  previous handler afterwards. A warning arriving meanwhile is discarded, so the job side does not
  see it. Blocking the signal instead of ignoring it would defer it rather than lose it, but it does
  not protect the build: GNU make resets its signal mask at start (checked with make 4.3), so a
  pending SIGUSR2 still ends it.

The warning is only a warning: Slurm's SIGTERM and then SIGKILL at the time limit, and scancel's
SIGTERM, are left alone and still end every child and the task. Entry points:
`brian2_children_ignore_usr2`, `usr2_ignored_in_process`, `ignoring_shell_command`, `ignoring_argv`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence

SIGNAL = signal.SIGUSR2
TRAP = "trap '' USR2"
SHELL = "/bin/sh"
# $0 of the wrapping shell: names the wrapper in `ps` until it execs the real program.
ARGV0 = "flyhpc-ignore-usr2"
_EXEC_SCRIPT = f'{TRAP}; exec "$@"'


def ignoring_shell_command(command: str) -> str:
    """A /bin/sh command line that runs `command` with SIGUSR2 ignored (idempotent)."""
    return command if command.startswith(TRAP + ";") else f"{TRAP}; {command}"


def ignoring_argv(argv: str | Sequence[str]) -> list[str]:
    """An argument list that execs `argv` (a program or a list) with SIGUSR2 ignored (idempotent).

    Arguments appended to the result reach the program unchanged (they are the shell's "$@").
    """
    argv = [argv] if isinstance(argv, str) else list(argv)
    if argv[:4] == [SHELL, "-c", _EXEC_SCRIPT, ARGV0]:
        return argv
    return [SHELL, "-c", _EXEC_SCRIPT, ARGV0, *argv]


@contextlib.contextmanager
def brian2_children_ignore_usr2() -> Iterator[None]:
    """While open, Brian2's standalone make command and run command start with SIGUSR2 ignored.

    Rewrites the preferences `devices.cpp_standalone.make_cmd_unix` and `run_cmd_unix` (which
    Brian2CUDA's device uses as well) and restores the caller's values on exit. Leaves the signal
    handling of the calling process alone.
    """
    from brian2 import prefs

    node = prefs.devices.cpp_standalone
    saved = (node.make_cmd_unix, node.run_cmd_unix)
    node.make_cmd_unix = ignoring_shell_command(saved[0])
    node.run_cmd_unix = ignoring_argv(saved[1])
    try:
        yield
    finally:
        node.make_cmd_unix, node.run_cmd_unix = saved


@contextlib.contextmanager
def usr2_ignored_in_process() -> Iterator[None]:
    """While open, this process ignores SIGUSR2, and so do the children it starts (main thread only).

    For Brian2 devices whose children cannot be wrapped (Brian2GeNN). A SIGUSR2 that arrives while
    this is open is lost. The previous handler is restored on exit. Outside the main thread, or when
    the previous handler was not installed from Python (it could not be restored), this does nothing.
    """
    previous = signal.getsignal(SIGNAL)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    signal.signal(SIGNAL, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(SIGNAL, previous)
