"""Result bundles on disk: every file name of a run label, and what a task's files say about it.

`BundlePaths` is the one owner of file names under `<results_root>/<label>/` (round folders,
parquet + record + log per task, manifest, checksums, results CSV, lock, submission); `read_record`
and `disk_state` judge a task from its files alone (the one such judgement: status, submit, resubmit,
collect and verify all use it through `flyhpc.cluster.status.status`). Writes nothing (see collect.py,
worker.py). Entry points: `BundlePaths`, `read_record`, `disk_state`, `framework_name`, `display_path`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flyhpc import backends as registry
from flyhpc.errors import BackendUnavailable, ConfigError, DataError
from flyhpc.files import sha256_file

RECORD_FORMAT = 1
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


def framework_name(backend: str, device: str = "") -> str:
    """Display name of a backend as the seed's CSV writes it: its `caps.display_name` for a run on `device`
    (`PyTorch (CUDA)` / `PyTorch (CPU)`); "<key> (<DEVICE>)" for a key not registered or not importable."""
    if backend in registry.REGISTRY:
        try:
            return registry.get(backend).caps.framework(device)
        except BackendUnavailable:
            pass
    return f"{backend} ({(device or 'cpu').split(':')[0].upper()})"


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
        self.jobs_dir = self.label_dir / "slurm"  # the jobs' pickles and logs: private (0700)
        self.screen_plan = self.label_dir / "screen-plan.parquet"
        self.screen_rates = self.label_dir / "screen.parquet"
        self.screen_experiments = self.label_dir / "experiments.csv"
        self.screen_readout = self.label_dir / "readout.csv"
        self.screen_effects = self.label_dir / "effects.csv"
        self.screen_neuron_effects = self.label_dir / "neuron-effects.parquet"

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
        return self.label_dir / f"round_{int(round_):02d}"

    def _file(self, task, suffix: str) -> Path:
        return self.label_dir / task.folder / f"{task.stem}{suffix}"

    def parquet(self, task) -> Path:
        """The task's spike parquet: round_XX/<backend>_t<t>s_n<n>.parquet."""
        return self._file(task, ".parquet")

    def record(self, task) -> Path:
        """The task record (JSON) next to its parquet."""
        return self._file(task, ".json")

    def log(self, task) -> Path:
        """The task's log (phases, and the traceback if it failed)."""
        return self._file(task, ".log")

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


def read_record(path: Path) -> dict[str, Any]:
    """A task record as a dict.

    Raises
    ------
    DataError
        The file is missing, not JSON, or lacks the fields every record has.
    """
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: no task record") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: task record is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: task record is not a JSON object")
    missing = [k for k in ("status", "backend", "t_run_s", "n_run", "round", "run_label") if k not in data]
    missing += [k for k in _SCREEN_RECORD_KEYS if data.get("kind") == "screen" and k not in data]
    if missing:
        raise DataError(f"{path}: task record lacks {', '.join(missing)}")
    return data


def disk_state(record_path: Path, parquet_path: Path, *, key: str | None = None, deep: bool = False,
               parquet_sha256: str | None = None) -> tuple[str, str]:
    """Judge a task from its files alone: (state, reason). The one place that reads a task's files.

    States: "done"; "error" (the record says the task failed); "interrupted" (the record says a
    signal ended it: `timeout: ...` / `cancelled: ...`); "stale" (the record was made for another
    task key: another experiment, seed, connectome or result-changing option); "missing" (no
    record: never ran, or still running); "corrupt" (anything else: unreadable record, parquet
    missing, of another size, with a damaged footer or another row count than the record's spike
    count, or — when hashed — another sha256).

    The cheap check (size, parquet footer, row count) always runs; the parquet is hashed when `deep`
    or when the caller passes its sha256 (`parquet_sha256`, so nothing is hashed twice).
    """
    record_path, parquet_path = Path(record_path), Path(parquet_path)
    if not record_path.exists():
        return "missing", "no task record"
    try:
        rec = read_record(record_path)
    except DataError as exc:
        return "corrupt", str(exc)
    if key is not None and rec.get("key") != key:
        return "stale", (f"{record_path.name} was written for task {rec.get('key')!r}, not {key!r} "
                         "(another experiment, seed, connectome or result-changing option)")
    status = str(rec["status"])
    if status.startswith("error"):
        return "error", status
    if status.startswith(INTERRUPTED_PREFIXES):
        return "interrupted", status
    if status != "success":
        return "corrupt", f"{record_path.name}: unknown status {status!r}"
    return _parquet_state(rec, parquet_path, deep, parquet_sha256)


_SCREEN_RECORD_KEYS = ("screen", "plan_sha256", "first", "stop")

# Record status prefixes of a task ended by a signal (see worker.py): Slurm's word for it follows.
INTERRUPTED_PREFIXES = ("timeout:", "cancelled:")


def _parquet_state(rec: dict, parquet_path: Path, deep: bool, parquet_sha256: str | None) -> tuple[str, str]:
    import pyarrow.parquet as pq

    name = parquet_path.name
    if not parquet_path.is_file():
        return "corrupt", f"{name}: missing although its record says success"
    size = parquet_path.stat().st_size
    if size != rec.get("parquet_bytes", -1):
        return "corrupt", f"{name}: {size} bytes, its record says {rec.get('parquet_bytes')}"
    try:
        rows = pq.ParquetFile(parquet_path).metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - any reader failure means a damaged footer
        return "corrupt", f"{name}: unreadable parquet footer ({type(exc).__name__}: {exc})"
    expected_rows = rec.get("parquet_rows", rec.get("spikes"))  # a spike parquet has a row per spike
    if rows != expected_rows:
        unit = "rows" if "parquet_rows" in rec else "spikes"
        return "corrupt", f"{name}: {rows} rows, its record says {expected_rows} {unit}"
    for extra, entry in sorted((rec.get("extra_files") or {}).items()):  # a screen chunk's other files
        path = parquet_path.parent / extra
        if not path.is_file() or path.stat().st_size != entry.get("bytes"):
            return "corrupt", f"{extra}: missing or not the {entry.get('bytes')} bytes its record says"
        if deep and sha256_file(path) != entry.get("sha256"):
            return "corrupt", f"{extra}: sha256 differs from its record"
    if not deep and parquet_sha256 is None:
        return "done", ""
    if (parquet_sha256 or sha256_file(parquet_path)) != rec.get("parquet_sha256"):
        return "corrupt", f"{name}: sha256 differs from its record"
    return "done", ""
