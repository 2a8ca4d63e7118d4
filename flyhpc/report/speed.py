"""Speed and phase tables from benchmark-results.csv rows (this label's and any reference's).

`timings` turns CSV rows (the seed's 12 or 18 columns, or flyhpc's with phases and the `disturbed`
verdict) into one tidy frame; `speed_table` gives median/min/max over rounds per (source, backend, t_run,
n_run), wall seconds per simulated trial-second, the speed-up over brian2cpp of the same source and how
many of the rounds were disturbed; `disturbed_rows` lists those timings; `phase_table` the median phases
of one grid point. Pure pandas, no files. Entry points: `timings`, `speed_table`, `disturbed_rows`,
`phase_table`, `choose_point`.
"""

from __future__ import annotations

import math

import pandas as pd

BASELINE = "brian2cpp"
PHASES = ("load", "build", "setup", "sim", "collect", "write")
SPEED_COLUMNS = ("source", "backend", "framework", "t_run_s", "n_run", "rounds", "sim_median_s", "sim_min_s",
                 "sim_max_s", "total_median_s", "total_min_s", "total_max_s", "sim_s_per_sim_s",
                 "total_s_per_sim_s", "sim_s_per_trial", "speedup_sim_vs_brian2cpp", "speedup_total_vs_brian2cpp",
                 "disturbed_rounds")
DISTURBED_COLUMNS = ("source", "task", "backend", "t_run_s", "n_run", "round", "reason")
_CSV_TIMES = {"sim": "sim_time", "total": "total_time", "setup": "setup_time", "build": "build_time",
              "load": "load_time", "collect": "collect_time", "write": "write_time"}


def _number(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def timings(rows: list[dict[str, str]], source: str, backend_of=lambda row: row.get("backend_key", "")) -> pd.DataFrame:
    """One row per successful benchmark: source, task, backend, framework, t_run_s, n_run, round, phase
    seconds, the sim's `cpu_share` and `disturbed` (why its sim timing is not to be trusted, or "").

    Rows whose status is not `success` are left out (their times mean nothing); a phase missing
    from the CSV (the seed has no load/collect/write) is NaN; a CSV without the verdict reads "".
    """
    out = []
    for row in rows:
        if row.get("status", "success") != "success":
            continue
        out.append({"source": source, "task": (row.get("spike_path") or "").removesuffix(".parquet"),
                    "backend": backend_of(row), "framework": row.get("framework", ""),
                    "t_run_s": float(row["t_run"]), "n_run": int(float(row["n_run"])), "round": row.get("round", ""),
                    **{phase: _number(row.get(col)) for phase, col in _CSV_TIMES.items()},
                    "cpu_share": _number(row.get("cpu_share")), "disturbed": row.get("disturbed") or ""})
    columns = ["source", "task", "backend", "framework", "t_run_s", "n_run", "round", *_CSV_TIMES, "cpu_share",
               "disturbed"]
    return pd.DataFrame(out, columns=columns)


def speed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Median, min and max over rounds of sim and total per (source, backend, t_run, n_run).

    `sim_s_per_sim_s` = median sim / (t_run x n_run): wall seconds per simulated trial-second (below 1
    is faster than real time); `speedup_*_vs_brian2cpp` = brian2cpp's median / this median, at the
    same point of the same source (empty where that source has no brian2cpp); `disturbed_rounds` how
    many of the rounds had a disturbed sim timing.
    """
    if frame.empty:
        return pd.DataFrame(columns=SPEED_COLUMNS)
    keys = ["source", "backend", "t_run_s", "n_run"]
    grouped = frame.groupby(keys, sort=True)
    table = grouped.agg(framework=("framework", "first"), rounds=("sim", "size"),
                        sim_median_s=("sim", "median"), sim_min_s=("sim", "min"), sim_max_s=("sim", "max"),
                        total_median_s=("total", "median"), total_min_s=("total", "min"),
                        total_max_s=("total", "max"),
                        disturbed_rounds=("disturbed", lambda s: int((s != "").sum()))).reset_index()
    trial_seconds = table["t_run_s"] * table["n_run"]
    table["sim_s_per_sim_s"] = table["sim_median_s"] / trial_seconds
    table["total_s_per_sim_s"] = table["total_median_s"] / trial_seconds
    table["sim_s_per_trial"] = table["sim_median_s"] / table["n_run"]
    base = table[table["backend"] == BASELINE].set_index(["source", "t_run_s", "n_run"])
    index = pd.MultiIndex.from_frame(table[["source", "t_run_s", "n_run"]])
    for phase in ("sim", "total"):
        ref = base[f"{phase}_median_s"].reindex(index).to_numpy()
        table[f"speedup_{phase}_vs_brian2cpp"] = ref / table[f"{phase}_median_s"].to_numpy()
    return table[list(SPEED_COLUMNS)]


def disturbed_rows(frame: pd.DataFrame) -> list[dict]:
    """The timings flagged as disturbed, one dict per (source, task), under `DISTURBED_COLUMNS`."""
    sel = frame[frame["disturbed"] != ""].sort_values(["source", "backend", "t_run_s", "n_run", "round"])
    return [{"source": r.source, "task": r.task, "backend": r.backend, "t_run_s": r.t_run_s, "n_run": r.n_run,
             "round": r.round, "reason": r.disturbed} for r in sel.itertuples()]


def phase_table(frame: pd.DataFrame, source: str, t_run_s: float, n_run: int) -> pd.DataFrame:
    """Median seconds of each phase (and total) per backend at one grid point of one source."""
    sel = frame[(frame["source"] == source) & (frame["t_run_s"] == t_run_s) & (frame["n_run"] == n_run)]
    table = sel.groupby("backend", sort=True)[[*PHASES, "total"]].median().reset_index()
    table.insert(1, "framework", [sel[sel["backend"] == b]["framework"].iloc[0] for b in table["backend"]])
    return table.rename(columns={p: f"{p}_s" for p in [*PHASES, "total"]})


def choose_point(frame: pd.DataFrame, source: str) -> tuple[float, int]:
    """The (t_run, n_run) of `source` run by the most backends; ties go to the most trial-seconds."""
    sel = frame[frame["source"] == source]
    per_point = sel.groupby(["t_run_s", "n_run"])["backend"].nunique().reset_index()
    per_point["work"] = per_point["t_run_s"] * per_point["n_run"]
    best = per_point.sort_values(["backend", "work", "n_run"], ascending=False).iloc[0]
    return float(best["t_run_s"]), int(best["n_run"])
