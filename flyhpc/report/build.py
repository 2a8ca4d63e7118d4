"""Build a label's report: read, analyse, draw, and write `results/<label>/report/` atomically.

Runs the other report modules in order and owns the output folder: every file (report.html, each
figure as PNG and SVG, each table as CSV) is written to a temporary name and renamed into place,
report.html last; files a previous report listed in files.txt and this one no longer makes are
removed. Progress goes to a `ProgressSink`. Entry points: `build_report`, `ReportResult`,
`ProgressSink`, `parse_point`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import pandas as pd

from flyhpc import __version__
from flyhpc.errors import ConfigError, OutputError
from flyhpc.files import atomic_path, write_text_atomic
from flyhpc.report import activity as activity_mod
from flyhpc.report import figures, paper, sections, speed
from flyhpc.report.label import LabelData, load_label
from flyhpc.report.page import FigureBlock, Page, render_page
from flyhpc.report.parity import PARITY_COLUMNS, parity
from flyhpc.report.references import Reference, resolve_reference
from flyhpc.report.scan import StatsCache
from flyhpc.report.tables import csv_text, frame_rows
from flyhpc.results.spike_files import count_spikes

INDEX = "files.txt"


class ProgressSink(Protocol):
    """Receives progress: the rows to read at most, each file as it starts, rows as they are read."""

    def start(self, total_rows: int) -> None: ...

    def file(self, path: Path) -> None: ...

    def rows(self, n: int) -> None: ...


class _Silent:
    def start(self, total_rows: int) -> None:
        pass

    def file(self, path: Path) -> None:
        pass

    def rows(self, n: int) -> None:
        pass


@dataclass(frozen=True)
class ReportResult:
    """What was written: the folder, the page, every file, whether the label is complete, and how many of its
    timings were disturbed (`flyhpc.timing.disturbance`; left out of the speed figures when `dropped`)."""

    out_dir: Path
    html: Path
    files: list[Path]
    planned: int
    done: int
    disturbed: int = 0
    dropped: bool = False

    @property
    def partial(self) -> bool:
        return self.done < self.planned


def parse_point(text: str | None) -> tuple[float, int] | None:
    """`T_RUN,N_RUN` (e.g. `1.0,2`) as (t_run_s, n_run).

    Raises
    ------
    ConfigError
        Not two numbers separated by a comma.
    """
    if not text:
        return None
    try:
        t, n = text.split(",")
        return float(t), int(n)
    except ValueError:
        raise ConfigError(f"--point {text!r}: expected T_RUN,N_RUN such as 1.0,2") from None


class ReportWriter:
    """Collects the report's files, writing each atomically into the output folder; if one cannot be written
    (disk full, read-only), the files this report added and a folder it made are removed before the error goes on."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.files: list[Path] = []
        self._new_dir = not out_dir.exists()
        self._added: list[Path] = []

    def text(self, name: str, text: str) -> None:
        self._write(name, lambda path: write_text_atomic(path, text))

    def binary(self, name: str, data: bytes) -> None:
        def write(path: Path) -> None:
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
        self._write(name, write)

    def _write(self, name: str, write) -> None:
        path = self.out_dir / name
        existed = path.exists()
        try:
            write(path)
        except OutputError:
            for added in self._added:
                added.unlink(missing_ok=True)
            if self._new_dir:
                with contextlib.suppress(OSError):
                    self.out_dir.rmdir()
            raise
        if not existed:
            self._added.append(path)
        self.files.append(path)

    def figure(self, name: str, fig, caption: str) -> FigureBlock:
        png, svg = figures.render(fig)
        self.binary(f"{name}.png", png)
        self.text(f"{name}.svg", svg)
        return FigureBlock(name, svg, caption)

    def finish(self, html: str) -> Path:
        """Write the page last, then the index, then drop what the previous report made and this one did not."""
        self.text("report.html", html)
        index = self.out_dir / INDEX
        old = set(index.read_text().split()) if index.is_file() else set()
        names = sorted(p.name for p in self.files)
        write_text_atomic(index, "\n".join(names) + "\n")
        for stale in old - set(names) - {INDEX}:
            if "/" not in stale and (self.out_dir / stale).is_file():
                (self.out_dir / stale).unlink()
        return self.out_dir / "report.html"


def _references(args: Sequence[str], results_root: Path, data: LabelData) -> list[Reference]:
    refs: list[Reference] = []
    own = data.paths.label_dir.resolve()
    for arg in args:
        for ref in resolve_reference(arg, results_root):
            if ref.label is not None and ref.label.paths.label_dir.resolve() == own:
                raise ConfigError(f"--reference {arg}: that is the label being reported")
            refs.append(ref)
    return refs


def _rows_to_read(data: LabelData, refs: list[Reference]) -> int:
    """Spike rows the report may read: every done task's, every example file's (from parquet footers)."""
    rows = sum(int(t.record.get("spikes") or 0) for t in data.done)
    return rows + sum(count_spikes(path) for r in refs for _, path in r.examples)


def build_report(results_root: str | Path, label: str, out_dir: Path | None = None, references: Sequence[str] = (),
                 ground_truth: str = "brian2cpp", point: tuple[float, int] | None = None,
                 activity_task: str | None = None, progress: ProgressSink | None = None,
                 drop_disturbed: bool = False) -> ReportResult:
    """Write the report of a collected label (see the module docstring for what is written).

    Disturbed timings (benchmark-results.csv's `disturbed` column) are kept and marked; with
    `drop_disturbed` the speed and phase figures and tables leave them out.

    Raises
    ------
    ConfigError
        Unknown, uncollected or empty label; a bad reference; a --point no done task ran; an
        unknown --activity task; every timing of the label disturbed under `drop_disturbed`.
    DataError
        A spike file that cannot be read.
    """
    progress = progress or _Silent()
    results_root = Path(results_root)
    data = load_label(results_root, label)
    refs = _references(references, results_root, data)
    out = ReportWriter(Path(out_dir) if out_dir else data.paths.label_dir / "report")
    frame = pd.concat([speed.timings(data.results, label)] +
                      [speed.timings(r.rows, r.name) for r in refs if r.rows], ignore_index=True)
    flagged = speed.disturbed_rows(frame)
    measured = bool(frame[frame["source"] == label]["cpu_share"].notna().any())
    if drop_disturbed:
        frame = frame[frame["disturbed"] == ""]
        if frame[frame["source"] == label].empty:
            raise ConfigError(f"--drop-disturbed: every timing of {label} was disturbed; nothing is left to draw")
    speed_tab = speed.speed_table(frame)
    own = frame[frame["source"] == label]
    if point is not None and own[(own["t_run_s"] == point[0]) & (own["n_run"] == point[1])].empty:
        raise ConfigError(f"--point {point[0]:g},{point[1]}: no done task of {label} ran it"
                          + (" undisturbed (--drop-disturbed)" if drop_disturbed else ""))
    point = point or speed.choose_point(frame, label)
    phases = speed.phase_table(frame, label, *point)
    progress.start(_rows_to_read(data, refs))
    cache = StatsCache(on_rows=progress.rows, on_file=progress.file)
    par = parity(data, cache, ground_truth, point)
    act = activity_mod.activity(data, cache, activity_task)
    comps = [paper.compare_with_paper(data, r.examples, cache, ground_truth) for r in refs if r.kind == "examples"]

    out.text("speed.csv", csv_text(speed.SPEED_COLUMNS, frame_rows(speed_tab)))
    out.text("phases.csv", csv_text(list(phases.columns), frame_rows(phases)))
    out.text("parity.csv", csv_text(PARITY_COLUMNS, [r.as_dict() for r in par.rows]))
    out.text("activity-top-neurons.csv", csv_text(activity_mod.TOP_COLUMNS, act.rows()))
    out.text("health.csv", csv_text(sections.HEALTH_COLUMNS, sections.health_rows(data)))
    if flagged:
        out.text("disturbed.csv", csv_text(speed.DISTURBED_COLUMNS, flagged))
    ref_rows = sections.reference_rows(speed_tab, label)
    rings = " Red rings: a round there was disturbed." if speed_tab["disturbed_rounds"].sum() else ""
    speed_figs = [
        out.figure("speed", figures.speed_figure(speed_tab, label),
                   "Wall seconds per simulated trial-second against t_run (log-log), sim phase (top) and whole task "
                   "(bottom), one panel per n_run; median over rounds, min-max whiskers; dotted: real time." + rings),
        out.figure("batching", figures.batching_figure(speed_tab, label),
                   "Sim wall seconds per simulated trial-second against trials per task: how batching pays off."
                   + rings)]
    phase_fig = out.figure("phases", figures.phases_figure(phases, *point),
                           f"Median phase seconds per backend at t_run = {point[0]:g} s, n_run = {point[1]}.")
    parity_fig = out.figure("parity", figures.parity_figure(par.scatters, ground_truth),
                            f"Per-neuron rate of each backend against {ground_truth} (log axes, dotted identity); "
                            "neurons silent in one run sit on the floor.") if par.scatters else None
    act_fig = out.figure("activity", figures.activity_figure(act),
                         "Raster of the most active neurons in the first trial's opening window, labelled by FlyWire "
                         "id, and the histogram of per-neuron mean rates.")
    page_sections = [sections.speed_section(speed_tab, speed_figs, label, flagged, drop_disturbed, measured),
                     sections.phases_section(phases, phase_fig, point)]
    if refs:
        if ref_rows:
            out.text("references.csv", csv_text(sections.REFERENCE_COLUMNS, ref_rows))
        page_sections.append(sections.references_section(refs, ref_rows, label))
    page_sections += [sections.parity_section(par, parity_fig), sections.activity_section(act, act_fig)]
    for i, comp in enumerate(comps):
        out.files += paper.write_outputs(comp, out.out_dir)
        caption = ("Per-neuron rates of this label's task beside the paper's example outputs"
                   + (" (right: neuron by neuron)." if comp.parity else "."))
        fig = out.figure("paper" if i == 0 else f"paper-{i + 1}", figures.paper_figure(comp), caption)
        page_sections.append(sections.paper_section(comp, fig))
    page_sections.append(sections.health_section(data))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    backends = sorted({t.backend for t in data.done}, key=figures.backend_sort)
    page = Page(title=f"flyhpc report: {label}",
                subtitle=f"{len(data.done)} of {len(data.tasks)} planned tasks done · backends {', '.join(backends)} · "
                         f"generated {stamp} by flyhpc {__version__} from {data.paths.label_dir}",
                banners=sections.banners(data), sections=page_sections,
                footer="Made by `flyhpc report` from the collected bundle only (nothing re-run). Figures are also "
                       "beside this page as PNG and SVG, tables as CSV.")
    html_path = out.finish(render_page(page))
    return ReportResult(out.out_dir, html_path, out.files, len(data.tasks), len(data.done),
                        sum(r["source"] == label for r in flagged), drop_disturbed)
