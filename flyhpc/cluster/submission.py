"""A run label's submission record (`submission.json`): every planned task and the label's identity.

The record is what status, collect and verify judge a label against (every task it ever planned)
and what resubmit follows (the profile, the earlier time limits). One label holds one experiment,
seed, connectome and set of result-changing options (`label_identity`, `check_identity`); a record
that someone else could have written is refused before it is followed (`load_submission(trusted=True)`),
and so is a label folder that is a link or holds another label's record. Beside it `plan.log` lists every
task key the label ever planned, so a task removed from submission.json by hand is noticed (`lost_tasks`);
each task entry is its kind's (`flyhpc.kinds.task_to_dict` / `task_from_dict`). Entry points:
`load_submission`, `label_kind`, `label_identity`, `check_identity`, `record_plan`, `updated_record`,
`write_record`, `lost_tasks`, `profile_record`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import subprocess
from pathlib import Path
from typing import Any, Sequence

from flyhpc.bundle import BundlePaths
from flyhpc.cluster.profiles import ClusterProfile
from flyhpc.errors import ConfigError
from flyhpc.files import check_private, label_lock, write_json_atomic, write_text_atomic
from flyhpc.kinds import DEFAULT_KIND, kind, task_to_dict


def git_revision() -> str:
    """The commit of the flyhpc checkout this code runs from ('' for an installed wheel)."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return ""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def load_submission(results_root: str | Path, run_label: str, trusted: bool = False) -> dict:
    """The label's submission.json.

    `trusted=True` (commands that follow its profile source and setup lines) first checks that the
    file is yours and not writable by others (`files.check_private`).

    Raises
    ------
    ConfigError
        The label folder is a symbolic link; the label was never submitted (no submission.json); the file
        is not valid JSON or not a submission record (an object with a "tasks" object and a "submissions"
        list), names another run label, or (trusted) someone else could have written it.
    """
    paths = BundlePaths(results_root, run_label)
    paths.check_own_folder()
    path = Path(paths.submission)
    if not path.is_file():
        raise ConfigError(f"no submission for run label {run_label!r}: {path} does not exist "
                          "(submit it first with `flyhpc submit`)")
    if trusted:
        check_private(path, "follow its profile and setup lines")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    _check_record(record, path)
    if record.get("run_label", run_label) != run_label:
        raise ConfigError(f"refusing run label {run_label!r}: {path} is the submission of run label "
                          f"{record['run_label']!r} (a copied, moved or linked label folder); a label folder holds "
                          "its own label only: use that label, or submit into a new folder")
    return record


def _check_record(record: Any, path: Path) -> None:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{path}: not valid: {what}; it is not a submission record flyhpc wrote (restore it from "
                           "a backup, or submit again under another --run-label)")

    if not isinstance(record, dict):
        raise bad(f"a JSON {type(record).__name__}, not an object")
    if not isinstance(record.get("tasks"), dict):
        raise bad('no "tasks" object')
    if not isinstance(record.get("submissions"), list):
        raise bad('no "submissions" list')
    for key, task in record["tasks"].items():
        if not isinstance(task, dict):
            raise bad(f"task {key!r} is a {type(task).__name__}, not an object")
    for n, sub in enumerate(record["submissions"]):
        if not (isinstance(sub, dict) and isinstance(sub.get("tasks"), list) and isinstance(sub.get("executor"), str)):
            raise bad(f"submission {n} has no executor or task list")


def write_record(paths: BundlePaths, record: dict) -> None:
    """Write submission.json (atomically), then add its new task keys to plan.log (call with the label's lock).

    The log is written second, so a failed write never makes it name a task that submission.json lacks."""
    write_json_atomic(paths.submission, record, mode=0o644)
    logged = _logged(paths)
    new = [key for key in record["tasks"] if key not in set(logged)]
    if new:
        write_text_atomic(paths.plan_log, "".join(f"{key}\n" for key in [*logged, *new]), mode=0o644)


def _logged(paths: BundlePaths) -> list[str]:
    try:
        return [line for line in Path(paths.plan_log).read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def lost_tasks(paths: BundlePaths, record: dict) -> list[str]:
    """Task keys plan.log lists but the label's submission.json no longer holds (removed by hand)."""
    return [key for key in _logged(paths) if key not in record["tasks"]]


def label_kind(results_root: str | Path, run_label: str) -> type:
    """The task class (`flyhpc.kinds.kind`) of the label's tasks, from its submission.json.

    Raises
    ------
    ConfigError
        The label was never submitted.
    """
    return record_kind(load_submission(results_root, run_label))


def record_kind(record: dict) -> type:
    """The task class of a loaded submission.json (`load_submission`): its identity's kind, else its tasks'."""
    name = record.get("identity", {}).get("kind")
    if name is None:
        name = next((t.get("kind", DEFAULT_KIND) for t in record["tasks"].values()), DEFAULT_KIND)
    return kind(name)


def label_identity(tasks: Sequence[Any]) -> dict:
    """What every task of a label must share (`task.identity()`: for a grid the experiment, seed and connectome;
    for a screen its plan, seed and connectome) and the result-changing options of each backend.

    Raises
    ------
    ConfigError
        The tasks themselves disagree (one submission mixing experiments).
    """
    from flyhpc import backends

    ident: dict[str, Any] = {}
    for task in tasks:
        options = ident.setdefault("options", {})
        mine = {"kind": task.kind, **task.identity()}
        for k, v in mine.items():
            if ident.setdefault(k, v) != v:
                raise ConfigError(f"one submission mixes {k} {ident[k]!r} and {v!r}; a run label holds one")
        opts = json.loads(json.dumps(backends.result_options(task.backend, dict(task.backend_options)), default=str))
        if options.setdefault(task.backend, opts) != opts:
            raise ConfigError(f"one submission gives backend {task.backend} two option sets")
    return ident


def check_identity(recorded: dict | None, wanted: dict, run_label: str) -> None:
    """Refuse adding tasks to a label that was made for another experiment, seed, connectome or options.

    Raises
    ------
    ConfigError
        Naming each difference and what to do (another --run-label).
    """
    if not recorded:
        return
    diffs = []
    defaults = {"kind": DEFAULT_KIND, "drive_version": 1}  # what a record older than the key meant
    for key in sorted((set(recorded) | set(wanted)) - {"options"}):
        there, now = recorded.get(key, defaults.get(key)), wanted.get(key, defaults.get(key))
        if there != now:
            diffs.append(f"{key} {there!r} there, {now!r} now")
            if key == "drive_version":
                diffs[-1] += " (its input trains are not this flyhpc's; the label's files stay readable)"
    for backend, opts in wanted.get("options", {}).items():
        before = recorded.get("options", {}).get(backend)
        if before is not None and before != opts:
            diffs.append(f"{backend} options {before} there, {opts} now")
    if diffs:
        raise ConfigError(f"run label {run_label!r} already holds other results: " + "; ".join(diffs) +
                          ". A label has one meaning: use another --run-label")


def profile_record(profile: ClusterProfile) -> dict:
    """The profile as submission.json keeps it (resubmit loads it again from its source)."""
    rec = dataclasses.asdict(profile)
    rec["sbatch"] = dict(profile.sbatch)
    return rec


def record_plan(tasks: Sequence[Any], executor: str = "bench") -> dict:
    """Record tasks run outside submit (e.g. `flyhpc bench`) in the label's submission.json.

    So that status, collect and verify know every planned task. Same identity rule as `submit`.
    """
    task = tasks[0]
    paths = BundlePaths(task.results_root, task.run_label)
    with label_lock(paths.lock, "bench"):
        record = updated_record(paths, task.run_label, str(task.results_root), list(tasks))
        record["submissions"].append({
            "submitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "executor": executor,
            "backend": ",".join(sorted({t.backend for t in tasks})), "tasks": [t.key for t in tasks], "jobs": []})
        write_record(paths, record)
    return record


def updated_record(paths: BundlePaths, run_label: str, results_root: str, tasks: list[Any]) -> dict:
    """The label's record with `tasks` added, after checking they share the label's identity."""
    paths.check_own_folder()
    record = load_submission(paths.results_root, run_label) if Path(paths.submission).is_file() else {
        "run_label": run_label, "results_root": results_root, "submissions": [], "tasks": {}}
    wanted = label_identity(tasks)
    check_identity(record.get("identity"), wanted, run_label)
    identity = record.setdefault("identity", {k: v for k, v in wanted.items() if k != "options"} | {"options": {}})
    identity["options"].update(wanted.get("options", {}))
    for task in tasks:
        record["tasks"][task.key] = task_to_dict(task)
    return record
