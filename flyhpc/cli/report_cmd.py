"""`flyhpc report LABEL`, `flyhpc compare paper`: look at a collected bundle, and set it beside the paper.

Parses flags, checks that matplotlib is installed (and says how to install it), shows a rich
progress bar while spike files are read, and calls `flyhpc.report.build.build_report` /
`flyhpc.report.paper`; also renders `flyhpc data fetch --examples`. No analysis here. Entry points:
`register` (adds both commands to the CLI), `fetch_paper_examples`.
"""

from __future__ import annotations

import importlib.util
import time
import webbrowser
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from flyhpc.bundle import display_path
from flyhpc.cli.options import results_root_option
from flyhpc.timing import SHARE_FLOOR

EXIT_NO_MATPLOTLIB = 3


class _RichProgress:
    """A rich bar over the spikes to read, naming the file being read."""

    def __init__(self, bar: Progress):
        self.bar = bar
        self.task = bar.add_task("reading spike files", total=None)

    def start(self, total_rows: int) -> None:
        self.bar.update(self.task, total=max(total_rows, 1))

    def file(self, path: Path) -> None:
        self.bar.update(self.task, description=f"reading {path.parent.name}/{path.name}")

    def rows(self, n: int) -> None:
        self.bar.advance(self.task, n)


def _need_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        err = click.ClickException("flyhpc report draws with matplotlib, which is not installed: run "
                                   "`pip install 'flyhpc[report]'` (or `pip install 'matplotlib>=3.8'`) and retry")
        err.exit_code = EXIT_NO_MATPLOTLIB
        raise err


@click.command("report")
@click.argument("label")
@results_root_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write into [default: results/<label>/report].")
@click.option("--reference", "references", multiple=True, metavar="REF",
              help="Show beside this label (repeat): another collected label, a CSV in the seed's "
                   "benchmark-results.csv schema (12 or 18 columns), a packaged reference (seed-rtx4070), a folder "
                   "of the paper's example outputs, or `paper` (the folder `flyhpc data fetch --examples` fills).")
@click.option("--ground-truth", default="brian2cpp", show_default=True, help="Backend the others are compared with.")
@click.option("--point", default=None, metavar="T_RUN,N_RUN",
              help="Grid point of the phases and parity scatter figures [default: the one most backends ran].")
@click.option("--activity", "activity_task", default=None, metavar="TASK",
              help="Task of the activity figures, e.g. round_01/brian2cpp_t1.0s_n2 [default: first done brian2cpp].")
@click.option("--drop-disturbed", is_flag=True,
              help=f"Leave timings whose sim got less than {SHARE_FLOOR:.0%} of its threads' CPU time (a busy node) "
                   "out of the speed and phase figures and tables [default: keep them, marked].")
@click.option("--open", "open_page", is_flag=True, help="Open the page in a web browser afterwards.")
def report(label, results_root, out_dir, references, ground_truth, point, activity_task, drop_disturbed, open_page):
    """One self-contained HTML page (figures, tables, health) from a collected label; nothing is re-run.

    Writes results/<label>/report/: report.html, every figure as PNG and SVG, every table as CSV. A screen label
    gets the page of its paired effects (ranked effects with error bars, experiments x neurons heat map, base).
    Exit codes: 0 the report was written (a partly failed label too: the page says which tasks are
    missing); 2 unknown or uncollected label, no done task, or a bad --reference/--point/--activity;
    3 matplotlib is not installed.
    """
    _need_matplotlib()
    from flyhpc.bundle import BundlePaths
    from flyhpc.report.build import build_report, parse_point

    console = Console(stderr=True)
    started = time.perf_counter()
    if BundlePaths(results_root, label).screen_plan.is_file():  # a screen label: its effects page
        from flyhpc.report.screen_page import build_screen_report

        result = build_screen_report(results_root, label, out_dir)
        console.print(f"wrote {display_path(result.html)} and {len(result.files) - 1} figure and table files "
                      f"in {time.perf_counter() - started:.1f} s")
        if open_page:
            webbrowser.open(result.html.resolve().as_uri())
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} spikes"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        result = build_report(results_root, label, out_dir, references, ground_truth, parse_point(point),
                              activity_task, _RichProgress(bar), drop_disturbed)
    console.print(f"wrote {display_path(result.html)} and {len(result.files) - 1} figure and table files "
                  f"in {time.perf_counter() - started:.1f} s")
    if result.disturbed:
        what = "left out (--drop-disturbed)" if result.dropped else "kept and marked (--drop-disturbed leaves them out)"
        console.print(f"[yellow]{result.disturbed} disturbed timing(s) {what}; see Speed[/]")
    if result.partial:
        console.print(f"[yellow]partial bundle: {result.done} of {result.planned} planned tasks done; the page lists "
                      "the others under Health[/]")
    if open_page:
        webbrowser.open(result.html.resolve().as_uri())


@click.command("paper")
@click.option("--run-label", "--run_label", "run_label", required=True, help="The bundle (results/<label>/).")
@results_root_option
@click.option("--examples", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the paper's example outputs [default: $FLYHPC_DATA/paper-examples, "
                   "filled by `flyhpc data fetch --examples`].")
@click.option("--ground-truth", default="brian2cpp", show_default=True, help="Backend preferred for the label's task.")
@click.option("-o", "--output-dir", type=click.Path(path_type=Path),
              help="Where to write (default results/<label>/comparisons).")
def compare_paper(run_label, results_root, examples, ground_truth, output_dir):
    """The label's spikes beside the paper's own outputs (real FlyWire v630): parity on the real
    connectome, rate distributions only on a synthetic one."""
    from flyhpc import paper_examples
    from flyhpc.errors import ConfigError
    from flyhpc.report.label import load_label
    from flyhpc.report.paper import compare_with_paper, write_outputs
    from flyhpc.report.scan import StatsCache
    from flyhpc.report.tables import fmt

    folder = examples or paper_examples.default_dir()
    found = paper_examples.find(folder)
    if not found:
        raise ConfigError(f"no paper example files in {folder}; run `flyhpc data fetch --examples` or pass --examples")
    data = load_label(results_root, run_label)
    comp = compare_with_paper(data, found, StatsCache(), ground_truth)
    files = write_outputs(comp, Path(output_dir or data.paths.comparisons))
    table = Table(title=f"{comp.task.name} beside the paper's examples")
    for col in ("source", "spikes/trial-s", "active/trial", "median Hz", "> 10 Hz", "> 50 Hz"):
        table.add_column(col)
    for row in comp.distributions:
        table.add_row(row["source"], fmt(row["spikes_per_trial_s"]), fmt(row["active_per_trial_mean"]),
                      fmt(row["rate_median_hz"]), fmt(row["neurons_over_10hz"]), fmt(row["neurons_over_50hz"]))
    console = Console()
    console.print(table)
    console.print(comp.verdict)
    if comp.parity is not None:
        p = comp.parity
        console.print(f"parity with {p.example}: spikes/trial-s ratio {fmt(p.spikes_per_trial_s_ratio)}, "
                      f"Jaccard {fmt(p.jaccard)}, rate r {fmt(p.pearson)}")
    console.print("wrote " + ", ".join(display_path(f) for f in files))


def fetch_paper_examples(data_dir: Path | None, base_url: str | None) -> None:
    """`flyhpc data fetch --examples`: the paper's example outputs into <data dir>/paper-examples, verified."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from flyhpc import paper_examples

    dest = Path(data_dir) / paper_examples.FOLDER_NAME if data_dir else paper_examples.default_dir()
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console) as bar:
        tasks: dict[str, int] = {}

        def on_progress(spec, done: int, total: int) -> None:
            if spec.name not in tasks:
                tasks[spec.name] = bar.add_task(spec.name, total=total)
            bar.update(tasks[spec.name], completed=done)

        results = paper_examples.fetch(dest, base_url=base_url or paper_examples.DEFAULT_BASE_URL,
                                       progress=on_progress)
    for res in results:
        console.print(f"{res.status:>10}  {display_path(res.path)}  ({res.file.size_bytes:,} bytes, "
                      f"sha256 {res.file.sha256[:16]}… ok)")
    console.print(f"the paper's example outputs ({paper_examples.CONNECTOME}, {paper_examples.N_TRIALS} x "
                  f"{paper_examples.T_RUN_S:g} s): use them with `flyhpc report LABEL --reference paper`")


def register(cli: click.Group) -> None:
    """Add `report` to the CLI and `paper` to its `compare` group."""
    cli.add_command(report)
    cli.commands["compare"].add_command(compare_paper)
