"""`flyhpc data fetch | verify | synth`: get, check or generate the connectome files.

Parses flags, calls `flyhpc.data` / `flyhpc.data.synthetic`, and renders progress bars and tables with
rich. No download, hashing or generation logic lives here. Entry point: the click group `data`.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                           TransferSpeedColumn)
from rich.table import Table

from flyhpc.data import fetch as data
from flyhpc.data.connectome import default_data_dir

_version = click.option("--version", "version", type=click.Choice(data.VERSIONS), default="783",
                        show_default=True, help="FlyWire materialization version.")


@click.group("data")
def data_group() -> None:
    """Download, verify or synthesise the connectome files."""


@data_group.command("fetch")
@_version
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to download into [default: $FLYHPC_DATA or data/].")
@click.option("--base-url", default=None, help=f"Serve the files from here [default: {data.DEFAULT_BASE_URL}].")
@click.option("--examples", is_flag=True, help="Instead, fetch the paper's own example outputs (results/example, "
              "real FlyWire v630) into <dest or data dir>/paper-examples, for `flyhpc report --reference paper`.")
def fetch(version: str, dest: Path | None, base_url: str | None, examples: bool) -> None:
    """Download the FlyWire files, resuming partial downloads; verify size and hash before use."""
    if examples:
        from flyhpc.cli.report_cmd import fetch_paper_examples
        return fetch_paper_examples(dest, base_url)
    dest = dest or default_data_dir()
    files = data.files_for(version, base_url)
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def on_progress(spec: data.UpstreamFile, done: int, total: int | None) -> None:
            if spec.name not in tasks:
                tasks[spec.name] = bar.add_task(spec.name, total=total)
            bar.update(tasks[spec.name], completed=done, total=total)

        results = data.fetch(files, dest, progress=on_progress)
    for res in results:
        console.print(f"{res.status:>10}  {res.path}  ({res.path.stat().st_size:,} bytes, {res.file.expected[:18]}… ok)")


@data_group.command("verify")
@_version
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding the files [default: $FLYHPC_DATA or data/].")
def verify(version: str, folder: Path | None) -> None:
    """Re-hash the downloaded files against their records; non-zero exit if any is bad or missing."""
    checks = data.verify_dir(data.files_for(version), folder or default_data_dir())
    table = Table(title=f"FlyWire v{version} files in {folder or default_data_dir()}")
    for column in ("file", "size", "expected", "status"):
        table.add_column(column)
    style = {"ok": "green", "bad": "bold red", "missing": "yellow"}
    for c in checks:
        size = "-" if c.size_bytes is None else f"{c.size_bytes:,}"
        status = f"[{style[c.status]}]{c.status}[/]" + (f" ({c.detail})" if c.status == "bad" else "")
        table.add_row(c.file.name, size, c.file.expected, status)
    Console().print(table)
    data.raise_for_bad(checks)


@data_group.command("synth")
@click.option("--neurons", "n_neurons", type=click.IntRange(min=2), default=None,
              help="Number of neurons [default: every real v783 id, 138,639].")
@click.option("--edges", "n_edges", type=click.IntRange(min=1), default=15_091_983, show_default=True,
              help="Number of distinct (pre, post) connections.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generator.")
@click.option("--ids-csv", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Completeness CSV whose root ids to use [default: searched for, see flyhpc.data.synthetic].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write into [default: <data dir>/synthetic/seed<S>-n<N>-e<E>].")
def synth(n_neurons: int | None, n_edges: int, seed: int, ids_csv: Path | None, out_dir: Path | None) -> None:
    """Generate a synthetic connectome in the FlyWire file schema (Completeness CSV + Connectivity parquet)."""
    from flyhpc.data import synthetic  # heavy and optional: only imported when asked for

    out_dir = out_dir or default_data_dir() / "synthetic" / f"seed{seed}-n{n_neurons or 'all'}-e{n_edges}"
    with Console(stderr=True).status(f"generating {n_edges:,} connections into {out_dir} …"):
        sources = synthetic.generate(out_dir, n_neurons=n_neurons, n_edges=n_edges, seed=seed, ids_csv=ids_csv)
    click.echo(f"{sources.source}:")
    for path in (sources.completeness, sources.connectivity):
        click.echo(f"  {path}  {Path(path).stat().st_size:,} bytes  sha256 {data.digest_file(path).sha256}")
