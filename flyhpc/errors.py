"""The flyhpc error hierarchy: one root, short reasons, one exit code per family.

Library code raises these and never prints or exits; `flyhpc.cli` turns them into one-line
messages with the exit code below. Any other exception is a bug and keeps its traceback.
"""


class FlyhpcError(Exception):
    """Root of every error flyhpc raises on purpose."""

    exit_code = 1


class ConfigError(FlyhpcError):
    """Bad input: a flag, a neuron id, a duration, a file that is not what it should be."""

    exit_code = 2


class UnknownBackendError(ConfigError):
    """A backend key that is not in the registry."""


class DataError(FlyhpcError):
    """A data file is missing, malformed, truncated or fails its checksum."""

    exit_code = 2


class BackendUnavailable(FlyhpcError):
    """The simulator behind a backend cannot be imported or has no device here."""

    exit_code = 3


class UnsupportedFeature(FlyhpcError):
    """The backend exists but cannot do what was asked (a precision, a drive mode)."""

    exit_code = 3


class TaskFailed(FlyhpcError):
    """A benchmark task ended in error; carries its key and log path."""

    exit_code = 4

    def __init__(self, message: str, task_key: str = "", log_path: str = ""):
        super().__init__(message)
        self.task_key = task_key
        self.log_path = log_path


class IntegrityError(FlyhpcError):
    """A file's sha256 or size does not match its record."""

    exit_code = 5


class OutputError(FlyhpcError):
    """flyhpc cannot write its output: the disk or quota is full, the file system is read-only, or permission is
    denied. Whatever was half-written has been removed (EX_IOERR)."""

    exit_code = 74


class Busy(FlyhpcError):
    """Try again later: another flyhpc command holds the label's lock, or the scheduler (slurmdbd, the
    controller) does not answer. Nothing was written (EX_TEMPFAIL, as for tasks still running)."""

    exit_code = 75


class SchedulerUnavailable(FlyhpcError):
    """Slurm's commands (sacct, squeue, scancel, sbatch) are not installed here."""

    exit_code = 3
