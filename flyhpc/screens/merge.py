"""What collect merges for a screen label: the done chunks' files joined into the label's screen tables.

Only when every chunk is done (`flyhpc.collect.collect` asks the screen kind, `ScreenTask.merge`):
`screen.parquet` (the tidy rates of every experiment, in plan order), `experiments.csv` (one row per experiment
with its timings), `readout.csv` (experiments x readout neurons, when the screen has readout neurons),
`effects.csv` (every experiment ranked by its paired effect relative to the base experiment, with its
uncertainty) and `neuron-effects.parquet` (every measured (experiment, neuron): paired change, standard error,
p and q; both `flyhpc.screens.effects`); an incomplete label has none of them (a stale one from an earlier
collect is removed). Idempotent: a second run writes identical bytes. Entry points: `write_merged`,
`drop_merged`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pyarrow as pa

from flyhpc.bundle import BundlePaths
from flyhpc.results.parquet import parquet_bytes
from flyhpc.results.screen_tables import read_experiments, read_screen_table
from flyhpc.results.tables import concat_csv, frame_csv, write_bytes_if_changed, write_if_changed
from flyhpc.screens.effects import EFFECT_COLUMNS, Readout, paired_effects
from flyhpc.screens.plan_file import read_plan


def _merged_rates(parts: list[Path], plan_meta: dict[str, str]) -> bytes:
    tables = [read_screen_table(p) for p in parts]
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables]).combine_chunks()
    return parquet_bytes(table, plan_meta)


def drop_merged(paths: BundlePaths) -> list[Path]:
    """Remove the merged files of an incomplete label (so a partial screen never looks whole)."""
    for path in (paths.screen_rates, paths.screen_experiments, paths.screen_readout, paths.screen_effects,
                 paths.screen_neuron_effects):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return []


def write_merged(paths: BundlePaths, chunks: list) -> list[Path]:
    """screen.parquet, experiments.csv, readout.csv (if any), effects.csv and neuron-effects.parquet from the done
    chunks, in plan order."""
    plan = read_plan(paths.screen_plan, chunks[0].plan_sha256, 0, 0)
    parquets = [paths.parquet(t) for t in chunks]
    meta = {"flyhpc.screen": plan.screen.name, "flyhpc.plan_sha256": chunks[0].plan_sha256,
            "flyhpc.connectome_digest": chunks[0].connectome_digest, "flyhpc.t_run_s": repr(chunks[0].t_run_s),
            "flyhpc.n_run": str(chunks[0].n_run), "flyhpc.seed": str(chunks[0].seed),
            "flyhpc.silence_mode": plan.screen.silence_mode, "flyhpc.base_key": plan.base_key}
    write_bytes_if_changed(paths.screen_rates, _merged_rates(parquets, meta))
    write_if_changed(paths.screen_experiments,
                     concat_csv([p.parent / f"{t.stem}_experiments.csv" for p, t in zip(parquets, chunks)]))
    written = [paths.screen_rates, paths.screen_experiments]
    readout = None
    if plan.screen.readout.values:
        write_if_changed(paths.screen_readout,
                         concat_csv([p.parent / f"{t.stem}_readout.csv" for p, t in zip(parquets, chunks)]))
        readout = Readout(plan.screen.readout.values, plan.screen.readout.labels, plan.screen.by)
        written.append(paths.screen_readout)
    experiments = read_experiments(paths.screen_experiments)
    rates = read_screen_table(paths.screen_rates, ["experiment_key", "neuron_index", "flywire_id", "role",
                                                   "trial_spikes"])
    effects, neurons = paired_effects(experiments, rates, base_key=plan.base_key, n_run=chunks[0].n_run,
                                      t_run_s=chunks[0].t_run_s, readout=readout)
    write_if_changed(paths.screen_effects, frame_csv(effects, EFFECT_COLUMNS, "%.6g"))
    write_bytes_if_changed(paths.screen_neuron_effects,
                           parquet_bytes(pa.Table.from_pandas(neurons, preserve_index=False), meta))
    return [*written, paths.screen_effects, paths.screen_neuron_effects]
