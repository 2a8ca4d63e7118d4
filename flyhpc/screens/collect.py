"""`flyhpc collect` of a screen label: the chunks' files merged into one bundle, with the benchmark labels' rules.

Every planned chunk gets a manifest row with its state (`flyhpc.cluster.status.status`, every file hashed) and
reason; checksums.sha256 lists exactly the intact files (the plan, done chunks' parquet, CSVs and records,
error records, the merged files, the manifest). Only when every chunk is done are the merged files written:
`screen.parquet` (the tidy rates of every experiment, in plan order), `experiments.csv` (one row per
experiment with its timings), `readout.csv` (experiments x readout neurons, when the screen has readout
neurons), `effects.csv` (every experiment ranked by its paired effect relative to the base experiment, with
its uncertainty) and `neuron-effects.parquet` (every measured (experiment, neuron): paired change, standard
error, p and q; both `flyhpc.screens.effects`); an incomplete label has none of them (a stale one from an earlier collect is
removed), so a partial screen never looks whole. Idempotent: a second run writes identical bytes.
Entry points: `collect_screen`, `MANIFEST_COLUMNS`.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from flyhpc.bundle import BundlePaths
from flyhpc.collect import (CollectReport, csv_text, hash_files, hashed_status, label_paths, task_record,
                            write_if_changed)
from flyhpc.files import atomic_path, label_lock

MANIFEST_COLUMNS = ("task_key", "chunk", "first", "stop", "experiments", "state", "reason", "job_id", "rates_path",
                    "sha256", "rows", "spikes", "experiments_with_spikes", "sim_s", "total_s",
                    "overhead_ms_per_trial", "node")


def _write_bytes_if_changed(path: Path, content: bytes) -> None:
    if path.is_file() and path.read_bytes() == content:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(content)


def _merged_rates(parts: list[Path], plan_meta: dict[str, str]) -> bytes:
    tables = [pq.read_table(p) for p in parts]
    table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables]).combine_chunks()
    table = table.replace_schema_metadata(plan_meta)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_statistics=True)
    return buf.getvalue()


def _concat_csv(parts: list[Path]) -> str:
    texts = [p.read_text() for p in parts]
    header = texts[0].split("\n", 1)[0]
    return header + "\n" + "".join(t.split("\n", 1)[1] for t in texts)


def _chunk_row(task, state: str, reason: str, job_id: str, rec: dict | None, rel: str) -> dict[str, str]:
    row = {"task_key": task.key, "chunk": str(task.chunk), "first": str(task.first), "stop": str(task.stop),
           "experiments": str(task.n_experiments), "state": state, "reason": reason, "job_id": job_id}
    if rec is not None and state == "done":
        phases = rec.get("phases_s", {})
        row.update(rates_path=rel, sha256=rec["parquet_sha256"], rows=str(rec["parquet_rows"]),
                   spikes=str(rec.get("spikes", "")), experiments_with_spikes=str(rec.get("experiments_with_spikes", "")),
                   sim_s=f"{phases.get('sim', 0.0):.6f}", total_s=f"{phases.get('total', 0.0):.6f}",
                   overhead_ms_per_trial=f"{rec.get('overhead_per_trial_s', 0.0) * 1e3:.4f}", node=rec.get("node", ""))
    return row


def collect_screen(results_root: str | Path, run_label: str) -> CollectReport:
    """Write a screen label's manifest, checksums and (when every chunk is done) its merged files.

    Raises
    ------
    ConfigError
        The label folder or its submission.json does not exist (a missing or damaged screen plan is reported
        in the status: the label is incomplete).
    FlyhpcError
        Another flyhpc command holds the label's lock.
    """
    paths = label_paths(results_root, run_label)
    with label_lock(paths.lock, f"collect {run_label}"):
        planned, hashes, report = hashed_status(paths, deep=True)
        plan_ok = paths.screen_plan.name not in dict(report.damaged)
        manifest, intact, done, known = [], [paths.screen_plan] if plan_ok else [], [], {}
        for row in report.rows:
            task = planned[row.key]
            record_path, parquet = paths.record(task), paths.parquet(task)
            rec = task_record(row, record_path)
            if rec is not None:
                intact.append(record_path)
            if row.state == "done":
                done.append(task)
                extra = {parquet.parent / name: entry["sha256"] for name, entry in rec.get("extra_files", {}).items()}
                known.update(extra)  # hashed by the deep status against these very values
                intact += [parquet, *sorted(extra)]
            manifest.append(_chunk_row(task, row.state, row.reason, row.job_id, rec, paths.relative(parquet)))
        manifest.sort(key=lambda r: int(r["chunk"]))
        merged = _write_merged(paths, sorted(done, key=lambda t: t.chunk)) if report.complete else _drop_merged(paths)
        write_if_changed(paths.manifest, csv_text(MANIFEST_COLUMNS, manifest))
        listed = intact + merged + [paths.manifest]
        digests = {**hashes, **known}
        digests.update(hash_files([p for p in listed if p not in digests]))
        lines = sorted((paths.relative(p), digests[p]) for p in listed)
        write_if_changed(paths.checksums, "".join(f"{digest}  {rel}\n" for rel, digest in lines))
    return CollectReport(run_label, report, len(done), [*merged, paths.manifest, paths.checksums])


def _drop_merged(paths: BundlePaths) -> list[Path]:
    for path in (paths.screen_rates, paths.screen_experiments, paths.screen_readout, paths.screen_effects,
                 paths.screen_neuron_effects):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return []


def _write_merged(paths: BundlePaths, chunks: list) -> list[Path]:
    """screen.parquet, experiments.csv, readout.csv (if any), effects.csv and neuron-effects.parquet from the done
    chunks, in plan order."""
    from flyhpc.screens.effects import EFFECT_COLUMNS, Readout, paired_effects
    from flyhpc.screens.plan_file import read_plan

    plan = read_plan(paths.screen_plan, chunks[0].plan_sha256, 0, 0)
    parquets = [paths.parquet(t) for t in chunks]
    meta = {"flyhpc.screen": plan.screen.name, "flyhpc.plan_sha256": chunks[0].plan_sha256,
            "flyhpc.connectome_digest": chunks[0].connectome_digest, "flyhpc.t_run_s": repr(chunks[0].t_run_s),
            "flyhpc.n_run": str(chunks[0].n_run), "flyhpc.seed": str(chunks[0].seed),
            "flyhpc.silence_mode": plan.screen.silence_mode, "flyhpc.base_key": plan.base_key}
    _write_bytes_if_changed(paths.screen_rates, _merged_rates(parquets, meta))
    write_if_changed(paths.screen_experiments,
                     _concat_csv([p.parent / f"{t.stem}_experiments.csv" for p, t in zip(parquets, chunks)]))
    written = [paths.screen_rates, paths.screen_experiments]
    readout = None
    if plan.screen.readout.values:
        write_if_changed(paths.screen_readout,
                         _concat_csv([p.parent / f"{t.stem}_readout.csv" for p, t in zip(parquets, chunks)]))
        readout = Readout(plan.screen.readout.values, plan.screen.readout.labels, plan.screen.by)
        written.append(paths.screen_readout)
    experiments = pd.read_csv(paths.screen_experiments, dtype={"experiment_key": str})
    rates = pq.read_table(paths.screen_rates, columns=["experiment_key", "neuron_index", "flywire_id", "role",
                                                       "trial_spikes"])
    effects, neurons = paired_effects(experiments, rates, base_key=plan.base_key, n_run=chunks[0].n_run,
                                      t_run_s=chunks[0].t_run_s, readout=readout)
    write_if_changed(paths.screen_effects, effects.to_csv(index=False, columns=list(EFFECT_COLUMNS),
                                                          float_format="%.6g", lineterminator="\n"))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(neurons, preserve_index=False).replace_schema_metadata(meta), buf,
                   compression="zstd")
    _write_bytes_if_changed(paths.screen_neuron_effects, buf.getvalue())
    return [*written, paths.screen_effects, paths.screen_neuron_effects]
