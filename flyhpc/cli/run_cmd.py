"""`flyhpc run`: one experiment on one backend, here, with progress and a summary table."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from flyhpc import backends
from flyhpc.model import PRESETS, SILENCE_MODES, Experiment, make_experiment
from flyhpc.timing import disturbance


def _id_list(value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(v) for v in value.replace(",", " ").split())
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected integers separated by commas or spaces") from None


def _experiment(name, activate, rate, activate2, rate2, silence, by, silence_mode) -> Experiment:
    return make_experiment(name, _id_list(activate), rate, _id_list(activate2), rate2, _id_list(silence), by,
                           silence_mode)


@click.command()
@click.option("--backend", default="brian2cpp", show_default=True,
              type=click.Choice(backends.names()), help="Simulator to run.")
@click.option("--experiment", "experiment_key",
              help=f"Preset experiment: {', '.join(PRESETS)} (the paper's neuron sets, flyhpc/presets.py).")
@click.option("--activate", help="Neurons of activation set 1 (FlyWire ids, comma separated).")
@click.option("--rate", type=float, help="Poisson rate of set 1 in Hz.")
@click.option("--activate2", help="Neurons of activation set 2.")
@click.option("--rate2", type=float, default=0.0, show_default=True, help="Poisson rate of set 2 in Hz.")
@click.option("--silence", help="Neurons to silence (see --silence-mode).")
@click.option("--silence-mode", type=click.Choice(SILENCE_MODES), default="both", show_default=True,
              help="both: zero every synapse to and from a silenced neuron; outgoing: only its outgoing ones "
                   "(it still receives and spikes, but reaches nobody; Shiu et al.'s silencing).")
@click.option("--by", type=click.Choice(["id", "index"]), default="id", show_default=True,
              help="Neurons are FlyWire root ids or row indices.")
@click.option("--t-run", "t_run_s", type=float, default=1.0, show_default=True, help="Simulated seconds per trial.")
@click.option("--n-run", type=int, default=1, show_default=True, help="Number of trials.")
@click.option("--connectome", default="auto", show_default=True,
              help="'auto' (real data if present, else synthetic), 'synthetic', or a folder.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed of the drive.")
@click.option("--threads", type=int, default=None, help="CPUs for the backend (default: all given to this process).")
@click.option("--precision", default=None, help="State dtype, if the backend supports several.")
@click.option("--force", is_flag=True, help="Replace results that exist already.")
@click.option("--top", type=int, default=10, show_default=True, help="Neurons in the summary table.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Backend option (repeatable; VALUE read as JSON, else as text), e.g. "
                   "genn_backend=single_threaded_cpu. Overrides $FLYHPC_BACKEND_OPTIONS.")
def run(backend, experiment_key, activate, rate, activate2, rate2, silence, silence_mode, by, t_run_s, n_run,
        connectome, data_dir, out_dir, seed, threads, precision, force, top, options):
    """Simulate one experiment and write spikes (parquet), rates (CSV) and phase timings (JSON)."""
    from flyhpc.pipeline import run_experiment

    if not experiment_key and not activate:
        experiment_key = "sugar"
    experiment = _experiment(experiment_key, activate, rate, activate2, rate2, silence, by, silence_mode)
    console = Console(stderr=True)
    with console.status("loading") as status:
        outcome = run_experiment(
            backend=backend, experiment=experiment, t_run_s=t_run_s, n_run=n_run, out_dir=out_dir,
            connectome=connectome, data_dir=data_dir, seed=seed, n_threads=threads, precision=precision,
            force=force, options=_options(options),
            on_phase=lambda p: status.update(f"{p}: {backend}, {experiment.name}, {t_run_s:g} s x {n_run}"))
    _render(Console(), outcome, top, out_dir)


def _options(pairs: tuple[str, ...]) -> dict:
    """{key: value} of --option KEY=VALUE pairs (the backend validates names and values)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def _render(console: Console, outcome, top: int, out_dir: Path) -> None:
    if outcome.record["synthetic_connectome"]:
        console.print(f"[bold yellow]SYNTHETIC connectome[/] ({outcome.record['connectome_source']}): "
                      "not the real FlyWire data; run `flyhpc data fetch` for the real files.")
    r = outcome.record
    phases = Table(title=f"{r['backend']} · {r['experiment']} · {r['t_run_s']:g} s × {r['n_run']}")
    for col in ("spikes", "active", *r["phases_s"], "x real time"):
        phases.add_column(col, justify="right")
    ratio = r["realtime_ratio"]
    phases.add_row(str(r["spikes"]), str(r["active_neurons"]), *(f"{v:.3f}" for v in r["phases_s"].values()),
                   f"{ratio:.2f}" if ratio else "-")
    console.print(phases)
    disturbed = disturbance(r)
    if disturbed:
        console.print(f"[bold yellow]disturbed timing[/]: {disturbed} (another process had the CPUs)")
    tops = Table(title=f"top {top} neurons by rate")
    for col in ("neuron_index", "flywire_id", "rate_mean_hz", "rate_std_hz"):
        tops.add_column(col, justify="right")
    for row in outcome.rates.head(top).itertuples():
        tops.add_row(str(row.neuron_index), str(row.flywire_id), f"{row.rate_mean_hz:.1f}",
                     "-" if row.rate_std_hz != row.rate_std_hz else f"{row.rate_std_hz:.1f}")
    console.print(tops)
    parquet = out_dir / r["parquet"]
    console.print(f"spikes: {parquet}\nrates:  {out_dir / r['rates_csv']}\nrecord: {parquet.with_suffix('.json')}")
