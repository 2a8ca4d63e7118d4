"""A screen's plan again: expanding a screen file on a connectome into the plan file's bytes, and rewriting a
damaged or lost plan file from the screen file it was planned from.

`expand_plan` loads the connectome and expands every experiment (a most_active axis runs the base experiment
here), giving the plan file's deterministic bytes; `repair_plan` (the screen kind's `repair`, run by `flyhpc
resubmit`) rewrites the label's plan only when planning again gives the planned sha256. Submits nothing.
Entry points: `expand_plan`, `repair_plan`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from flyhpc.bundle import BundlePaths
from flyhpc.errors import DataError
from flyhpc.files import label_lock, sha256_file
from flyhpc.screens.plan_file import plan_bytes, write_plan
from flyhpc.screens.spec import Screen, load_screen


def expand_plan(screen: Screen, connectome: str):
    """(connectome, experiments, plan file bytes) of a screen expanded on `connectome` (as given: "auto",
    "synthetic" or a folder)."""
    from flyhpc.data.connectome import default_data_dir, load_connectome
    from flyhpc.data.sources import resolve_sources
    from flyhpc.screens.chunk import plan_experiments

    conn = load_connectome(resolve_sources(connectome, default_data_dir()))
    experiments = plan_experiments(screen, conn, n_threads=max(1, min(screen.n_run, os.cpu_count() or 1)))
    return conn, experiments, plan_bytes(screen, experiments)


def repair_plan(results_root: str | Path, run_label: str, record: dict) -> str:
    """Rewrite a screen label's plan file if it is missing or damaged, from the screen file it was planned from,
    when planning that again gives the planned sha256; "" when the plan is intact.

    `record`: the label's submission.json (`flyhpc.cluster.submission.load_submission`).

    Returns
    -------
    str
        What was done, for the user.

    Raises
    ------
    DataError
        The screen file or connectome is gone or changed (planning gives another sha256), or the label's record
        does not say how it was planned: naming what to run.
    """
    planned = record.get("identity", {}).get("plan_sha256", "")
    paths = BundlePaths(results_root, run_label)
    if not planned or (paths.screen_plan.is_file() and sha256_file(paths.screen_plan) == planned):
        return ""
    again = record.get("screen") or {}
    broken = f"screen plan {paths.screen_plan} is {'damaged' if paths.screen_plan.is_file() else 'missing'}"
    if not again:
        raise DataError(f"{broken}, and {paths.submission} does not say how it was planned; restore the file from a "
                        f"backup, or plan the screen again under a new label (`flyhpc screen submit SCREEN "
                        f"--run-label NEW`)")
    cwd = Path(again["cwd"])
    screen_file = cwd / again["path"]
    connectome = again["connectome"]
    if connectome not in ("auto", "synthetic"):
        connectome = str(cwd / connectome)
    try:
        screen = dataclasses.replace(load_screen(str(screen_file)), path=Path(again["path"]))
        _, _, content = expand_plan(screen, connectome)
    except Exception as exc:
        raise DataError(f"{broken}; planning {screen_file} on connectome {connectome!r} again failed ({exc}); "
                        f"restore them, or submit under a new label (`flyhpc screen submit {screen_file} "
                        f"--run-label NEW --connectome {again['connectome']}`)") from None
    sha = hashlib.sha256(content).hexdigest()
    if sha != planned:
        raise DataError(f"{broken}, and planning {screen_file} on connectome {connectome!r} again gives sha256 "
                        f"{sha[:12]}..., not the planned {planned[:12]}... (the screen file or connectome changed); "
                        f"restore them, or submit under a new label (`flyhpc screen submit {screen_file} "
                        f"--run-label NEW --connectome {again['connectome']}`)")
    with label_lock(paths.lock, f"resubmit {run_label}"):
        write_plan(paths.screen_plan, content)
    return f"rewrote {paths.screen_plan} from {screen_file} (sha256 {sha[:12]}..., as planned)"
