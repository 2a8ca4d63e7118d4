"""Result bundles on disk: every file name of a run label.

`BundlePaths` is the one owner of file names under `<results_root>/<label>/` (round folders,
parquet + record + log per task, manifest, checksums, results CSV, lock, submission); what the files
hold and what they say about a task is `flyhpc.results` (formats and readers). Writes nothing (see
collect.py, worker.py) and imports no backend. Entry points: `BundlePaths`, `check_label`, `file_stem`,
`round_folder`, `display_path`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple
from flyhpc.errors import ConfigError
_STEM_RE = re.compile(r"^(?P<backend>[a-z0-9]+)_t(?P<t>\d+\.\d+(?:e[-+]?\d+)?)s_n(?P<n>\d+)$")
_CHUNK_RE = re.compile(r"^chunk_\d{5,}$")  # screen chunks (flyhpc.screens.task)

_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_label(run_label: str) -> str:
    """Return `run_label` if it is a safe folder name, else raise ConfigError.

    A label is 1-128 characters of letters, digits, `_`, `-` and `.`, starting with a letter or
    digit, and never contains `..`: no `/`, no shell metacharacters, no way out of the results root.
    """
    if not isinstance(run_label, str) or not _LABEL_RE.fullmatch(run_label) or ".." in run_label:
        raise ConfigError(f"run label {run_label!r} is not allowed: use 1-128 letters, digits, '_', '-' or '.', "
                          "starting with a letter or digit, without '..', '/' or shell metacharacters")
    return run_label



def file_stem(backend: str, t_run_s: float, n_run: int) -> str:
    """The seed's file stem of a task, t_run always written as a float: `brian2cpp_t1.0s_n1`."""
    return f"{backend}_t{float(t_run_s)}s_n{int(n_run)}"


def round_folder(round_: int) -> str:
    """The folder of a round's benchmark tasks inside their label: `round_01`."""
    return f"round_{int(round_):02d}"


class TaskFiles(NamedTuple):
    """The files of one task: its parquet, its record beside it, its log."""

    parquet: Path
    record: Path
    log: Path


class BundlePaths:
    """Every path of one run label's bundle under `results_root`.

    Layout: `<root>/<label>/round_XX/<stem>.parquet|.json|.log` (benchmark tasks; screen chunks under
    `chunks/`), `<root>/<label>/manifest.csv`, `checksums.sha256`, `benchmark-results.csv`, `submission.json`,
    `.flyhpc.label-lock`, `comparisons/`; a screen label also has `screen-plan.parquet` and, once collected,
    `screen.parquet`, `experiments.csv`, `readout.csv` and `effects.csv`. The label is checked (no `/`,
    `..` or shell metacharacters).
    """

    def __init__(self, results_root: str | Path, run_label: str):
        self.results_root = Path(results_root)
        self.run_label = check_label(run_label)
        self.label_dir = self.results_root / run_label
        self.manifest = self.label_dir / "manifest.csv"
        self.checksums = self.label_dir / "checksums.sha256"
        self.results_csv = self.label_dir / "benchmark-results.csv"
        self.submission = self.label_dir / "submission.json"
        self.plan_log = self.label_dir / "plan.log"  # every task key ever planned, one a line: never shrinks
        self.lock = self.label_dir / ".flyhpc.label-lock"
        self.comparisons = self.label_dir / "comparisons"
        self.screen_plan = self.label_dir / "screen-plan.parquet"
        self.screen_rates = self.label_dir / "screen.parquet"
        self.screen_experiments = self.label_dir / "experiments.csv"
        self.screen_readout = self.label_dir / "readout.csv"
        self.screen_effects = self.label_dir / "effects.csv"
        self.screen_neuron_effects = self.label_dir / "neuron-effects.parquet"

    def check_own_folder(self) -> None:
        """Refuse a label folder that is a symbolic link: through it, this label would read, report and
        overwrite another label's files under its own name.

        Raises
        ------
        ConfigError
            Naming the link and where it points.
        """
        if self.label_dir.is_symlink():
            raise ConfigError(f"refusing run label {self.run_label!r}: {self.label_dir} is a symbolic link to "
                              f"{self.label_dir.readlink()}, so it would read and overwrite another label's files; "
                              "use the label it points to, or replace the link by a folder of its own")

    def require_benchmark(self, command: str) -> None:
        """Refuse a screen label in a command that reads benchmark labels (naming what it holds instead).

        Raises
        ------
        ConfigError
            The label holds a screen (it has a screen plan).
        """
        if self.screen_plan.is_file():
            raise ConfigError(f"run label {self.run_label!r} holds a screen, not benchmark tasks: `flyhpc {command}` "
                              f"reads benchmark labels; a screen's results are {self.screen_rates.name}, "
                              f"{self.screen_effects.name} and {self.screen_readout.name} after `flyhpc collect "
                              f"{self.run_label}`")

    def round_dir(self, round_: int) -> Path:
        return self.label_dir / round_folder(round_)

    def task_files(self, folder: str, stem: str) -> TaskFiles:
        """The parquet, record and log of the task whose files are `<folder>/<stem>.*` (the worker's one call)."""
        base = self.label_dir / folder
        return TaskFiles(base / f"{stem}.parquet", base / f"{stem}.json", base / f"{stem}.log")

    def parquet(self, task) -> Path:
        """The task's parquet: round_XX/<backend>_t<t>s_n<n>.parquet (a chunk's: chunks/chunk_NNNNN.parquet)."""
        return self.task_files(task.folder, task.stem).parquet

    def record(self, task) -> Path:
        """The task record (JSON) next to its parquet."""
        return self.task_files(task.folder, task.stem).record

    def log(self, task) -> Path:
        """The task's log (phases, and the traceback if it failed)."""
        return self.task_files(task.folder, task.stem).log

    def spike_file(self, round_: int, backend: str, t_run_s: float, n_run: int) -> Path:
        """The parquet of a grid point, by value (for comparisons)."""
        return self.round_dir(round_) / f"{file_stem(backend, t_run_s, n_run)}.parquet"

    def record_files(self) -> list[Path]:
        """Every task record of the label (benchmark tasks and screen chunks), sorted by path."""
        return sorted([p for p in self.label_dir.glob("round_*/*.json") if _STEM_RE.match(p.stem)] +
                      [p for p in self.label_dir.glob("chunks/*.json") if _CHUNK_RE.match(p.stem)])

    def task_parquets(self) -> list[Path]:
        """Every task parquet of the label (benchmark spikes, screen chunk rates), sorted by path."""
        return sorted([p for p in self.label_dir.glob("round_*/*.parquet") if _STEM_RE.match(p.stem)] +
                      [p for p in self.label_dir.glob("chunks/*.parquet") if _CHUNK_RE.match(p.stem)])

    def relative(self, path: Path) -> str:
        """`path` relative to the label folder, with `/` separators."""
        return Path(path).resolve().relative_to(self.label_dir.resolve()).as_posix()


def display_path(path: Path) -> str:
    """A path relative to the working directory when it lies below it, else as given."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
