"""Click options shared by several commands: the grid flags of `bench` and `submit` (which grid, and the
values that replace its own) and `--results-root` of every bundle command.

Entry points: `grid_options` (the click options, in order), `grid_from_flags`, `planned_tasks` (the
grid's tasks after the same input checks as `flyhpc run`) and `results_root_option`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from flyhpc.model import PRESETS

_OPTIONS = (
    click.option("--paper", is_flag=True, help="The paper grid (jobs/grids/paper.toml): t_run 0.1 1 10 100 s x "
                                               "n_run 1 4 8 16 32 x 5 rounds."),
    click.option("--grid", "grid_name", help="Grid preset (jobs/grids/<name>.toml) or a .toml path; default: quick."),
    click.option("--backend", "backends", multiple=True, help="Backend (repeat); replaces the grid's list."),
    click.option("--t-run", "t_run_s", type=float, multiple=True, help="Simulated seconds per trial (repeat)."),
    click.option("--n-run", type=int, multiple=True, help="Trials per task (repeat)."),
    click.option("--rounds", type=int, help="Total rounds of the grid (rounds run: round-start..rounds)."),
    click.option("--round-start", type=int, help="First round to run (resume); never runs past --rounds."),
    click.option("--experiment", help=f"Preset ({', '.join(PRESETS)}: flyhpc/presets.py) or "
                                        "'index:I,J,...@RATE'."),
    click.option("--seed", type=int, help="Base seed of the drive."),
)


def grid_options(command):
    """Decorate a click command with the grid flags (parameters paper .. seed)."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def grid_from_flags(paper, grid_name, backends, t_run_s, n_run, rounds, round_start, experiment, seed):
    """The grid named by --paper/--grid with the given flags replacing its values."""
    from flyhpc import tasks

    if paper and grid_name:
        raise click.UsageError("give --paper or --grid, not both")
    grid = tasks.load_grid("paper" if paper else (grid_name or "quick"))
    given = dict(backends=tuple(backends), t_run_s=tuple(t_run_s), n_run=tuple(n_run), rounds=rounds,
                 round_start=round_start, experiment=experiment, seed=seed)
    return dataclasses.replace(grid, **{k: v for k, v in given.items() if v not in (None, ())})


def planned_tasks(grid, run_label: str, results_root, connectome: str) -> list:
    """Every task of `grid`, checked as `flyhpc run` checks its inputs, before anything is queued.

    The connectome is loaded (cached after the first time) and the experiment's neurons resolved
    in it, so an unknown FlyWire id or connectome folder fails here, not in every task on the
    cluster; the tasks carry the connectome's digest (part of their key).
    """
    from flyhpc import tasks
    from flyhpc.bundle import check_label
    from flyhpc.data.connectome import default_data_dir
    from flyhpc.pipeline import check_inputs

    check_label(run_label)
    tasks.check_grid(grid)
    conn = check_inputs(connectome, default_data_dir(), tasks.experiment_of(grid.experiment))
    return tasks.expand_grid(grid, run_label, str(results_root), connectome, connectome_digest=conn.digest)


def results_root_option(command):
    """The `--results-root` option every bundle command takes."""
    return click.option("--results-root", type=click.Path(path_type=Path), default=Path("results"),
                        show_default=True, help="Folder holding the run labels.")(command)
