"""`flyhpc screen plan / submit / status / collect`: screens (many experiments in chunk tasks) on Slurm or locally.

`plan` (the same as `submit --dry-run`) shows what `submit` would queue (experiments, chunk tasks, arrays,
core-hours) and writes nothing;
`submit` writes the label's plan and queues its arrays (`--watch` then follows them with a progress bar).
`status` and `collect` are the very commands `flyhpc status` and `flyhpc collect` (which take any label), listed
here too so a screen's whole life reads under one name; `resubmit`, `cancel` and `verify` take screen labels as
they are. Each command parses flags, calls `flyhpc.screen_submission` and renders with rich.
"""

from __future__ import annotations

import click
from rich.console import Console

from flyhpc.cli.bench_cmd import collect_cmd
from flyhpc.cli.options import results_root_option
from flyhpc.cli.slurm_cmd import render_plan, status, warn_if_clamped, warn_if_synthetic


def _screen_options(command):
    options = (
        click.argument("screen"),
        click.option("--profile", default="local", show_default=True,
                     help="Cluster profile: jobs/clusters/<name>.toml or a path."),
        click.option("--run-label", required=True, help="Name of the results bundle (results/<label>/)."),
        results_root_option,
        click.option("--connectome", default="auto", show_default=True, help="'auto', 'synthetic' or a folder."),
        click.option("--task-minutes", type=float, default=10.0, show_default=True,
                     help="Target duration of one chunk task (estimated by the cost model)."),
        click.option("--max-per-task", type=click.IntRange(min=1), default=None,
                     help="At most this many experiments in one chunk task (on top of --task-minutes)."),
        click.option("--parallel", type=click.IntRange(min=1), default=None,
                     help="Chunks running at once (replaces the profile's array_parallelism; local: also the "
                          "least number of chunks)."),
        click.option("--keep-spikes", is_flag=True, help="Also write every spike of every experiment (large)."),
        click.option("--no-container", is_flag=True, help="Run on the host's Python even if the profile uses "
                                                          "Apptainer."),
    )
    for option in reversed(options):
        command = option(command)
    return command


def _planned(screen, profile, run_label, results_root, connectome, task_minutes, max_per_task, parallel,
             keep_spikes, no_container):
    from flyhpc.cluster import profiles
    from flyhpc.screen_submission import plan_screen

    if task_minutes <= 0:
        raise click.BadParameter(f"{task_minutes}: must be > 0", param_hint="--task-minutes")
    return plan_screen(screen, run_label, results_root, profiles.load_profile(profile), connectome=connectome,
                       task_minutes=task_minutes, max_per_task=max_per_task, parallel=parallel, keep_spikes=keep_spikes,
                       container=not no_container)


def _show(sub, connectome):
    console = Console()
    s = sub.screen
    console.print(f"screen [bold]{s.name}[/] ({s.path}): {sub.n_experiments} experiment(s) x {s.n_run} trial(s) x "
                  f"{s.t_run_s:g} s on {s.backend}, silence_mode {s.silence_mode}, seed {s.seed}; connectome "
                  f"{sub.connectome_source}; plan sha256 {sub.plan_sha256[:12]}")
    render_plan(console, sub.submit_plan)
    warn_if_clamped(console, sub.submit_plan)
    warn_if_synthetic(console, connectome)
    return console


@click.group(name="screen")
def screen_group() -> None:
    """Screens: activate or silence each of many neurons, sweep rates; one chunk of experiments per task."""


@screen_group.command(name="plan")
@_screen_options
def plan_cmd(screen, profile, run_label, results_root, connectome, task_minutes, max_per_task, parallel,
             keep_spikes, no_container):
    """Show the experiments, chunk tasks, arrays and core-hours `submit` would queue; write nothing."""
    _show(_planned(screen, profile, run_label, results_root, connectome, task_minutes, max_per_task, parallel,
                   keep_spikes, no_container), connectome)


@screen_group.command(name="submit")
@_screen_options
@click.option("--force", is_flag=True, help="Submit chunks again although the scheduler still holds them.")
@click.option("--watch", is_flag=True, help="Then follow the label (`flyhpc status --watch`) and exit with its code.")
@click.option("--dry-run", is_flag=True, help="Only show the plan (what `flyhpc screen plan` shows); submit nothing.")
@click.pass_context
def submit_cmd(ctx, screen, profile, run_label, results_root, connectome, task_minutes, max_per_task, parallel,
               keep_spikes, no_container, force, watch, dry_run):
    """Plan SCREEN (a name from jobs/screens/ or a .toml path) and submit its chunk tasks; skip chunks already done.

    The label holds one plan: submitting another screen, seed or connectome under it is refused.
    """
    from flyhpc.screen_submission import submit_screen

    sub = _planned(screen, profile, run_label, results_root, connectome, task_minutes, max_per_task, parallel,
                   keep_spikes, no_container)
    record = {} if dry_run else submit_screen(sub, force=force)  # a refusal is the only output: no plan before it
    console = _show(sub, connectome)
    if dry_run:
        return
    sp = sub.submit_plan
    if sp.arrays:
        new = record["submissions"][-len(sp.arrays):]
        console.print(f"submitted {sp.n_tasks} chunk task(s): job(s) {', '.join(s['job_id'] for s in new)}; "
                      f"follow with `flyhpc status {run_label}`, then `flyhpc collect {run_label}`")
    else:
        console.print(f"every chunk of {run_label} is done; `flyhpc collect {run_label}` merges them")
    if watch:
        ctx.invoke(status, run_label=run_label, results_root=results_root, watch=True, interval=2.0, deep=False,
                   retry_for=600.0)


screen_group.add_command(status)
screen_group.add_command(collect_cmd)
