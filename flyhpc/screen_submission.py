"""Planning and submitting a screen: the screen file expanded on the connectome, cut into chunk tasks, queued.

The one part of screens that needs the cluster layer (array plans, submission), so it sits above it and
`flyhpc.screens` stays whole in the tasks layer.

`plan_screen` loads the screen and the connectome (the same checks as `flyhpc run`: unknown neurons are named
before anything is queued), expands every experiment (`plan_experiments`; a most_active axis runs the base
experiment here, once), serialises the plan (`plan_file.plan_bytes`) and cuts it into chunk tasks sized by
the cost model, grouped into arrays by `flyhpc.cluster.slurm.plan` (split at MaxArraySize, throttled).
Nothing is written. `submit_screen` refuses a label that holds another plan, writes the plan file, then
submits through `flyhpc.cluster.slurm.submit` (recording how to plan it again, for
`flyhpc.screens.replan.repair_plan`).
Entry points: `ScreenSubmission`, `plan_screen`, `submit_screen`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from flyhpc.bundle import BundlePaths, check_label
from flyhpc.cluster import slurm
from flyhpc.cluster.profiles import ClusterProfile
from flyhpc.cluster.schedulers import scheduler_for
from flyhpc.cluster.submission import check_identity, label_identity, load_submission
from flyhpc.screens.plan_file import write_plan
from flyhpc.screens.replan import expand_plan
from flyhpc.screens.spec import Screen, load_screen
from flyhpc.screens.task import plan_tasks


@dataclass(frozen=True)
class ScreenSubmission:
    """A planned screen: the screen, its experiment count, the plan file's content and sha256, the array plan."""

    screen: Screen
    n_experiments: int
    plan: bytes
    plan_sha256: str
    connectome_source: str
    submit_plan: slurm.SubmitPlan
    connectome: str = "auto"  # as given (--connectome), to plan the screen again


def plan_screen(screen_ref: str | Path, run_label: str, results_root: str | Path, profile: ClusterProfile, *,
                connectome: str = "auto", task_minutes: float = 10.0, max_per_task: int | None = None,
                parallel: int | None = None, keep_spikes: bool = False, container: bool = True) -> ScreenSubmission:
    """Expand `screen_ref` on the connectome and plan its chunk tasks and arrays (writes nothing).

    `parallel` replaces the profile's array_parallelism (how many chunks run at once; where the scheduler deals
    the chunks to that many workers, as the local executor does, also the least number of chunks, so every
    worker has one: `Scheduler.parallel_workers`).

    Raises
    ------
    ConfigError, DataError
        A bad screen file, label or connectome; neurons the connectome lacks (named); a task target too short.
    BackendUnavailable
        A most_active axis whose base run needs a backend that cannot run here.
    """
    check_label(run_label)
    screen = load_screen(screen_ref)
    conn, experiments, content = expand_plan(screen, connectome)
    sha = hashlib.sha256(content).hexdigest()
    if parallel is not None:
        profile = dataclasses.replace(profile, array_parallelism=parallel)
    tasks = plan_tasks(screen, experiments, sha, run_label=run_label, results_root=results_root,
                       connectome=connectome, connectome_digest=conn.digest, n_edges=conn.n_edges,
                       target_task_s=task_minutes * 60.0,
                       min_tasks=scheduler_for(profile).parallel_workers,
                       max_per_task=max_per_task, keep_spikes=keep_spikes,
                       run_wall_s=profile.resources(screen.backend).wall_estimate_s)
    return ScreenSubmission(screen=screen, n_experiments=len(experiments), plan=content, plan_sha256=sha,
                            connectome_source=conn.source,
                            submit_plan=slurm.plan(tasks, profile, container=container), connectome=connectome)


def submit_screen(sub: ScreenSubmission, force: bool = False) -> dict:
    """Write the label's plan file and submit the planned arrays; returns the submission record.

    Raises
    ------
    ConfigError
        The label holds another screen, plan, seed, connectome or a benchmark grid (nothing is written);
        tasks still queued or running (without `force`).
    """
    sp = sub.submit_plan
    paths = BundlePaths(sp.results_root, sp.run_label)
    tasks = [t for a in sp.arrays for t in a.tasks]
    if Path(paths.submission).is_file() and tasks:
        check_identity(load_submission(sp.results_root, sp.run_label).get("identity"), label_identity(tasks),
                       sp.run_label)
    had_plan = paths.screen_plan.is_file()
    write_plan(paths.screen_plan, sub.plan)
    if not sp.arrays:
        return {}
    # how to plan the screen again (`repair_plan`): the file and connectome as given, and where they were given
    again = {"path": str(sub.screen.path), "connectome": sub.connectome, "cwd": os.getcwd()}
    try:
        return slurm.submit(sp, force=force, extra={"screen": again})
    except BaseException:
        if not had_plan and not Path(paths.submission).is_file():  # nothing went out: leave nothing behind
            for remove in (paths.screen_plan.unlink, paths.label_dir.rmdir):
                with contextlib.suppress(OSError):
                    remove()
        raise
