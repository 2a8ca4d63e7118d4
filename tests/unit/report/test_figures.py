"""The figures' content, read back from the matplotlib objects: axis labels and scales, one line per backend
and source per panel, plotted numbers equal to benchmark-results.csv, identity and real-time lines, FlyWire ids
on the raster, one colour per backend across figures, and deterministic, inlinable SVG."""

from __future__ import annotations

import csv

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from flyhpc.bundle import BundlePaths
from flyhpc.report import activity, figures, speed
from flyhpc.report.label import load_label
from flyhpc.report.parity import parity
from flyhpc.report.references import resolve_reference
from flyhpc.report.scan import StatsCache

from .conftest import BACKENDS, LABEL, N_RUNS, T_RUNS

REF = "seed RTX 4070"


@pytest.fixture(scope="module")
def inputs(bundle):
    rows = list(csv.DictReader(open(BundlePaths(bundle, LABEL).results_csv)))
    (ref,) = resolve_reference("seed-rtx4070", bundle)
    frame = speed.timings(rows, LABEL)
    with_ref = speed.speed_table(pd.concat([frame, speed.timings(ref.rows, ref.name)], ignore_index=True))
    data = load_label(bundle, LABEL)
    cache = StatsCache()
    return {"rows": rows, "frame": frame, "table": speed.speed_table(frame), "with_ref": with_ref, "data": data,
            "parity": parity(data, cache), "activity": activity.activity(data, cache)}


def _kinds(ax, kind):
    """{(source, backend) or (): artist} of one kind of series in a panel, from the gids."""
    found = {}
    for artist in [*ax.get_lines(), *ax.collections, *ax.patches]:
        parts = (artist.get_gid() or "").split("--")
        if len(parts) > 1 and parts[1] == kind:
            assert parts[0].startswith("p")  # the panel's grid position
            found[tuple(parts[2:])] = artist
    return found


def _data_lines(ax):
    return {f"{source.replace('_', ' ')}|{backend}": line for (source, backend), line in _kinds(ax, "line").items()}


def _csv_sim(rows, backend, n, phase="sim_time"):
    """{t_run: median of the CSV's phase seconds / (t_run x n_run)} for one backend and n_run."""
    out = {}
    for t in T_RUNS:
        vals = [float(r[phase]) for r in rows if r["backend_key"] == backend and float(r["t_run"]) == t
                and int(r["n_run"]) == n and r["status"] == "success"]
        out[t] = float(np.median(vals)) / (t * n)
    return out


def test_speed_figure_has_one_line_per_backend_with_the_csv_numbers(inputs):
    fig = figures.speed_figure(inputs["table"], LABEL)
    axes = fig.axes
    assert len(axes) == 2 * len(N_RUNS)
    for ax in axes:
        assert ax.get_xlabel() == "t_run (s)" and ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert [line.get_ydata()[0] for line in _kinds(ax, "realtime").values()] == [1.0]
        assert sorted(_data_lines(ax)) == sorted(f"{LABEL}|{b}" for b in BACKENDS)
    assert axes[0].get_ylabel() == "sim wall s per simulated trial-second"
    assert fig.axes[len(N_RUNS)].get_ylabel() == "total wall s per simulated trial-second"
    for col, n in enumerate(N_RUNS):
        assert axes[col].get_title() == f"sim phase, n_run = {n}"
        for phase, ax in (("sim_time", axes[col]), ("total_time", axes[len(N_RUNS) + col])):
            for backend in BACKENDS:
                line = _data_lines(ax)[f"{LABEL}|{backend}"]
                expected = _csv_sim(inputs["rows"], backend, n, phase)
                assert list(line.get_xdata()) == list(expected)
                np.testing.assert_allclose(line.get_ydata(), list(expected.values()), rtol=1e-12)
                assert line.get_label() == {"brian2cpp": "Brian2 (CPU)", "native": "native (CPU)",
                                            "pytorch": "PyTorch (CPU)"}[backend]


def test_references_are_dashed_lines_in_their_backends_colour(inputs):
    fig = figures.speed_figure(inputs["with_ref"], LABEL)
    titles = [ax.get_title() for ax in fig.axes]
    assert "sim phase, n_run = 32" in titles  # the reference's n_run gets its own panel
    ax = fig.axes[titles.index("sim phase, n_run = 1")]
    lines = _data_lines(ax)
    ref = lines[f"{REF}|brian2cpp"]
    assert ref.get_linestyle() == "--" and ref.get_label() == f"Brian2 (CPU) — {REF}"
    assert mcolors.to_hex(ref.get_color()) == mcolors.to_hex(lines[f"{LABEL}|brian2cpp"].get_color())
    np.testing.assert_allclose(ref.get_ydata(), [0.841 / 0.1, 2.909, 25.34 / 10, 286.5 / 100])
    assert len([g for g in lines if g.startswith(f"{REF}|")]) == 6
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "real time" in legend and f"GeNN (GPU) — {REF}" in legend


def test_batching_figure_plots_sim_per_trial_second_against_n_run(inputs):
    fig = figures.batching_figure(inputs["table"], LABEL)
    assert len(fig.axes) == len(T_RUNS)
    for ax, t in zip(fig.axes, T_RUNS):
        assert ax.get_xlabel() == "n_run (trials per task)" and ax.get_title() == f"t_run = {t:g} s"
        lines = _data_lines(ax)
        assert sorted(lines) == sorted(f"{LABEL}|{b}" for b in BACKENDS)
        for backend in BACKENDS:
            expected = [_csv_sim(inputs["rows"], backend, n)[t] for n in N_RUNS]
            np.testing.assert_allclose(lines[f"{LABEL}|{backend}"].get_ydata(), expected)


def test_phases_figure_stacks_the_phase_medians(inputs):
    table = speed.phase_table(inputs["frame"], LABEL, 0.1, 2)
    fig = figures.phases_figure(table, 0.1, 2)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "wall seconds (median over rounds)" and "t_run = 0.1 s, n_run = 2" in ax.get_title()
    bars = {"|".join(k): p for k, p in _kinds(ax, "phase").items()}
    assert len(bars) == 6 * len(BACKENDS)
    for _, row in table.iterrows():
        left = 0.0
        for phase in ("load", "build", "setup", "sim", "collect", "write"):
            bar = bars[f"{phase}|{row.backend}"]
            assert bar.get_width() == pytest.approx(row[f"{phase}_s"]) and bar.get_x() == pytest.approx(left)
            left += row[f"{phase}_s"]
    colours = {t.get_text(): mcolors.to_hex(t.get_color()) for t in ax.get_yticklabels()}
    assert colours["Brian2 (CPU)"] == mcolors.to_hex(figures.colour("brian2cpp")) == "#0072b2"
    assert colours["PyTorch (CPU)"] == mcolors.to_hex(figures.colour("pytorch")) == "#d55e00"


def test_parity_figure_scatters_rates_against_the_ground_truth(inputs):
    par = inputs["parity"]
    fig = figures.parity_figure(par.scatters, "brian2cpp")
    assert len(fig.axes) == len(par.scatters) == 2
    for ax, sc in zip(fig.axes, par.scatters):
        assert ax.get_xlabel() == "brian2cpp rate (Hz)" and ax.get_ylabel() == f"{sc.framework} rate (Hz)"
        assert len(ax.get_lines()) == 1 and list(_kinds(ax, "identity")) == [()]
        points = _kinds(ax, "points")[(sc.backend,)]
        floor = 0.5 / (sc.t_run_s * sc.n_run)
        np.testing.assert_allclose(points.get_offsets()[:, 0], np.maximum(sc.reference_hz, floor))
        np.testing.assert_allclose(points.get_offsets()[:, 1], np.maximum(sc.backend_hz, floor))
        assert mcolors.to_hex(points.get_facecolor()[0]) == mcolors.to_hex(figures.colour(sc.backend))


def test_activity_figure_labels_the_raster_by_flywire_id(inputs):
    act = inputs["activity"]
    fig = figures.activity_figure(act)
    raster, hist = fig.axes
    assert [t.get_text() for t in raster.get_yticklabels()] == [str(i) for i in act.top_ids]
    assert raster.get_ylabel() == "FlyWire id (most active first)" and raster.get_xlabel() == "time (ms), trial 0"
    assert hist.get_xlabel() == "rate (Hz), mean over trials" and hist.get_ylabel() == "active neurons"
    assert sum(p.get_height() for p in hist.patches) == act.stats.ids.size


def test_render_gives_png_and_deterministic_inlinable_svg(inputs):
    png, svg = figures.render(figures.batching_figure(inputs["table"], LABEL))
    _, again = figures.render(figures.batching_figure(inputs["table"], LABEL))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and svg.startswith("<svg") and svg == again
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
    assert "n_run (trials per task)" in svg  # text kept as text
