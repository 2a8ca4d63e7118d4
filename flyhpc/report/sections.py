"""The words and tables of each page section, from the analysis results (no files, no figures drawn here).

One function per section (speed, phases, references, parity, activity, paper, health) returning a
`page.Section` given the figures already rendered; `banners` says what a reader must see first
(synthetic connectome, partial bundle). Entry points: the `*_section` functions, `banners`,
`health_rows`, `provenance_rows`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pandas as pd

from flyhpc.report.label import LabelData
from flyhpc.report.page import FigureBlock, Section, TableBlock
from flyhpc.report.parity import Parity
from flyhpc.report.tables import frame_rows
from flyhpc.timing import MIN_JUDGED_S, SHARE_FLOOR

HEALTH_COLUMNS = ("task", "backend", "state", "node", "job_id", "reason")


def synthetic_sources(data: LabelData) -> list[str]:
    return sorted({str(r.get("connectome_source", "synthetic")) for r in data.records()
                   if r.get("synthetic_connectome")})


def banners(data: LabelData) -> list[tuple[str, str]]:
    out = []
    synthetic = synthetic_sources(data)
    if synthetic:
        out.append(("warn", f"SYNTHETIC connectome ({', '.join(synthetic)}): these spikes come from a calibrated "
                            "random graph carrying the real FlyWire ids, not from the fly brain. Timings are "
                            "representative of the real workload; per-neuron activity is not."))
    bad = data.not_done
    if bad:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(t.state for t in bad).items()))
        out.append(("bad", f"Partial bundle: {len(data.done)} of {len(data.tasks)} planned tasks done ({counts}). "
                           "Figures and tables use the done tasks only; see Health for each failure."))
    else:
        out.append(("ok", f"Complete: all {len(data.tasks)} planned tasks done."))
    return out


def _disturbed_text(flagged: list[dict[str, Any]], dropped: bool, measured: bool) -> str:
    if not measured:
        return "These records hold no CPU time (made before flyhpc measured it): no timing could be judged."
    if not flagged:
        return (f"No timing was disturbed: every judged sim phase got at least {SHARE_FLOOR:.0%} of the CPU time "
                f"its threads could use (CPU sims of at least {MIN_JUDGED_S:g} s are judged).")
    what = ("They are left out of the figures and tables (--drop-disturbed)." if dropped else
            "They are kept, counted under 'disturbed rounds' and ringed in red in the figures; "
            "--drop-disturbed leaves them out.")
    return (f"{len(flagged)} timing(s) were disturbed: their sim phase got less than {SHARE_FLOOR:.0%} of the CPU "
            "time its threads could use (a neighbour on a shared node took the rest), so its seconds say more about "
            f"the node than the backend. {what}")


def speed_section(speed: pd.DataFrame, figs: list[FigureBlock], own: str, flagged: list[dict[str, Any]] = (),
                  dropped: bool = False, measured: bool = False) -> Section:
    cols = [("source", "source"), ("backend", "backend"), ("t_run_s", "t_run (s)"), ("n_run", "n_run"),
            ("rounds", "rounds"), ("sim_median_s", "sim median (s)"), ("sim_min_s", "sim min (s)"),
            ("sim_max_s", "sim max (s)"), ("total_median_s", "total median (s)"),
            ("sim_s_per_sim_s", "sim s per simulated s"), ("total_s_per_sim_s", "total s per simulated s"),
            ("sim_s_per_trial", "sim s per trial"), ("speedup_sim_vs_brian2cpp", "sim speed-up vs brian2cpp"),
            ("speedup_total_vs_brian2cpp", "total speed-up vs brian2cpp"), ("disturbed_rounds", "disturbed rounds")]
    ordered = pd.concat([speed[speed["source"] == own], speed[speed["source"] != own]])
    blocks = [*figs, TableBlock("Speed per grid point (speed.csv)", cols, frame_rows(ordered), scroll=True)]
    if flagged:
        blocks.append(TableBlock("Disturbed timings (disturbed.csv)", [
            ("source", "source"), ("task", "task"), ("backend", "backend"), ("round", "round"),
            ("reason", "why")], list(flagged), scroll=True))
    return Section("speed", "Speed", (
        "Wall seconds per simulated trial-second = phase seconds / (t_run × n_run): below the dotted real-time "
        "line a backend runs faster than the fly. Lines are medians over rounds, whiskers min–max. Speed-up is "
        "brian2cpp's median over this backend's, at the same point of the same source.",
        _disturbed_text(list(flagged), dropped, measured)), blocks)


def phases_section(phases: pd.DataFrame, fig: FigureBlock | None, point: tuple[float, int]) -> Section:
    cols = [("backend", "backend"), ("framework", "framework")] + [
        (f"{p}_s", f"{p} (s)") for p in ("load", "build", "setup", "sim", "collect", "write", "total")]
    return Section("phases", "Phases", (
        f"Median seconds of each phase at t_run = {point[0]:g} s, n_run = {point[1]} (choose another point with "
        "--point T_RUN,N_RUN): load = connectome and drive, build = code generation and compilation, setup = "
        "simulator import and network construction, sim = the stepping loop, collect = spikes off the device, "
        "write = parquet and hash.",), [b for b in (fig,) if b] + [
        TableBlock(f"Phases at t_run = {point[0]:g} s, n_run = {point[1]} (phases.csv)", cols, frame_rows(phases))])


def reference_rows(speed: pd.DataFrame, own: str) -> list[dict[str, Any]]:
    """This label's sim speed beside each reference's, at the (backend, t_run, n_run) both have."""
    mine = speed[speed["source"] == own].set_index(["backend", "t_run_s", "n_run"])
    rows = []
    for _, ref in speed[speed["source"] != own].iterrows():
        key = (ref["backend"], ref["t_run_s"], ref["n_run"])
        if key not in mine.index:
            continue
        ours = mine.loc[key]
        rows.append({"reference": ref["source"], "backend": ref["backend"], "t_run_s": ref["t_run_s"],
                     "n_run": ref["n_run"], "sim_median_s": ours["sim_median_s"],
                     "reference_sim_median_s": ref["sim_median_s"],
                     "sim_ratio_label_over_reference": ours["sim_median_s"] / ref["sim_median_s"],
                     "total_ratio_label_over_reference": ours["total_median_s"] / ref["total_median_s"]})
    return rows


REFERENCE_COLUMNS = ("reference", "backend", "t_run_s", "n_run", "sim_median_s", "reference_sim_median_s",
                     "sim_ratio_label_over_reference", "total_ratio_label_over_reference")


def references_section(refs, rows: list[dict[str, Any]], label: str) -> Section:
    text = [f"{r.name}: {r.hardware or 'hardware not recorded'} — {r.source}" for r in refs]
    text.append("They are drawn in the Speed figures in their backend's colour, dashed with open markers. "
                f"A ratio above 1 means {label} took longer than the reference at that point.")
    if not rows:
        text.append("No (backend, t_run, n_run) point is in both this label and a timing reference.")
    cols = [("reference", "reference"), ("backend", "backend"), ("t_run_s", "t_run (s)"), ("n_run", "n_run"),
            ("sim_median_s", f"{label} sim (s)"), ("reference_sim_median_s", "reference sim (s)"),
            ("sim_ratio_label_over_reference", "sim ratio"), ("total_ratio_label_over_reference", "total ratio")]
    return Section("references", "References", text,
                   [TableBlock("This label beside the references (references.csv)", cols, rows)] if rows else [])


def parity_section(par: Parity, fig: FigureBlock | None) -> Section:
    text = [f"Each backend against {par.reference} at the same round, t_run and n_run: spike-count ratio "
            "(backend / reference), Jaccard of the active-neuron sets, Pearson r of the rates of neurons active in "
            "both, and whether the spikes are identical (same trial, time and neuron for every spike). Source: "
            "'flyhpc compare' outputs when current, else computed here from the parquets."]
    if par.unpaired:
        text.append(f"No {par.reference} task to compare with for: {', '.join(par.unpaired[:20])}"
                    + (" …" if len(par.unpaired) > 20 else ""))
    if not par.rows:
        text.append(f"Nothing to compare: no other backend ran a point that {par.reference} ran.")
    cols = [("backend", "backend"), ("round", "round"), ("t_run_s", "t_run (s)"), ("n_run", "n_run"),
            ("spikes_reference", "reference spikes"), ("spikes_backend", "backend spikes"),
            ("spike_count_ratio", "count ratio"), ("active_jaccard", "Jaccard"), ("rate_pearson_r", "rate r"),
            ("identical_spikes", "identical spikes"), ("source", "source")]
    rows = [r.as_dict() for r in par.rows]
    for row in rows:
        row["identical_spikes"] = {True: "yes", False: "no", None: "not checked"}[row["identical_spikes"]]
    blocks = ([fig] if fig else []) + ([TableBlock("Parity per task (parity.csv)", cols, rows, scroll=True)]
                                       if rows else [])
    return Section("parity", "Parity", text, blocks)


def activity_section(act, fig: FigureBlock) -> Section:
    st = act.stats
    cols = [("rank", "rank"), ("flywire_id", "FlyWire id"), ("spikes", "spikes"), ("rate_mean_hz", "rate (Hz)"),
            ("rate_std_hz", "rate std over trials (Hz)")]
    return Section("activity", "Activity", (
        f"{act.task.name} ({act.task.framework}; choose another with --activity): {st.spikes:,} spikes over "
        f"{st.n_trials} trial(s) of {st.t_run_s:g} s, {st.ids.size:,} active neurons, "
        f"{st.spikes_per_trial_s:,.0f} spikes per trial-second.",),
        [fig, TableBlock("Most active neurons (activity-top-neurons.csv)", cols, act.rows(), scroll=True)])


def paper_section(comp, fig: FigureBlock) -> Section:
    dist_cols = [("source", "source"), ("description", "what ran"), ("trials", "trials"), ("t_run_s", "t_run (s)"),
                 ("spikes_per_trial_s", "spikes per trial-s"), ("active_per_trial_mean", "active per trial"),
                 ("active_all_trials", "active, all trials"), ("rate_median_hz", "median rate (Hz)"),
                 ("rate_p90_hz", "90th pct rate (Hz)"), ("rate_max_hz", "max rate (Hz)"),
                 ("neurons_over_10hz", "> 10 Hz"), ("neurons_over_50hz", "> 50 Hz")]
    text = [comp.verdict + "."]
    blocks = [fig, TableBlock("Rate distributions (paper-examples-distributions.csv)", dist_cols, comp.distributions)]
    if comp.parity is not None:
        p = comp.parity
        text.append(f"Against {p.example}: spikes per trial-second ratio (label / paper) "
                    f"{p.spikes_per_trial_s_ratio:.4f}, Jaccard {p.jaccard:.4f} ({p.shared} of {p.union} neurons), "
                    f"rate r {p.pearson if p.pearson is None else round(p.pearson, 5)}.")
        blocks.append(TableBlock("The paper's most active neurons, both rates (paper-examples-top-neurons.csv)",
                                 [("flywire_id", "FlyWire id"), ("paper_rate_hz", "paper (Hz)"),
                                  ("label_rate_hz", "this label (Hz)")], comp.top_rows()))
    return Section("paper", "Against the paper", text, blocks)


def health_rows(data: LabelData) -> list[dict[str, Any]]:
    """Every planned task, failures first (then manifest order)."""
    tasks = sorted(data.tasks, key=lambda t: t.state == "done")
    return [dict(zip(HEALTH_COLUMNS, (t.name, t.backend, t.state, t.node, t.job_id, t.reason))) for t in tasks]


def _join(values) -> str:
    return ", ".join(sorted({str(v) for v in values if v not in (None, "")})) or "not recorded"


def provenance_rows(data: LabelData) -> list[dict[str, str]]:
    recs, sub = data.records(), data.submission
    profile = sub.get("profile") or {}
    hosts = Counter(f"{r.get('node') or '?'} ({r.get('device') or '?'})" for r in recs)
    versions: dict[str, set] = {}
    for r in recs:
        for k, v in (r.get("versions") or {}).items():
            versions.setdefault(k, set()).add(str(v))
    images = [s.get("image") for s in sub.get("submissions", [])] + [r.get("image_digest") for r in recs]
    rows = [
        ("run label", f"{data.label} ({data.paths.label_dir})"),
        ("flyhpc version", _join([sub.get("flyhpc_version")] + [r.get("flyhpc_version") for r in recs])),
        ("connectome", _join(f"{r.get('connectome_source')} (sha256 {str(r.get('connectome_digest', ''))[:16]}…)"
                             for r in recs)),
        ("synthetic connectome", "yes" if synthetic_sources(data) else "no"),
        ("experiment", _join(f"{r.get('experiment')} [{r.get('experiment_key')}]" for r in recs)),
        ("seed", _join(r.get("seed") for r in recs)),
        ("profile", (f"{profile.get('name')} (executor {profile.get('executor')}, partition "
                     f"{profile.get('partition') or '-'}, {profile.get('source')})") if profile else "not recorded"),
        ("images", _join(images)),
        ("hosts", ", ".join(f"{h} × {n}" for h, n in sorted(hosts.items())) or "not recorded"),
        ("python", _join(r.get("python") for r in recs)),
        ("simulators", "; ".join(f"{k} {', '.join(sorted(v))}" for k, v in sorted(versions.items()))
         or "not recorded"),
        ("submitted", _join(s.get("submitted_at") for s in sub.get("submissions", []))),
        ("ran", f"{min((r.get('started_utc') or '~' for r in recs), default='?')} … "
                f"{max((r.get('finished_utc') or '' for r in recs), default='?')}"),
        ("identity", json.dumps(sub.get("identity", {}), sort_keys=True) if sub.get("identity") else "not recorded"),
    ]
    return [{"item": k, "value": v} for k, v in rows]


def health_section(data: LabelData) -> Section:
    cols = [("task", "task"), ("backend", "backend"), ("state", "state"), ("node", "node"), ("job_id", "job id"),
            ("reason", "reason")]
    done = len(data.done)
    return Section("health", "Health and provenance", (
        f"{done} of {len(data.tasks)} planned tasks done, failures first. States come from `flyhpc collect` "
        f"(manifest.csv); to rerun the others: flyhpc resubmit {data.label} --failed --missing, then flyhpc collect "
        f"{data.label}.",), [
        TableBlock("Every planned task (health.csv)", cols, health_rows(data), state_key="state", scroll=True),
        TableBlock("Provenance", [("item", "item"), ("value", "value")], provenance_rows(data))])
