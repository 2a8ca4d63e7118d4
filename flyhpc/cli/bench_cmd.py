"""`flyhpc bench / collect / verify`: run a grid here, turn records into the bundle, check a bundle.

Each command parses flags, calls flyhpc.bench / flyhpc.collect and renders with rich. No logic.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flyhpc.cli.options import grid_from_flags, grid_options, planned_tasks, results_root_option
from flyhpc.cli.slurm_cmd import EXIT_CODES_HELP


@click.command()
@grid_options
@click.option("--run-label", help="Bundle name (results/<label>/); default bench_<date>_<time>.")
@results_root_option
@click.option("--connectome", default="auto", show_default=True, help="'auto', 'synthetic' or a folder.")
@click.option("--executor", type=click.Choice(["inline", "process", "local"]), default="process", show_default=True,
              help="inline: this process; process: a fresh process per task; local: the local executor of `submit --profile local`.")
@click.option("--force", is_flag=True, help="Run tasks again even if their record says done.")
@click.option("--no-collect", is_flag=True, help="Do not write manifest/checksums/CSV at the end.")
def bench(paper, grid_name, backends, t_run_s, n_run, rounds, round_start, experiment, seed, run_label,
          results_root, connectome, executor, force, no_collect):
    """Run a benchmark grid on this machine into results/<label>/round_XX/, then collect it."""
    from flyhpc import bench as bench_lib, collect

    grid = grid_from_flags(paper, grid_name, backends, t_run_s, n_run, rounds, round_start, experiment, seed)
    label = run_label or datetime.now().strftime("bench_%Y%m%d_%H%M%S")
    todo = planned_tasks(grid, label, results_root, connectome)
    console = Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        bar = progress.add_task(f"{label}: starting", total=len(todo))

        def on_event(kind, task, detail):
            if kind == "end":
                progress.advance(bar)
            progress.update(bar, description=f"{task.key}: {detail or kind}")

        outcomes = bench_lib.run_tasks(todo, executor, force, on_event)
    _render(console, outcomes)
    if not no_collect:
        report = collect.collect(results_root, label)
        console.print(f"collected {report.rows} row(s) into {report.files[0].parent}")
        _print_disturbed(console, report)
    failed = [o for o in outcomes if o.state != "done"]
    if failed:
        from flyhpc.errors import TaskFailed

        raise TaskFailed(f"{len(failed)} of {len(outcomes)} task(s) did not finish; see their logs in "
                         f"{failed[0].task.results_root}/{label}/round_XX/<task>.log")


def _render(console: Console, outcomes) -> None:
    table = Table(title=f"{outcomes[0].task.run_label}: {len(outcomes)} task(s)" if outcomes else "no task")
    for col in ("task", "state", "spikes", "active", "build_s", "sim_s", "total_s", "x_rt"):
        table.add_column(col, justify="left" if col in ("task", "state") else "right", no_wrap=col == "task")
    for o in outcomes:
        rec, ph = o.record, o.record.get("phases_s", {})
        ratio = rec.get("realtime_ratio")
        state = o.state + ("*" if o.skipped else "")
        table.add_row(f"{o.task.folder}/{o.task.stem}", state if o.state == "done" else f"[red]{state}[/]", str(rec.get("spikes", "-")),
                      str(rec.get("active_neurons", "-")), f"{ph.get('build', 0):.2f}", f"{ph.get('sim', 0):.3f}",
                      f"{ph.get('total', 0):.2f}", f"{ratio:.3g}" if ratio else "-")
    console.print(table)
    if any(o.skipped for o in outcomes):
        console.print("* done before: kept, not run again (use --force to rerun)")
    for o in outcomes:
        if o.state != "done":
            console.print(f"[red]{o.task.key}[/]: {o.record.get('status') or o.error}")


@click.command(name="collect", epilog=EXIT_CODES_HELP)
@click.argument("run_label")
@results_root_option
@click.option("--global-csv", type=click.Path(path_type=Path), help="Also upsert the rows into this CSV.")
@click.pass_context
def collect_cmd(ctx, run_label, results_root, global_csv):
    """Write benchmark-results.csv, manifest.csv and checksums.sha256 of a label from its task records.

    A screen label gets its merged files instead (screen.parquet, experiments.csv, readout.csv, effects.csv)
    once every chunk is done. Always writes what it can: the manifest lists every planned task with its
    state and reason, the checksums cover exactly the intact files. Exits non-zero while the bundle is
    incomplete.
    """
    from flyhpc import collect

    console = Console()
    report = collect.collect(results_root, run_label, global_csv)
    _print_disturbed(console, report)
    _print_effects(console, report)
    counts = {}
    for row in report.status.rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    console.print(f"{run_label}: {len(report.status.rows)} planned task(s): "
                  + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    for name, why in report.status.damaged:
        console.print(f"  [red]damaged[/] {name}: {why}")
    for row in report.status.rows:
        if row.state != "done":
            console.print(f"  [red]{row.state}[/] {row.key}" + (f": {row.reason}" if row.reason else ""))
    for path in report.files:
        console.print(f"  wrote {path}")
    if report.exit_code:
        console.print(f"[bold red]{run_label}: bundle incomplete[/] (exit {report.exit_code}); "
                      f"see `flyhpc status {run_label}` and `flyhpc resubmit {run_label}`")
    ctx.exit(report.exit_code)


def _print_disturbed(console: Console, report) -> None:
    """One line per done task whose sim timing was disturbed (benchmark-results.csv's `disturbed` column)."""
    if report.disturbed:
        console.print(f"[yellow]{len(report.disturbed)} disturbed timing(s)[/] (kept; `flyhpc report --drop-disturbed` "
                      "leaves them out of the speed figures):")
    for key, reason in report.disturbed:
        console.print(f"  [yellow]disturbed[/] {key}: {reason}")


def _number(value, spec: str) -> str:
    """A CSV number as text; "-" where it is empty or NaN (one trial: nothing to test)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if value != value else format(value, spec)


def _print_effects(console: Console, report, top: int = 10) -> None:
    """The experiments with the largest effect, from a complete screen label's effects.csv."""
    from rich.table import Table

    from flyhpc.bundle import display_path
    from flyhpc.results.tables import read_effects

    from flyhpc.screens.effects import ALPHA

    effects_csv = next((p for p in report.files if p.name == "effects.csv"), None)
    if effects_csv is None:
        return
    frame = read_effects(effects_csv, nrows=top, empty_as_nan=False)
    table = Table(title=f"largest paired effects on {frame['measured_on'].iloc[0] if len(frame) else '-'} "
                        f"({display_path(effects_csv)}; significant: q < {ALPHA} within the experiment)")
    for col in ("rank", "experiment", "significant Hz", "neurons sig/tested", "effect Hz ± se", "own Hz",
                "top neuron", "change Hz ± se (q)"):
        table.add_column(col, justify="left" if col in ("experiment", "top neuron") else "right")
    for row in frame.itertuples():
        table.add_row(str(row.rank), row.experiment_name, _number(row.significant_effect_hz, ".4g"),
                      f"{row.n_significant}/{row.n_tested}", f"{_number(row.effect_hz, '.4g')} ± "
                      f"{_number(row.effect_se_hz, '.2g')}", _number(row.own_change_hz, '+.3g'), row.top_neuron,
                      f"{_number(row.top_change_hz, '+.4g')} ± {_number(row.top_change_se_hz, '.2g')} "
                      f"({_number(row.top_q, '.2g')})" if row.top_neuron else "")
    console.print(table)


@click.command(name="verify", epilog="Exit codes: 0 complete and intact; 5 damaged (a file is missing, extra or "
                                     "differs from checksums.sha256); otherwise as status: 4 a task is not done "
                                     "(failed, timed out, cancelled, missing), 75 some still pending/running.")
@click.argument("run_label")
@results_root_option
@click.pass_context
def verify_cmd(ctx, run_label, results_root):
    """Check a label: every planned task present, done and intact, every file against checksums.sha256."""
    from flyhpc import collect

    report = collect.verify(results_root, run_label)
    console = Console()
    for kind in ("missing", "extra", "corrupt", "incomplete"):
        for line in getattr(report, kind):
            console.print(f"[red]{kind}[/]: {line}")
    if report.ok:
        console.print(f"{run_label}: {report.checked} file(s) verified, every planned task done, all good")
    else:
        n = len(report.missing) + len(report.extra) + len(report.corrupt) + len(report.incomplete)
        console.print(f"[bold red]{run_label}: {n} problem(s)[/] in {report.checked} checked file(s)")
    ctx.exit(report.exit_code)
