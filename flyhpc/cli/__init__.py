"""The `flyhpc` command line: a click group whose commands live one family per module.

Each command parses its flags, calls one library function and renders the result with rich.
`FlyhpcError`s become one-line messages with their exit code (`--debug` shows the traceback), and so does an
OSError that says the output cannot be written (disk or quota full, read-only, permission: exit 74); any
other exception is a bug and keeps its traceback. Entry point: `main`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from flyhpc import __version__, config_paths
from flyhpc.errors import FlyhpcError
from flyhpc.files import is_output_error, output_error


class FlyhpcGroup(click.Group):
    """Turns FlyhpcError into click's one-line error with the error's exit code."""

    def invoke(self, ctx: click.Context):
        try:
            try:
                return super().invoke(ctx)
            except OSError as exc:  # a write outside flyhpc.files (a library's own file): the same one line
                if not is_output_error(exc):
                    raise
                raise output_error(exc) from exc
        except FlyhpcError as exc:
            if ctx.params.get("debug"):
                raise
            err = click.ClickException(str(exc))
            err.exit_code = exc.exit_code
            raise err from None


@click.group(cls=FlyhpcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flyhpc")
@click.option("--debug", is_flag=True, help="Show the full traceback of flyhpc errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              envvar=config_paths.ENV_VAR, show_envvar=True, default=None,
              help="Folder searched first for grids/<name>.toml, clusters/<name>.toml and apptainer/<name>.def "
                   "(then ./jobs/ and ./apptainer/ here, then flyhpc's packaged defaults).")
def cli(debug: bool, verbose: int, config_dir: Path | None) -> None:
    """Whole-brain LIF model of the adult fruit fly on six simulators and on Slurm."""
    from rich.logging import RichHandler

    if config_dir is not None:  # for this process and every worker it starts
        os.environ[config_paths.ENV_VAR] = str(config_dir.resolve())
    if not sys.stdout.isatty():  # logs and CI: rich would squeeze tables into 80 columns
        os.environ.setdefault("COLUMNS", "160")

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(show_path=False)])


def _register() -> None:
    from flyhpc.cli import run_cmd, slurm_cmd

    cli.add_command(run_cmd.run)
    for command in (slurm_cmd.submit, slurm_cmd.status, slurm_cmd.resubmit, slurm_cmd.cancel):
        cli.add_command(command)
    from flyhpc.cli.data_cmd import data_group
    cli.add_command(data_group)
    from flyhpc.cli import bench_cmd, compare_cmd
    cli.add_command(bench_cmd.bench)
    cli.add_command(bench_cmd.collect_cmd)
    cli.add_command(bench_cmd.verify_cmd)
    cli.add_command(compare_cmd.compare_group)
    from flyhpc.cli.backends_cmd import backends
    from flyhpc.cli.images_cmd import images_group
    cli.add_command(backends)
    cli.add_command(images_group)
    from flyhpc.cli import check_cmd, report_cmd
    report_cmd.register(cli)
    cli.add_command(check_cmd.check)
    from flyhpc.cli.screen_cmd import screen_group
    cli.add_command(screen_group)
    from flyhpc.cli.wheelhouse_cmd import wheelhouse
    cli.add_command(wheelhouse)


_register()


def main() -> None:
    cli(prog_name="flyhpc")
