"""`flyhpc compare ground-truth | pairs | backend`: the seed's three comparisons over one bundle.

Each subcommand parses the seed's flags, calls one function of flyhpc.compare and prints what it
wrote. No metrics here.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from flyhpc.cli.options import results_root_option

_LABEL = click.option("--run-label", "--run_label", "run_label", required=True, help="The bundle (results/<label>/).")
_TOL = click.option("--tolerance-ms", type=float, default=1.0, show_default=True, help="Spike-time match window.")
_OUT_DIR = click.option("-o", "--output-dir", type=click.Path(path_type=Path),
                        help="Where to write (default results/<label>/comparisons).")


def _points(t_run_s, n_run):
    from flyhpc.compare.reports import PAPER_N_RUN, PAPER_T_RUN_S

    return tuple(t_run_s) or PAPER_T_RUN_S, tuple(n_run) or PAPER_N_RUN


@click.group(name="compare")
def compare_group() -> None:
    """Parity of backends' spikes: vs brian2cpp, all pairs, or one backend across rounds."""


@compare_group.command(name="ground-truth")
@_LABEL
@results_root_option
@click.option("--round", "round_", type=int, default=1, show_default=True)
@click.option("--t-run", "--t_run", "t_run_s", type=float, default=1.0, show_default=True)
@click.option("--n-run", "--n_run", "n_run", type=int, default=1, show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="JSON file to write.")
def ground_truth(run_label, results_root, round_, t_run_s, n_run, output):
    """Each backend vs brian2cpp at one grid point: counts, active sets, rates and a verdict."""
    from flyhpc.compare import reports as compare

    result, path = compare.ground_truth(results_root, run_label, round_, t_run_s, n_run, output)
    table = Table(title=f"vs {result['ground_truth']}: {result['ground_truth_spikes']} spikes, "
                        f"{result['ground_truth_active_neurons']} active")
    for col in ("framework", "spikes ratio", "jaccard", "pearson", "verdict"):
        table.add_column(col)
    for name, entry in result["comparisons"].items():
        if "verdict" in entry:
            table.add_row(name, str(entry["spike_count"]["ratio"]), str(entry["active_neurons"]["jaccard"]),
                          str(entry["firing_rate"]["pearson_correlation"]), entry["verdict"])
    Console().print(table)
    Console().print(f"wrote {path}")


@compare_group.command(name="pairs")
@_LABEL
@results_root_option
@click.option("--round", "round_", type=int, default=1, show_default=True)
@click.option("--t-run", "--t_run", "t_run_s", type=float, multiple=True, help="Repeat; default 0.1 1 10 100.")
@click.option("--n-run", "--n_run", "n_run", type=int, multiple=True, help="Repeat; default 1 4 8 16 32.")
@_TOL
@_OUT_DIR
def pairs(run_label, results_root, round_, t_run_s, n_run, tolerance_ms, output_dir):
    """Every pair of backends at every grid point, with spike-time matching."""
    from flyhpc.compare import reports as compare

    t_values, n_values = _points(t_run_s, n_run)
    rows, files = compare.pairwise(results_root, run_label, round_, t_values, n_values, tolerance_ms, output_dir)
    Console().print(f"{len(rows)} pair comparison(s); wrote " + ", ".join(str(f) for f in files))


@compare_group.command(name="backend")
@_LABEL
@results_root_option
@click.option("--backend", required=True, help="The backend to compare with brian2cpp.")
@click.option("--rounds", type=int, multiple=True, help="Repeat; default 1 2 3 4 5.")
@click.option("--t-run", "--t_run", "t_run_s", type=float, multiple=True, help="Repeat; default 0.1 1 10 100.")
@click.option("--n-run", "--n_run", "n_run", type=int, multiple=True, help="Repeat; default 1 4 8 16 32.")
@_TOL
@click.option("--include-timing", is_flag=True, help="Also match spike times (slower).")
@_OUT_DIR
def backend(run_label, results_root, backend, rounds, t_run_s, n_run, tolerance_ms, include_timing, output_dir):
    """One backend vs brian2cpp over rounds: rates (and spike times with --include-timing)."""
    from flyhpc.compare import reports as compare

    t_values, n_values = _points(t_run_s, n_run)
    rows, files = compare.backend_vs_reference(results_root, run_label, backend, tuple(rounds) or (1, 2, 3, 4, 5),
                                               t_values, n_values, tolerance_ms, include_timing, output_dir)
    Console().print(f"{len(rows)} comparison(s); wrote " + ", ".join(str(f) for f in files))
