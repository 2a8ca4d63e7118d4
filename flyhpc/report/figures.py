"""The report's figures, drawn with matplotlib's object API (no pyplot, no global state) and rendered to PNG + SVG.

One colour per backend across every figure (Okabe-Ito, colour-blind safe); references are drawn in
their backend's colour, dashed with open markers; a speed point with a disturbed round gets a red ring.
Every drawn series carries a gid (its element id in the SVG, unique in the figure), e.g.
`p0x1--line--<source>--<backend>`, `p1x0--realtime`. Writes no files: `render` returns bytes and text.
Entry points: `speed_figure`, `batching_figure`, `phases_figure`, `parity_figure`, `activity_figure`,
`paper_figure`, `render`, `colour`.
"""

from __future__ import annotations

import functools
import io
import math
import re

import numpy as np
import pandas as pd
from matplotlib import rc_context

from flyhpc import backends
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

# Okabe & Ito (2008) colours, one per backend in registry order (flyhpc.backends: the seed's order, native last).
_OKABE_ITO = ("#0072B2", "#56B4E9", "#D55E00", "#CC79A7", "#009E73", "#E69F00", "#000000", "#F0E442")
_EXTRA = ("#6e6e6e", "#a0a0a0", "#3b3b3b")
PHASE_COLOURS = {"load": "#00204C", "build": "#414D6B", "setup": "#7C7B78", "sim": "#BCAF6F", "collect": "#F2D33F",
                 "write": "#FFEA46"}  # cividis: ordered, readable with any colour vision
STYLE = {"svg.fonttype": "none", "svg.hashsalt": "flyhpc-report", "font.size": 9, "axes.titlesize": 9,
         "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8}
SPEED_Y = "wall s per simulated trial-second"
DISTURBED_COLOUR = "#C00000"


def colour(backend: str) -> str:
    """The backend's colour: by its place in the registry for the first eight, else a grey (stable by name)."""
    order = backends.names()
    if backend in order and order.index(backend) < len(_OKABE_ITO):
        return _OKABE_ITO[order.index(backend)]
    return _EXTRA[sum(backend.encode()) % len(_EXTRA)]


def _styled(draw):
    """Create the figure under the report's rc settings (sizes are fixed when artists are made)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def backend_sort(backend: str) -> tuple[int, str]:
    """Sort key: registry order, then others (e.g. a reference's unknown backend) by name."""
    order = backends.names()
    return (order.index(backend) if backend in order else len(order), backend)


def _log(ax, axis: str = "xy", base: int = 10, ticks=None) -> None:
    """Log scale with plain tick labels (0.1, 1, 10; no mathtext, which is slow and harder to read).

    With `ticks` (the grid's values), exactly those are marked; otherwise decades, and 2 and 5 times
    them when the axis spans less than 2.5 decades (so a short axis is never left without numbers).
    """
    for name in axis:
        target = ax.xaxis if name == "x" else ax.yaxis
        (ax.set_xscale if name == "x" else ax.set_yscale)("log", base=base)
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if ticks is not None:
            target.set_ticks(sorted(ticks))
            target.set_minor_locator(NullLocator())
            continue

        def minor(v, _, target=target):
            lo, hi = sorted(target.get_view_interval())
            return f"{v:g}" if lo > 0 and hi / lo < 300 else ""

        target.set_minor_locator(LogLocator(base, subs=(2.0, 5.0)))
        target.set_minor_formatter(FuncFormatter(minor))


def _grid(n_panels: int, n_rows: int = 1, width: float = 3.4, height: float = 2.9) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(max(1, n_panels) * width + 0.6, n_rows * height + 0.9), layout="constrained")
    axes = fig.subplots(n_rows, max(1, n_panels), squeeze=False)
    return fig, axes


def slug(text: str) -> str:
    """`text` as a piece of an SVG id: letters, digits, `_`, `-` and `.` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))


def gid(ax, *parts: str) -> str:
    """An id unique in the figure: the panel's grid position, then `parts`, joined by `--`."""
    spec = ax.get_subplotspec()
    return "--".join([f"p{spec.rowspan.start}x{spec.colspan.start}", *(slug(p) for p in parts)])


def _line(ax, frame: pd.DataFrame, x: str, y: str, lo: str | None, hi: str | None, source: str, backend: str,
          label: str, reference: bool) -> None:
    frame = frame.sort_values(x)
    c = colour(backend)
    line, = ax.plot(frame[x], frame[y], color=c, marker="o" if not reference else "s", markersize=4,
                    linestyle="--" if reference else "-", markerfacecolor="white" if reference else c, label=label)
    line.set_gid(gid(ax, "line", source, backend))
    if lo and hi and not reference:
        ax.vlines(frame[x], frame[lo], frame[hi], color=c, linewidth=1.2, alpha=0.8)
    hit = frame[frame["disturbed_rounds"] > 0] if "disturbed_rounds" in frame else frame.iloc[:0]
    if not hit.empty:  # a ring around each point whose rounds include a disturbed timing
        ax.scatter(hit[x], hit[y], s=90, facecolors="none", edgecolors=DISTURBED_COLOUR, linewidths=1.2,
                   label="disturbed timing", zorder=3).set_gid(gid(ax, "disturbed", source, backend))


def _realtime(ax) -> None:
    line = ax.axhline(1.0, color="#555555", linewidth=0.8, linestyle=":", label="real time")
    line.set_gid(gid(ax, "realtime"))


def _legend(fig: Figure, axes) -> None:
    seen: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside lower center", ncols=min(3, len(seen)),
                   frameon=False)


def _label(row, own: str) -> str:
    return row.framework if row.source == own else f"{row.framework} — {row.source}"


@_styled
def speed_figure(speed: pd.DataFrame, own: str) -> Figure:
    """Sim (top row) and total (bottom row) wall seconds per simulated trial-second against t_run, log-log,
    one panel per n_run, one line per (source, backend); median over rounds with min-max whiskers."""
    n_values = sorted(speed["n_run"].unique())
    fig, axes = _grid(len(n_values), 2)
    for col, n in enumerate(n_values):
        for row, phase in enumerate(("sim", "total")):
            ax = axes[row, col]
            sel = speed[speed["n_run"] == n].copy()
            ts = sel["t_run_s"] * sel["n_run"]
            sel["y"], sel["lo"], sel["hi"] = (sel[f"{phase}_median_s"] / ts, sel[f"{phase}_min_s"] / ts,
                                              sel[f"{phase}_max_s"] / ts)
            for (source, backend), grp in sorted(sel.groupby(["source", "backend"]),
                                                 key=lambda kv: (kv[0][0] != own, backend_sort(kv[0][1]))):
                grp = grp.dropna(subset=["y"])
                if grp.empty:
                    continue
                _line(ax, grp, "t_run_s", "y", "lo", "hi", source, backend,
                      _label(grp.iloc[0], own), source != own)
            _realtime(ax)
            _log(ax, "x", ticks=sel["t_run_s"].unique())
            _log(ax, "y")
            ax.set_xlabel("t_run (s)")
            ax.set_ylabel(f"{phase} {SPEED_Y}" if col == 0 else "")
            ax.set_title(f"{phase} phase, n_run = {n}" if phase == "sim" else f"total task, n_run = {n}")
            ax.grid(True, which="major", linewidth=0.3, alpha=0.5)
    _legend(fig, axes)
    return fig


@_styled
def batching_figure(speed: pd.DataFrame, own: str) -> Figure:
    """Sim wall seconds per simulated trial-second against n_run, one panel per t_run (at most 4 in a row):
    how batching pays off."""
    t_values = sorted(speed["t_run_s"].unique())
    n_cols = min(4, len(t_values))
    fig, axes = _grid(n_cols, math.ceil(len(t_values) / n_cols))
    for extra in np.ravel(axes)[len(t_values):]:
        fig.delaxes(extra)
    for i, t in enumerate(t_values):
        col, ax = i % n_cols, np.ravel(axes)[i]
        sel = speed[speed["t_run_s"] == t]
        for (source, backend), grp in sorted(sel.groupby(["source", "backend"]),
                                             key=lambda kv: (kv[0][0] != own, backend_sort(kv[0][1]))):
            grp = grp.dropna(subset=["sim_s_per_sim_s"])
            if not grp.empty:
                _line(ax, grp, "n_run", "sim_s_per_sim_s", None, None, source, backend,
                      _label(grp.iloc[0], own), source != own)
        _realtime(ax)
        _log(ax, "x", base=2, ticks=sel["n_run"].unique())
        _log(ax, "y")
        ax.set_xlabel("n_run (trials per task)")
        ax.set_ylabel(f"sim {SPEED_Y}" if col == 0 else "")
        ax.set_title(f"t_run = {t:g} s")
        ax.grid(True, which="major", linewidth=0.3, alpha=0.5)
    _legend(fig, axes)
    return fig


@_styled
def phases_figure(phases: pd.DataFrame, t_run_s: float, n_run: int) -> Figure:
    """Stacked horizontal bars of the median phase seconds per backend at one grid point."""
    phases = phases.sort_values("backend", key=lambda s: s.map(backend_sort), ascending=False)
    fig = Figure(figsize=(7.2, 0.5 * len(phases) + 1.6), layout="constrained")
    ax = fig.subplots()
    left = np.zeros(len(phases))
    for phase, c in PHASE_COLOURS.items():
        values = phases[f"{phase}_s"].fillna(0.0).to_numpy()
        bars = ax.barh(phases["framework"], values, left=left, color=c, edgecolor="white", linewidth=0.5,
                       label=phase)
        for bar, backend in zip(bars, phases["backend"]):
            bar.set_gid(gid(ax, "phase", phase, backend))
        left += values
    for tick, backend in zip(ax.get_yticklabels(), phases["backend"]):
        tick.set_color(colour(backend))
    ax.set_xlabel("wall seconds (median over rounds)")
    ax.set_ylabel("backend")
    ax.set_title(f"where the time goes: t_run = {t_run_s:g} s, n_run = {n_run}")
    ax.legend(loc="lower right", ncols=3, frameon=False)
    ax.margins(x=0.02)
    return fig


@_styled
def parity_figure(scatters, reference_name: str) -> Figure:
    """Per-neuron rate of each backend against the ground truth (log axes, identity line); silent neurons
    are drawn at the floor, one spike's rate over the run, halved."""
    fig, axes = _grid(len(scatters), 1, width=3.2, height=3.2)
    for ax, sc in zip(axes[0], scatters):
        floor = 0.5 / (sc.t_run_s * sc.n_run)
        x, y = np.maximum(sc.reference_hz, floor), np.maximum(sc.backend_hz, floor)
        top = max(float(x.max()), float(y.max()), 10 * floor) * 1.5 if x.size else 10.0
        ident, = ax.plot([floor, top], [floor, top], color="#555555", linewidth=0.8, linestyle=":")
        ident.set_gid(gid(ax, "identity"))
        points = ax.scatter(x, y, s=8, color=colour(sc.backend), alpha=0.7, linewidths=0)
        points.set_gid(gid(ax, "points", sc.backend))
        _log(ax)
        ax.set_xlim(floor * 0.8, top)
        ax.set_ylim(floor * 0.8, top)
        ax.set_xlabel(f"{reference_name} rate (Hz)")
        ax.set_ylabel(f"{sc.framework} rate (Hz)")
        ax.set_title(f"{sc.framework}: t_run {sc.t_run_s:g} s, n_run {sc.n_run}, round {sc.round}")
    return fig


@_styled
def activity_figure(act) -> Figure:
    """Raster of the most active neurons (first trial, opening window) and the histogram of per-neuron rates."""
    fig = Figure(figsize=(10.5, 0.16 * max(10, act.top_ids.size) + 1.8), layout="constrained")
    ax_r, ax_h = fig.subplots(1, 2, width_ratios=(1.6, 1))
    rows = {int(fid): i for i, fid in enumerate(act.top_ids)}
    keep = np.isin(act.stats.raster_ids, act.top_ids)
    y = np.array([rows[int(i)] for i in act.stats.raster_ids[keep]], dtype=float)
    dots = ax_r.scatter(act.stats.raster_times_ms[keep], y, s=4, marker="|", color=colour(act.task.backend),
                        rasterized=True)
    dots.set_gid(gid(ax_r, "raster", act.task.backend))
    ax_r.set_yticks(range(act.top_ids.size), [str(int(i)) for i in act.top_ids], fontsize=6)
    ax_r.set_ylim(act.top_ids.size - 0.5, -0.5)
    ax_r.set_xlim(0, act.stats.raster_window_ms)
    ax_r.set_xlabel(f"time (ms), trial {act.stats.raster_trial}")
    ax_r.set_ylabel("FlyWire id (most active first)")
    ax_r.set_title(f"{act.task.name}: {act.top_ids.size} most active neurons")
    rates = act.stats.rates_hz
    if rates.size:
        lo, hi = float(rates.min()) * 0.99, float(rates.max()) * 1.01  # rates > 0; the edges hold every one
        bins = np.logspace(math.log10(lo), math.log10(hi), 30)
        ax_h.hist(rates, bins=bins, color=colour(act.task.backend), edgecolor="white", linewidth=0.4)
        _log(ax_h, "x")
    ax_h.set_xlabel("rate (Hz), mean over trials")
    ax_h.set_ylabel("active neurons")
    ax_h.set_title(f"{rates.size:,} active neurons")
    return fig


@_styled
def paper_figure(comp) -> Figure:
    """Left: cumulative distribution of per-neuron rates, this label's task and each paper example.
    Right (real connectome only): per-neuron rate, the paper against this label."""
    fig, axes = _grid(2 if comp.parity is not None else 1, 1, width=4.2, height=3.2)
    ax = axes[0, 0]
    series = [(f"this label ({comp.task.backend})", comp.label_stats, colour(comp.task.backend), "-")]
    greys = ("#000000", "#6e6e6e", "#a0a0a0", "#3b3b3b", "#8a8a8a")
    series += [(f"paper {name}", st, greys[i % len(greys)], "--") for i, (name, st) in
               enumerate(comp.example_stats.items())]
    for name, st, c, style in series:
        rates = np.sort(st.rates_hz)
        if rates.size:
            line, = ax.step(rates, np.arange(1, rates.size + 1), where="post", color=c, linestyle=style,
                            label=f"{name} ({rates.size} active)")
            line.set_gid(gid(ax, "distribution", name))
    _log(ax, "x")
    ax.set_xlabel("rate (Hz), mean over trials")
    ax.set_ylabel("active neurons at or below this rate")
    ax.set_title("per-neuron rate distributions")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, frameon=False)  # below: curves fill the axes
    if comp.parity is not None:
        p, ax2 = comp.parity, axes[0, 1]
        floor = 0.5 / _trial_seconds(comp)
        x, y = np.maximum(p.paper_hz, floor), np.maximum(p.label_hz, floor)
        top = max(float(x.max()), float(y.max())) * 1.5
        ident, = ax2.plot([floor, top], [floor, top], color="#555555", linewidth=0.8, linestyle=":")
        ident.set_gid(gid(ax2, "identity"))
        ax2.scatter(x, y, s=8, color=colour(comp.task.backend), alpha=0.7, linewidths=0).set_gid(
            gid(ax2, "points", comp.task.backend))
        _log(ax2)
        ax2.set_xlabel(f"paper rate (Hz), {p.example}")
        ax2.set_ylabel(f"{comp.task.framework} rate (Hz)")
        ax2.set_title(f"r = {p.pearson:.4f}, Jaccard = {p.jaccard:.3f}" if p.pearson is not None else
                      f"Jaccard = {p.jaccard:.3f}")
    return fig


def _trial_seconds(comp) -> float:
    """Trial-seconds of the smaller run: a silent neuron is drawn at half a spike over it."""
    return min(comp.label_stats.t_run_s * comp.label_stats.n_trials,
               min((s.t_run_s * s.n_trials for s in comp.example_stats.values()), default=1.0))


def render(fig: Figure) -> tuple[bytes, str]:
    """(PNG bytes, SVG text) of a figure; the SVG is deterministic and has no metadata block or DOCTYPE,
    so it can be inlined into HTML as is."""
    with rc_context(STYLE):
        png, svg = io.BytesIO(), io.StringIO()
        fig.savefig(png, format="png", dpi=110, metadata={"Software": None})
        fig.set_layout_engine("none")  # keep the layout just computed: the SVG needs no second pass
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = svg.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    return png.getvalue(), text
