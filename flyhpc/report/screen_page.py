"""`flyhpc report` of a collected screen label: one self-contained page of its paired effects.

Reads only the merged files `flyhpc collect` wrote (effects.csv, neuron-effects.parquet, screen.parquet,
experiments.csv, manifest.csv) and the chunk records; runs nothing. The page: the ranked effects with error
bars (1.96 standard errors), a heat map of the top experiments x the readout neurons (or the neurons that
changed most), change against the base with significant cells (q < 0.05) marked, the base experiment's most
active neurons, and health and provenance. Written like the benchmark report (`flyhpc.report.build`): each
figure as PNG and SVG, each table as CSV, report.html last. Entry point: `build_screen_report`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from flyhpc import __version__
from flyhpc.bundle import BundlePaths
from flyhpc.results.records import record_beside
from flyhpc.results.screen_tables import read_neuron_effects, read_screen_frame, screen_metadata
from flyhpc.results.tables import read_effects, read_manifest_frame
from flyhpc.errors import ConfigError
from flyhpc.report.build import ReportResult, ReportWriter
from flyhpc.report.page import Page, Section, TableBlock, render_page
from flyhpc.report.tables import csv_text, fmt, frame_rows
from flyhpc.screens.effects import ALPHA

TOP = 20
_EFFECT_TABLE = (("rank", "rank"), ("experiment_name", "experiment"), ("significant_effect_hz", "significant Hz"),
                 ("n_significant", "significant neurons"), ("n_tested", "tested"), ("effect_hz", "effect Hz"),
                 ("effect_se_hz", "± se Hz"), ("own_change_hz", "own change Hz"), ("top_neuron", "top neuron"),
                 ("top_change_hz", "its change Hz"), ("top_q", "q"))


def _effects_figure(effects: pd.DataFrame) -> Figure:
    top = effects.head(TOP).iloc[::-1]
    fig = Figure(figsize=(7.0, 0.28 * len(top) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(top))
    significant = top["n_significant"].to_numpy() > 0
    ax.barh(y, top["effect_hz"], xerr=1.96 * top["effect_se_hz"].fillna(0), color=np.where(significant, "#0072B2",
            "#bbbbbb"), error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.scatter(top["significant_effect_hz"].fillna(0), y, marker="|", s=120, color="#D55E00", zorder=3,
               gid="effects--significant")
    ax.set_yticks(y, [str(n)[:48] for n in top["experiment_name"]])
    ax.set_xlabel("Σ|paired change| (Hz), ±1.96 se; orange: significant neurons only")
    return fig


def _heat_map(effects: pd.DataFrame, neurons: pd.DataFrame, base_key: str) -> tuple[Figure, pd.DataFrame]:
    keys = [k for k in effects["experiment_key"] if k != base_key][:TOP]
    rows = neurons[neurons["experiment_key"].isin(keys)]
    if (rows["label"] != rows["flywire_id"].astype(str)).any():  # readout labels: every readout neuron
        columns = list(dict.fromkeys(rows["label"]))
    else:
        biggest = rows.groupby("label")["change_hz"].apply(lambda c: c.abs().max()).sort_values(ascending=False)
        columns = list(biggest.index[:TOP])
    grid = rows.pivot_table(index="experiment_key", columns="label", values="change_hz", aggfunc="first")
    grid = grid.reindex(index=keys, columns=columns).fillna(0.0)
    marks = rows.pivot_table(index="experiment_key", columns="label", values="significant", aggfunc="first")
    marks = marks.reindex(index=keys, columns=columns).fillna(False).astype(bool)
    fig = Figure(figsize=(1.8 + 0.32 * max(1, len(columns)), 0.28 * max(1, len(keys)) + 1.8), layout="constrained")
    ax = fig.add_subplot()
    limit = float(np.abs(grid.to_numpy()).max()) if grid.size else 1.0
    image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit or -1, vmax=limit or 1, aspect="auto",
                      gid="heatmap--cells")
    yy, xx = np.nonzero(marks.to_numpy())
    ax.scatter(xx, yy, marker="o", s=8, color="black", gid="heatmap--significant")
    names = dict(zip(effects["experiment_key"], effects["experiment_name"]))
    ax.set_yticks(range(len(keys)), [str(names[k])[:40] for k in keys])
    ax.set_xticks(range(len(columns)), columns, rotation=90)
    fig.colorbar(image, ax=ax, label="change vs base (Hz)")
    table = grid.copy()
    table.insert(0, "experiment", [names[k] for k in keys])
    return fig, table.reset_index()


def _base_figure(base: pd.DataFrame) -> Figure:
    top = base.sort_values("rate_mean_hz", ascending=False).head(TOP).iloc[::-1]
    fig = Figure(figsize=(6.0, 0.25 * max(1, len(top)) + 1.0), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(np.arange(len(top)), top["rate_mean_hz"], xerr=top["rate_std_hz"].fillna(0), color="#009E73",
            error_kw={"elinewidth": 0.8})
    ax.set_yticks(np.arange(len(top)), [f"{i} ({r})" if r else str(i) for i, r in zip(top["flywire_id"], top["role"])])
    ax.set_xlabel("rate in the base experiment (Hz; bar: sd over trials)")
    return fig


def _provenance(paths: BundlePaths, meta: dict[str, str], manifest: pd.DataFrame) -> list[dict[str, str]]:
    records = [record_beside(paths.label_dir / p) for p in manifest["rates_path"].dropna() if p]
    first = records[0] if records else {}
    items = [("screen", meta.get("flyhpc.screen", "")), ("plan sha256", meta.get("flyhpc.plan_sha256", "")),
             ("t_run × n_run", f"{meta.get('flyhpc.t_run_s', '')} s × {meta.get('flyhpc.n_run', '')}"),
             ("seed", meta.get("flyhpc.seed", "")), ("silence mode", meta.get("flyhpc.silence_mode", "")),
             ("drive version", str(first.get("drive_version", 1))),
             ("connectome", f"{first.get('connectome_source', '')} (sha256 {meta.get('flyhpc.connectome_digest', '')[:16]}…)"),
             ("backend", ", ".join(sorted({str(r.get("backend", "")) for r in records}))),
             ("nodes", ", ".join(sorted({str(r.get("node", "")) for r in records}))),
             ("made by", ", ".join(sorted({str(r.get("flyhpc_version", "")) for r in records})))]
    return [{"item": k, "value": v} for k, v in items]


def build_screen_report(results_root: str | Path, label: str, out_dir: Path | None = None) -> ReportResult:
    """Write the page of a collected screen label into `out_dir` (default results/<label>/report/).

    Raises
    ------
    ConfigError
        The label is not a screen, or not collected complete (no effects.csv: run `flyhpc collect` when every
        chunk is done).
    """
    paths = BundlePaths(results_root, label)
    if not paths.screen_plan.is_file():
        raise ConfigError(f"run label {label!r} holds no screen ({paths.screen_plan} is missing)")
    if not (paths.screen_effects.is_file() and paths.screen_neuron_effects.is_file()):
        raise ConfigError(f"screen label {label!r} has no effects yet: run `flyhpc collect {label}` once every chunk "
                          f"is done ({paths.screen_effects} is missing)")
    effects = read_effects(paths.screen_effects)
    neurons = read_neuron_effects(paths.screen_neuron_effects)
    meta = screen_metadata(paths.screen_rates)
    base_key = meta.get("flyhpc.base_key", "")
    rates = read_screen_frame(paths.screen_rates, columns=["experiment_key", "flywire_id", "rate_mean_hz",
                                                           "rate_std_hz", "role"])
    base = rates[rates["experiment_key"] == base_key]
    manifest = read_manifest_frame(paths.manifest)
    out = ReportWriter(Path(out_dir) if out_dir else paths.label_dir / "report")
    out.text("effects.csv", paths.screen_effects.read_text())
    effects_fig = out.figure("effects", _effects_figure(effects),
                             f"The {min(TOP, len(effects))} largest effects, ranked as effects.csv ranks them: Σ|mean "
                             "paired change| over the measured neurons with 1.96 standard errors; blue: at least one "
                             f"neuron changed significantly (Benjamini-Hochberg q < {ALPHA}); orange: the sum over those.")
    heat_fig, heat = _heat_map(effects, neurons, base_key)
    out.text("heatmap.csv", heat.to_csv(index=False, float_format="%.6g"))
    heat_block = out.figure("heatmap", heat_fig, "Mean paired change against the base (Hz) of the top experiments "
                            "(rows) on the readout neurons, or the neurons that changed most (columns); dots: q < 0.05.")
    prov = _provenance(paths, meta, manifest)
    synthetic = any(r["item"] == "connectome" and "synthetic" in r["value"] for r in prov)
    n_exp, n_sig = len(effects), int((effects["n_significant"].fillna(0) > 0).sum())
    sections = [
        Section("effects", "Ranked effects", [
            f"{n_exp} experiments, {n_sig} with at least one significantly changed neuron. Trials are paired with the "
            "base experiment's (common input trains, drive version 2), so an experiment with no effect shows exactly "
            "0. The neurons an experiment drives or silences are not measured; their change is 'own change'."],
            [effects_fig, TableBlock("Top of effects.csv", _EFFECT_TABLE,
                                     [{k: fmt(v) for k, v in r.items()} for r in frame_rows(effects.head(TOP))])]),
        Section("heatmap", "Experiments × neurons", [], [heat_block])]
    if len(base):
        sections.append(Section("base", "The base experiment", [], [out.figure(
            "base", _base_figure(base), "The base experiment's most active neurons (driven ones marked), mean rate "
                                        "over trials.")]))
    states = manifest["state"].value_counts().to_dict()
    sections.append(Section("health", "Health and provenance", [
        "Chunks: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))],
        [TableBlock("Provenance", (("item", "item"), ("value", "value")), prov),
         TableBlock("Chunks (manifest.csv)", (("chunk", "chunk"), ("experiments", "experiments"), ("state", "state"),
                                               ("reason", "reason"), ("node", "node")),
                    frame_rows(manifest), state_key="state", scroll=True)]))
    out.text("health.csv", csv_text(list(manifest.columns), frame_rows(manifest)))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    banners = [("warn", "Synthetic connectome: these effects say nothing about the fly's brain.")] if synthetic else []
    page = Page(title=f"flyhpc screen report: {label}",
                subtitle=f"{meta.get('flyhpc.screen', '')} · {n_exp} experiments · generated {stamp} by flyhpc "
                         f"{__version__} from {paths.label_dir}",
                banners=banners, sections=sections,
                footer="Made by `flyhpc report` from the collected screen only (nothing re-run). Figures are also "
                       "beside this page as PNG and SVG, tables as CSV.")
    html = out.finish(render_page(page))
    done = int((manifest["state"] == "done").sum())
    return ReportResult(out.out_dir, html, out.files, len(manifest), done)

