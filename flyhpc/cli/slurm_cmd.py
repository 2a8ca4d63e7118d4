"""`flyhpc submit / status / resubmit / cancel`: benchmark grids on Slurm (or the local executor); status,
resubmit and cancel take screen labels too (status then also counts experiments).

Each command parses flags, calls one function of `flyhpc.cluster.slurm` / `flyhpc.cluster.status` and renders
the result with rich. No scheduling logic here.
"""

from __future__ import annotations

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from flyhpc.cli.options import grid_from_flags, grid_options, planned_tasks, results_root_option
from flyhpc.results.states import ENDED_BADLY, TASK_STATES

_SHORT = {"pending": "pend", "running": "run", "timeout": "t/o", "cancelled": "canc", "out-of-memory": "oom",
          "missing": "miss"}


def render_plan(console: Console, sp) -> None:
    """The --dry-run table: one row per array, with resources and estimated hours."""
    table = Table(title=f"{sp.run_label}: {sp.n_tasks} task(s) in {len(sp.arrays)} array(s) on "
                        f"{sp.profile.name} ({sp.profile.executor}); {len(sp.skipped_done)} already done")
    for col in ("backend", "tasks", "gpus", "cpus", "mem GB", "time", "%N", "image", "GPU-h", "core-h"):
        table.add_column(col, justify="right" if col not in ("backend", "image") else "left")
    tot_gpu = tot_core = 0.0
    for arr in sp.arrays:
        gpu_h, core_h = arr.estimate_hours(sp.profile)
        tot_gpu, tot_core = tot_gpu + gpu_h, tot_core + core_h
        table.add_row(arr.backend, str(arr.n_tasks), str(arr.resources.gpus), str(arr.resources.cpus),
                      f"{arr.resources.mem_gb:g}", f"{arr.time_min} min",
                      str(min(sp.profile.array_parallelism, arr.n_tasks)), arr.image or "-",
                      f"{gpu_h:.2f}", f"{core_h:.2f}")
    table.add_row("total", str(sp.n_tasks), "", "", "", "", "", "", f"{tot_gpu:.2f}", f"{tot_core:.2f}",
                  style="bold")
    console.print(table)


EXIT_CODES_HELP = ("Exit codes: 0 every task of the label done; 4 some task failed, timed out, was cancelled, "
                   "ran out of memory, is missing or corrupt (even while others still run), or a label file is "
                   "damaged; 75 none of those, but some still pending or running (or: the label is locked by another "
                   "command, sacct does not answer); 2 bad input; 74 the output cannot be written.")


@click.command()
@grid_options
@click.option("--profile", default="local", show_default=True, help="Cluster profile: jobs/clusters/<name>.toml or a path.")
@click.option("--run-label", required=True, help="Name of the results bundle (results/<label>/).")
@results_root_option
@click.option("--connectome", default="auto", show_default=True, help="'auto', 'synthetic' or a folder.")
@click.option("--no-container", is_flag=True, help="Run on the host's Python even if the profile uses Apptainer.")
@click.option("--force", is_flag=True, help="Submit tasks again although the scheduler still holds them.")
@click.option("--dry-run", is_flag=True, help="Print the plan (arrays, resources, hours) and submit nothing.")
def submit(paper, grid_name, backends, t_run_s, n_run, rounds, round_start, experiment, seed, profile, run_label,
           results_root, connectome, no_container, force, dry_run):
    """Expand a grid and submit one array per (backend, resource set); skip tasks already done.

    The connectome and the experiment's neurons are checked first, as `flyhpc run` checks them.
    A label holds one experiment, seed and connectome: adding tasks of another is refused.
    """
    from flyhpc.cluster import profiles
    from flyhpc.cluster import slurm

    grid = grid_from_flags(paper, grid_name, backends, t_run_s, n_run, rounds, round_start, experiment, seed)
    prof = profiles.load_profile(profile)
    todo = planned_tasks(grid, run_label, results_root, connectome)
    sp = slurm.plan(todo, prof, container=not no_container)
    console = Console()
    if sp.arrays and not dry_run:
        record = slurm.submit(sp, force=force)  # a refusal is the only output: no plan table before it
    render_plan(console, sp)
    warn_if_clamped(console, sp)
    warn_if_synthetic(console, connectome)
    if dry_run or not sp.arrays:
        return
    new = record["submissions"][-len(sp.arrays):]
    console.print(f"submitted {sp.n_tasks} task(s): job(s) {', '.join(s['job_id'] for s in new)}; "
                  f"follow with `flyhpc status {run_label}`; job scripts and Slurm logs in {new[0]['folder']}")


def warn_if_synthetic(console: Console, connectome: str) -> None:
    from flyhpc.data.connectome import default_data_dir
    from flyhpc.data.sources import real_sources

    if connectome == "synthetic" or (connectome == "auto" and real_sources(default_data_dir()) is None):
        console.print("[bold yellow]SYNTHETIC connectome[/]: no real FlyWire files in "
                      f"{default_data_dir()}/ (run `flyhpc data fetch`); tasks run on the calibrated "
                      "full-scale synthetic connectome and their records say so.")


def warn_if_clamped(console: Console, sp) -> None:
    if sp.clamped:
        key, wanted = next(iter(sp.clamped.items()))
        console.print(f"[bold yellow]warning[/]: the time limit of {len(sp.clamped)} task(s) is capped at "
                      f"max_time_min = {sp.profile.max_time_min} min of profile {sp.profile.name!r} "
                      f"({sp.profile.source}) although the time model asks for more (e.g. {key}: {wanted} min); "
                      "raise max_time_min there if they time out")


def _experiments_counter(results_root, run_label):
    """report -> (units done, planned) where the label's kind counts more than tasks (a screen: experiments, chunks
    as far as they got); else None."""
    from flyhpc.cluster.submission import load_submission, record_kind
    from flyhpc.kinds import task_from_dict

    record = load_submission(results_root, run_label)
    kind = record_kind(record)
    tasks = {k: task_from_dict(v) for k, v in record["tasks"].items()}
    if kind.progress(results_root, run_label, [], tasks) is None:
        return None
    return lambda report: kind.progress(results_root, run_label, report.rows, tasks)


def _status_view(report, experiments: tuple[int, int] | None = None) -> Group:
    table = Table(title=f"{report.run_label}: {len(report.rows)} task(s)")
    table.add_column("backend", no_wrap=True)
    for state in TASK_STATES:
        table.add_column(_SHORT.get(state, state), justify="right")
    table.add_column("progress")
    for backend, counts in sorted(report.counts.items()):
        total = sum(counts.values())
        table.add_row(backend, *(str(counts[c]) if counts[c] else "." for c in TASK_STATES),
                      ProgressBar(total=total, completed=counts["done"], width=12))
    parts: list = [table]
    parts += [f"[bold red]damaged[/] {name}: {why}" for name, why in report.damaged]
    if experiments is not None:
        done, total = experiments
        progress = Table.grid(padding=(0, 1))
        progress.add_row("experiments", ProgressBar(total=max(total, 1), completed=done, width=40),
                         f"{done} / {total}")
        parts.append(progress)
    failures = report.failures()
    if failures:
        ft = Table(title="tasks to resubmit")
        for col in ("task", "state", "job", "reason", "log"):
            ft.add_column(col, overflow="fold")
        for row in failures[:50]:
            ft.add_row(row.key, row.state, row.job_id, row.reason, row.log)
        parts.append(ft)
        if len(failures) > 50:
            parts.append(f"... and {len(failures) - 50} more")
    return Group(*parts)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("run_label")
@results_root_option
@click.option("--watch", is_flag=True, help="Refresh until no task is pending or running, then exit with the code.")
@click.option("--interval", type=float, default=5.0, show_default=True,
              help="Seconds between refreshes (a label run on this machine: sooner, when a task writes its files).")
@click.option("--deep", is_flag=True, help="Hash every parquet against its record (else: size, footer, row count).")
@click.option("--retry-for", type=float, default=600.0, show_default=True,
              help="With --watch: seconds to keep retrying a failing sacct/slurmdbd before giving up.")
@click.pass_context
def status(ctx, run_label, results_root, watch, interval, deep, retry_for):
    """Per-backend counts (sacct joined with the task records) and the failing tasks with their logs."""
    from flyhpc.cluster import status as slurm_status

    console = Console()
    retry = dict(retry_s=retry_for if watch else 0.0,
                 on_retry=lambda msg: console.print(f"[yellow]sacct failed[/]: {msg}"))
    wait = slurm_status.news_waiter(results_root, run_label, interval) if watch else None  # before the first look
    report = slurm_status.status(results_root, run_label, deep=deep, **retry)
    counter = _experiments_counter(results_root, run_label)
    view = lambda rep: _status_view(rep, counter(rep) if counter else None)  # noqa: E731
    if watch:
        with Live(view(report), refresh_per_second=1, console=console) as live:
            while report.active:
                wait()
                report = slurm_status.status(results_root, run_label, deep=deep, **retry)
                live.update(view(report))
        if not console.is_terminal:
            console.line()  # Live leaves its last frame without a line end when output is not a terminal
    else:
        console.print(view(report))
    ctx.exit(report.exit_code)


@click.command()
@click.argument("run_label")
@results_root_option
@click.option("--failed", is_flag=True, help="Tasks that failed, timed out, were cancelled, ran out of memory or are corrupt.")
@click.option("--missing", is_flag=True, help="Tasks with no record and no job.")
@click.option("--time-factor", type=float, default=1.0, show_default=True, help="Multiply the time limits.")
@click.option("--profile", default=None, help="Another cluster profile (default: the one submitted with).")
@click.option("--no-container", is_flag=True, help="Run on the host's Python even if the profile uses Apptainer.")
@click.option("--force", is_flag=True, help="Submit even if another job of these tasks is still queued or running.")
@click.option("--dry-run", is_flag=True, help="Show what would be resubmitted.")
@click.option("--retry-for", type=float, default=600.0, show_default=True,
              help="Seconds to keep retrying a failing sacct/slurmdbd before giving up (exit 75).")
def resubmit(run_label, results_root, failed, missing, time_factor, profile, no_container, force, dry_run, retry_for):
    """Submit again the tasks without a valid result (default: --failed and --missing).

    Every parquet is hashed first, so a damaged one is rerun. A --time-factor that cannot raise a
    time limit (the profile's max_time_min caps it) is refused with the key to raise.
    """
    from flyhpc.cluster import profiles
    from flyhpc.cluster import slurm
    from flyhpc.cluster import status as slurm_status

    if time_factor < 1:
        raise click.BadParameter(f"{time_factor}: must be >= 1", param_hint="--time-factor")
    states = (ENDED_BADLY if failed or not missing else ()) + (("missing",) if missing or not failed else ())
    prof = profiles.load_profile(profile) if profile else None
    console = Console()
    retry = dict(retry_s=retry_for, on_retry=lambda msg: console.print(f"[yellow]sacct failed[/]: {msg}"))
    if not dry_run:
        _repair_label(console, results_root, run_label)
    if dry_run:
        rows = slurm_status.status(results_root, run_label, deep=True, **retry).by_state(*states)
        console.print(f"would resubmit {len(rows)} task(s): " + ", ".join(r.key for r in rows))
        return
    sp, _ = slurm.resubmit(results_root, run_label, states, profile=prof, time_factor=time_factor,
                           container=not no_container, force=force, **retry)
    if not sp.arrays:
        console.print("nothing to resubmit")
        return
    render_plan(console, sp)
    warn_if_clamped(console, sp)


def _repair_label(console: Console, results_root, run_label) -> None:
    """The label's own damaged or lost files repaired by its kind (a screen's plan file, rewritten from its screen
    file; else the error says what to run)."""
    from flyhpc.cluster.submission import load_submission, record_kind

    record = load_submission(results_root, run_label)
    done = record_kind(record).repair(results_root, run_label, record)
    if done:
        console.print(done)


@click.command()
@click.argument("run_label")
@results_root_option
def cancel(run_label, results_root):
    """Cancel the label's jobs still queued or running (scancel, only jobs named for this label; SIGTERM for local jobs)."""
    from flyhpc.cluster import slurm

    ids = slurm.cancel(results_root, run_label)
    Console().print(f"cancelled {len(ids)} job(s): {' '.join(ids)}" if ids else "no job to cancel")
