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


@compare_group.command(name="runs")
@click.argument("run_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV of every measured neuron's paired change (B - A).")
@click.option("--top", type=int, default=10, show_default=True, help="Neurons to show.")
def runs(run_a, run_b, output, top):
    """Run B against run A (two `flyhpc run` parquets of one design): identical, or the paired change.

    Runs that drive the same neurons at the same rates (same seed, t_run, n_run, connectome) share their input
    trains trial by trial, so what differs is the effect of what else differs (e.g. a silenced neuron) alone.
    """
    from flyhpc.compare.runs import compare_runs
    from flyhpc.files import atomic_path
    from flyhpc.screens.effects import ALPHA

    result = compare_runs(run_a, run_b)
    console = Console()
    if result.identical:
        console.print(f"identical spikes: {result.spikes_a} in both runs")
    else:
        first = result.first_difference
        console.print(f"not identical: {result.spikes_a} vs {result.spikes_b} spikes; first difference at spike "
                      f"{first['index']}: A {first['a']}, B {first['b']}")
    e = result.effect
    console.print(f"paired change of B against A over {e['n_tested']} neuron(s): sum |change| "
                  f"{e['effect_hz']:.4g} ± {e['effect_se_hz']:.2g} Hz; {e['n_significant']} significant "
                  f"(q < {ALPHA}); B's own driven/silenced neurons changed by {e['own_change_hz']:+.4g} Hz")
    table = Table(title="largest changes (B - A)")
    for col in ("neuron", "flywire id", "A Hz", "B Hz", "change Hz ± se", "q"):
        table.add_column(col, justify="right")
    for row in result.neurons.head(top).itertuples():
        if row.change_hz == 0:
            break
        table.add_row(str(row.neuron_index), str(row.flywire_id), f"{row.base_rate_hz:.4g}", f"{row.rate_hz:.4g}",
                      f"{row.change_hz:+.4g} ± {row.change_se_hz:.2g}", f"{row.q:.2g}")
    console.print(table)
    if output is not None:
        with atomic_path(output) as tmp:
            result.neurons.to_csv(tmp, index=False)
        console.print(f"wrote {output}")
