"""The rows of a label's CSV files: benchmark-results.csv and manifest.csv (a benchmark label's and a screen
label's), their columns declared once.

benchmark-results.csv keeps the seed's 18 columns in order, then ours (docs/DESIGN.md §3); a benchmark label's
manifest.csv has a row per planned task (the seed's manifest columns, then sha256, drive, dtype, key, state,
reason, job id); a screen label's a row per chunk. Values are strings as they go into the file. Reads and writes
no file. Entry points: `result_row`, `done_row`, `planned_row`, `chunk_row`, `RESULT_COLUMNS`, `MANIFEST_COLUMNS`,
`SCREEN_MANIFEST_COLUMNS`, `GLOBAL_KEY`, `result_order`.
"""

from __future__ import annotations

import json
import math

from flyhpc.results.spikes import SCHEMA_VERSION
from flyhpc.timing import disturbance, sim_share

SEED_COLUMNS = ("framework", "n_run", "t_run", "setup_time", "build_time", "sim_time", "total_time",
                "realtime_ratio", "spikes", "active_neurons", "status", "timestamp", "backend_key", "experiment",
                "experiment_key", "run_label", "round", "spike_path")
OUR_COLUMNS = ("load_time", "collect_time", "write_time", "sim_inner_time", "drive", "drive_version", "dtype", "seed",
               "trials", "node", "device", "threads", "versions", "job_id", "array_job_id", "array_task_id", "image_digest",
               "connectome_source", "connectome_digest", "synthetic_connectome", "parquet_sha256", "flyhpc_version",
               "sim_cpu_time", "sim_threads", "cpu_share", "cpus_usable", "load_start", "load_end", "disturbed")
RESULT_COLUMNS = SEED_COLUMNS + OUR_COLUMNS
SEED_MANIFEST_COLUMNS = ("run_label", "round", "framework", "backend_key", "experiment", "experiment_key", "n_run",
                         "t_run", "spike_path", "spikes", "active_neurons", "status", "timestamp",
                         "spike_schema_version", "spike_time_column", "spike_time_unit")
MANIFEST_COLUMNS = SEED_MANIFEST_COLUMNS + ("sha256", "drive", "dtype", "task_key", "state", "reason", "job_id")
GLOBAL_KEY = ("framework", "n_run", "t_run", "experiment_key", "run_label", "round")
SCREEN_MANIFEST_COLUMNS = ("task_key", "chunk", "first", "stop", "experiments", "state", "reason", "job_id",
                           "rates_path", "sha256", "rows", "spikes", "experiments_with_spikes", "sim_s", "total_s",
                           "overhead_ms_per_trial", "node")


def _fmt(value, digits: int | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}" if digits is not None else repr(value)
    return str(value)


def _timestamp(rec: dict) -> str:
    stamp = rec.get("finished_utc") or rec.get("started_utc") or ""
    return stamp.replace("T", " ").rstrip("Z")


def _load1(rec: dict, key: str) -> str:
    """The 1-minute load average of `load_avg_start` / `load_avg_end`."""
    load = rec.get(key) or []
    return _fmt(float(load[0]), 2) if load else ""


def result_row(rec: dict, spike_path: str, framework: str) -> dict[str, str]:
    """One benchmark-results.csv row from a task record (every value a string); `framework`: the display name
    for a record without one (`flyhpc.pipeline.framework_name`)."""
    ph = rec.get("phases_s") or {}
    share = sim_share(rec)
    ok = rec["status"] == "success"
    sim = ph.get("sim", 0.0)
    ratio = (rec["t_run_s"] * rec["n_run"] / sim if sim > 0 else math.inf) if ok else None
    return {
        "framework": rec.get("framework") or framework,
        "n_run": str(rec["n_run"]), "t_run": repr(float(rec["t_run_s"])),
        "setup_time": _fmt(ph.get("setup", 0.0), 3), "build_time": _fmt(ph.get("build", 0.0), 3),
        "sim_time": _fmt(ph.get("sim", 0.0), 6), "total_time": _fmt(ph.get("total", 0.0), 6),
        "realtime_ratio": _fmt(ratio, 4), "spikes": str(rec.get("spikes", 0)),
        "active_neurons": str(rec.get("active_neurons", 0)), "status": rec["status"],
        "timestamp": _timestamp(rec), "backend_key": rec["backend"], "experiment": rec.get("experiment", ""),
        "experiment_key": rec.get("experiment_key", ""), "run_label": rec["run_label"], "round": str(rec["round"]),
        "spike_path": spike_path,
        "load_time": _fmt(ph.get("load", 0.0), 6), "collect_time": _fmt(ph.get("collect", 0.0), 6),
        "write_time": _fmt(ph.get("write", 0.0), 6), "sim_inner_time": _fmt(rec.get("sim_inner_s"), 6),
        "drive": rec.get("drive", ""), "drive_version": str(rec.get("drive_version", 1)),
        "dtype": rec.get("dtype", ""), "seed": str(rec.get("seed", "")),
        "trials": " ".join(str(t) for t in rec.get("trials", [])), "node": rec.get("node", ""),
        "device": rec.get("device", ""), "threads": _fmt(rec.get("threads")),
        "versions": json.dumps(rec.get("versions", {}), sort_keys=True, separators=(",", ":")),
        "job_id": rec.get("job_id", ""), "array_job_id": rec.get("array_job_id", ""),
        "array_task_id": rec.get("array_task_id", ""), "image_digest": rec.get("image_digest", ""),
        "connectome_source": rec.get("connectome_source", ""), "connectome_digest": rec.get("connectome_digest", ""),
        "synthetic_connectome": _fmt(rec.get("synthetic_connectome")), "parquet_sha256": rec.get("parquet_sha256", ""),
        "flyhpc_version": rec.get("flyhpc_version", ""),
        "sim_cpu_time": _fmt((rec.get("phases_cpu_s") or {}).get("sim"), 6),
        "sim_threads": _fmt(rec.get("sim_threads")), "cpu_share": _fmt(share.value, 3) if share else "",
        "cpus_usable": _fmt(rec.get("cpus_usable")), "load_start": _load1(rec, "load_avg_start"),
        "load_end": _load1(rec, "load_avg_end"), "disturbed": disturbance(rec) if ok else "",
    }


def result_order(row: dict[str, str]) -> tuple:
    """The order of benchmark-results.csv and a benchmark manifest: round, backend, n_run, t_run."""
    return int(row["round"]), row["backend_key"], int(row["n_run"]), float(row["t_run"])


def done_row(result: dict[str, str], rec: dict, key: str, job_id: str) -> dict[str, str]:
    """A benchmark manifest row of a done task, from its results row (`result_row`) and record."""
    return {**{k: result[k] for k in SEED_MANIFEST_COLUMNS if k in result},
            "spike_schema_version": SCHEMA_VERSION, "spike_time_column": "time_ms", "spike_time_unit": "ms",
            "sha256": rec["parquet_sha256"], "drive": result["drive"], "dtype": result["dtype"],
            "task_key": key, "state": "done", "reason": "", "job_id": job_id}


def planned_row(task, framework: str, state: str, reason: str, job_id: str) -> dict[str, str]:
    """A benchmark manifest row of a planned task (`task`: a BenchmarkTask) that has no valid result."""
    return {"run_label": task.run_label, "round": str(task.round), "framework": framework,
            "backend_key": task.backend, "experiment_key": task.experiment, "n_run": str(task.n_run),
            "t_run": repr(float(task.t_run_s)), "status": state, "task_key": task.key, "state": state,
            "reason": reason, "job_id": job_id}


def chunk_row(task, state: str, reason: str, job_id: str, rec: dict | None, rel: str) -> dict[str, str]:
    """A screen label's manifest row of one chunk (`task`: a ScreenTask); what it measured when it is done."""
    row = {"task_key": task.key, "chunk": str(task.chunk), "first": str(task.first), "stop": str(task.stop),
           "experiments": str(task.n_experiments), "state": state, "reason": reason, "job_id": job_id}
    if rec is not None and state == "done":
        phases = rec.get("phases_s", {})
        row.update(rates_path=rel, sha256=rec["parquet_sha256"], rows=str(rec["parquet_rows"]),
                   spikes=str(rec.get("spikes", "")), experiments_with_spikes=str(rec.get("experiments_with_spikes", "")),
                   sim_s=f"{phases.get('sim', 0.0):.6f}", total_s=f"{phases.get('total', 0.0):.6f}",
                   overhead_ms_per_trial=f"{rec.get('overhead_per_trial_s', 0.0) * 1e3:.4f}", node=rec.get("node", ""))
    return row
