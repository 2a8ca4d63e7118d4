"""`flyhpc check`: prove the backends of this environment (an image, a site's node) with one command.

For each backend asked for (default: every backend whose probe passes here), in three parts:
1. **contract**: the 14 scenarios of `flyhpc.contract` (DESIGN §1a). A GPU backend without a visible GPU runs them
   through the simulator's CPU code path where it has one (`caps.cpu_fallback_options`: genn, brian2genn) and
   otherwise only builds the contract network (brian2cuda: CUDA code generation and nvcc; nestgpu: its installation),
   and says so: "build only" is not a pass of the scenarios.
2. **parity**: the full-scale synthetic sugar run (1 s; n_run 1 and 4) against `native` on the same drive
   (`flyhpc.check_verdicts`): spike-identical passes; otherwise the first difference is named and, marked "not
   identical", it passes only with the total count ratio within 1 +-2 %, every trial's within 1 +-5 %, and in every
   trial Jaccard >= 0.957 and rate r >= 0.9997 (the seed's own GeNN-vs-Brian2 levels).
3. **timing**: build / setup / sim seconds and the real-time ratio over a small grid (t_run 0.1, 1, 10 s x n_run
   1, 8), cheapest first; points left when the backend's check has used its time budget (default 8 minutes)
   are reported as skipped, so a slow backend (Brian2GeNN compiles every trial) stays bounded.
Each backend writes `check-<backend>-<host>.json` (everything) and `check-<backend>-<host>.md` (a summary) into the
output folder, with `gpu_verified` (false for "cpu fallback" and "build only", with the reason); `collect` gathers
the JSONs of a folder (one per image and site) into one table. A check fails (non-zero exit) when a scenario fails, a
backend asked for by name cannot run, a part raises, or parity fails; with `--require-gpu` also when a GPU backend
was not verified on a GPU (`check_verdicts.unverified_gpus`). On a cluster, `check_submit` runs it once per GPU
backend (with `--require-gpu`) through the profile's scheduler.
Entry points: `check_backend`, `CheckPlan`, `write_report`, `collect`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from flyhpc import __version__, backends, contract
from flyhpc.backends.base import env_options, make_options
from flyhpc.check_verdicts import describe_difference, gpu_verification, no_gpu_reason, parity_cell, parity_markdown, \
    parity_metrics
from flyhpc.errors import ConfigError
from flyhpc.results.records import read_json_object
from flyhpc.results.spikes import SpikeTable

PARTS = ("contract", "parity", "timing")
PARITY_T_RUN_S = 1.0
# `--quick` (a short GPU window, scripts/gpu-proof.sh): parity as always, timing at t_run 1 and 10 s only.
QUICK = {"parity_n_runs": (1, 4), "timing_t_runs": (1.0, 10.0), "timing_n_runs": (1, 8)}


@dataclass(frozen=True)
class CheckPlan:
    """What to check: parts, the parity run sizes, the timing grid, the connectome and where builds go."""

    parts: tuple[str, ...] = PARTS
    parity_n_runs: tuple[int, ...] = (1, 4)
    timing_t_runs: tuple[float, ...] = (0.1, 1.0, 10.0)
    timing_n_runs: tuple[int, ...] = (1, 8)
    connectome: str = "synthetic"
    data_dir: Path = Path("data")
    experiment: str = "sugar"
    work_root: Path | None = None
    budget_s: float = 480.0  # per backend; the timing grid stops starting new points after it
    precision: str | None = None  # of the parity and timing runs (the contract runs at the backend's default)

    def __post_init__(self) -> None:
        bad = sorted(set(self.parts) - set(PARTS))
        if bad or not self.parts:
            raise ConfigError(f"check: unknown part(s) {', '.join(bad) or '(none given)'}; parts: {', '.join(PARTS)}")
        if any(n < 1 for n in (*self.parity_n_runs, *self.timing_n_runs)) or any(t <= 0 for t in self.timing_t_runs):
            raise ConfigError("check: n_run must be >= 1 and t_run > 0")


def host_name() -> str:
    """This machine's short name, as it goes into report file names (letters, digits, '.', '-')."""
    name = socket.gethostname().split(".")[0] or "localhost"
    return "".join(c if c.isalnum() or c in ".-" else "-" for c in name)


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs visible here (`nvidia-smi`), [] without one."""
    if not shutil.which("nvidia-smi"):
        return []
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def mode_of(backend: str, gpu: bool) -> tuple[str, dict]:
    """("cpu" | "gpu" | "cpu fallback" | "build only", options to add) for `backend` with or without a GPU."""
    caps = backends.get(backend).caps
    if caps.device != "gpu":
        return "cpu", {}
    if gpu:
        return "gpu", {}
    if caps.cpu_fallback_options:
        return "cpu fallback", dict(caps.cpu_fallback_options)
    return "build only", {}


def _options(backend: str, extra: dict):
    cls = backends.get(backend)
    return make_options(cls, {**env_options(backend), **extra})


def _contract(backend: str, mode: str, options, work_root: Path) -> dict:
    cls = backends.get(backend)
    start = time.perf_counter()
    if mode == "build only":
        sim = cls(options, n_threads=1, work_root=work_root)
        try:
            report = sim.build(contract.contract_spec(), contract.CONTRACT_STEPS)
        finally:
            sim.close()
        return {"status": "build only", "seconds": round(time.perf_counter() - start, 3), "scenarios": [],
                "note": "no GPU visible: the contract network was built (generated/compiled or installation checked); "
                        "nothing was simulated", "work_dir": report.work_dir}
    runs = contract.contract_runs_of(cls, work_root, options)
    results = contract.run_scenarios(runs)
    failed = [r for r in results if r.status == "failed"]
    return {"status": "failed" if failed else "passed", "seconds": round(time.perf_counter() - start, 3),
            "scenarios": [asdict(r) for r in results],
            "passed": sum(r.status == "passed" for r in results), "n_scenarios": len(results)}


def _simulate(backend: str, spec, drive, options_dict: dict, work_root: Path, precision: str | None = None):
    from flyhpc.pipeline import PhaseTimer, simulate

    timer = PhaseTimer()
    result = simulate(backend, spec, drive, timer, work_root=work_root, options=options_dict, precision=precision)
    return result, timer


class _Inputs:
    """The full-scale network and drives, loaded once per `check` and shared by backends and parts."""

    def __init__(self, plan: CheckPlan):
        self.plan = plan
        self._spec = None
        self._native: dict[tuple[int, int], SpikeTable] = {}
        self.load_s = 0.0

    def spec(self):
        if self._spec is None:
            from flyhpc.model import preset
            from flyhpc.pipeline import load_inputs

            start = time.perf_counter()
            _conn, self._spec, _drive = load_inputs(self.plan.connectome, self.plan.data_dir, preset(self.plan.experiment),
                                                    1, 1)
            self.load_s = time.perf_counter() - start
        return self._spec

    def drive(self, n_steps: int, n_run: int):
        from flyhpc.drive import make_drive

        return make_drive(self.spec(), n_steps, n_run, base_seed=0, round_=1)

    def native(self, n_steps: int, n_run: int, work_root: Path) -> SpikeTable:
        key = (n_steps, n_run)
        if key not in self._native:
            result, _timer = _simulate("native", self.spec(), self.drive(n_steps, n_run), {}, work_root)
            self._native[key] = result.spikes
        return self._native[key]


def _parity(backend: str, options_dict: dict, inputs: _Inputs, work_root: Path, log: Callable[[str], None]) -> dict:
    spec = inputs.spec()
    n_steps = int(round(PARITY_T_RUN_S * 1000.0 / spec.params.dt_ms))
    runs = []
    for n_run in inputs.plan.parity_n_runs:
        drive = inputs.drive(n_steps, n_run)
        reference = inputs.native(n_steps, n_run, work_root)
        result, timer = _simulate(backend, spec, drive, options_dict, work_root, inputs.plan.precision)
        row = {"t_run_s": PARITY_T_RUN_S, "n_run": n_run,
               **parity_metrics(reference, result.spikes, PARITY_T_RUN_S, n_run, spec.params.dt_ms),
               "seconds": timer.as_dict()}
        log(f"{backend}: parity n_run {n_run}: {row['verdict']} ({row['spikes']} spikes, native {row['spikes_native']}, "
            f"{row['matched_within_one_step'] or 0:.2%} matched within one step)"
            + ("" if row["identical"] else f"; first difference at {describe_difference(row['first_difference'])}"))
        for why in row["failures"]:
            log(f"{backend}:   {why}")
        runs.append(row)
    return {"status": "passed" if all(r["passed"] for r in runs) else "failed", "connectome":
            f"{spec.connectome_source} ({spec.n_neurons} neurons, {spec.n_edges} synapses)",
            "experiment": inputs.plan.experiment, "runs": runs}


def _timing(backend: str, options_dict: dict, inputs: _Inputs, work_root: Path, log: Callable[[str], None],
            deadline: float = math.inf) -> dict:
    spec = inputs.spec()
    rows, skipped = [], []
    grid = sorted(((t, n) for t in inputs.plan.timing_t_runs for n in inputs.plan.timing_n_runs), key=lambda p: p[0] * p[1])
    for t_run, n_run in grid:
        if time.monotonic() > deadline:
            skipped.append({"t_run_s": t_run, "n_run": n_run})
            log(f"{backend}: timing t_run {t_run:g} s x n_run {n_run}: skipped (the check's time budget is used up)")
            continue
        n_steps = int(round(t_run * 1000.0 / spec.params.dt_ms))
        result, timer = _simulate(backend, spec, inputs.drive(n_steps, n_run), options_dict, work_root,
                                  inputs.plan.precision)
        sec = timer.as_dict()
        row = {"t_run_s": t_run, "n_run": n_run, "spikes": len(result.spikes), **{k: sec[k] for k in
               ("build", "setup", "sim", "collect")}, "inner_s": result.run.inner_s,
               "realtime_ratio": round(t_run * n_run / sec["sim"], 4) if sec["sim"] > 0 else None}
        log(f"{backend}: timing t_run {t_run:g} s x n_run {n_run}: build {sec['build']:.2f} s, sim {sec['sim']:.2f} s "
            f"({row['realtime_ratio']} x real time), {row['spikes']} spikes")
        rows.append(row)
    return {"status": "passed", "grid": rows, "skipped": skipped}


def check_backend(backend: str, plan: CheckPlan, inputs: _Inputs | None = None, gpu: bool | None = None,
                  log: Callable[[str], None] = print, on_part: Callable[[dict], None] | None = None) -> dict:
    """Check one backend here; returns the report (see the module docstring). Never raises for a failing check.
    `on_part` gets the report so far (status "incomplete") after each part, so a killed check leaves what it did."""
    inputs = inputs or _Inputs(plan)
    gpus = gpu_names() if gpu is None else (["(assumed)"] if gpu else [])
    report = {"backend": backend, "host": host_name(), "flyhpc": __version__, "python": platform.python_version(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "gpus": gpus, "parts": {},
              "precision_asked": plan.precision}
    try:
        cls = backends.get(backend)
    except Exception as exc:  # unknown or not importable
        report.update(status="unavailable", reason=str(exc))
        return _judged(report)
    probe = cls.probe()
    report.update(device=cls.caps.device, versions=probe.versions, verified_here_in_code=cls.caps.verified_here,
                  precision=cls.caps.precision(plan.precision))
    if not probe.ok:
        report.update(status="unavailable", reason=probe.reason)
        return _judged(report)
    mode, extra = mode_of(backend, bool(gpus))
    options_dict = {**env_options(backend), **extra}
    fallback = cls.caps.cpu_fallback_options
    if mode == "gpu" and fallback and all(options_dict.get(k) == v for k, v in fallback.items()):
        mode = "cpu fallback"  # $FLYHPC_BACKEND_OPTIONS chose the CPU code path: not a run on the GPU
    if cls.caps.device == "cpu" and cls.runs_on_gpu(_options(backend, extra)):
        report["device"], mode = "gpu", "gpu"  # a CPU backend told to use CUDA (pytorch device "cuda")
    report.update(mode=mode, options=options_dict)
    work_root = Path(plan.work_root) if plan.work_root else Path(tempfile.mkdtemp(prefix=f"flyhpc-check-{backend}-"))
    log(f"{backend}: mode {mode}{' with ' + json.dumps(extra) if extra else ''}; GPUs: "
        f"{', '.join(gpus) or 'none: ' + no_gpu_reason()}")
    deadline = time.monotonic() + plan.budget_s
    for part in plan.parts:
        if part != "contract" and mode == "build only":
            report["parts"][part] = {"status": "not run", "note": "no GPU visible and no CPU code path"}
            continue
        start = time.perf_counter()
        try:
            if part == "contract":
                out = _contract(backend, mode, _options(backend, extra), work_root)
                log(f"{backend}: contract {out['status']}" + (f", {out['passed']}/{out['n_scenarios']} scenarios passed"
                                                               if out["scenarios"] else f" ({out.get('note', '')})"))
                for row in out["scenarios"]:
                    if row["status"] != "passed":
                        log(f"{backend}:   {row['status']}: {row['name']}: {row['detail']}")
            elif part == "parity":
                out = {"status": "reference", "note": "native is the reference"} if backend == "native" else \
                    _parity(backend, options_dict, inputs, work_root, log)
            else:
                out = _timing(backend, options_dict, inputs, work_root, log, deadline)
        except Exception as exc:
            out = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            log(f"{backend}: {part} ERROR: {out['error']}")
        out.setdefault("wall_s", round(time.perf_counter() - start, 3))
        report["parts"][part] = out
        if on_part is not None:
            on_part(_judged({**report, "status": "incomplete", "parts_left": list(plan.parts[len(report["parts"]):])}))
    states = [p["status"] for p in report["parts"].values()]
    report["status"] = "failed" if any(s in ("failed", "error") for s in states) else \
        "build only" if mode == "build only" else "passed"
    report["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if plan.work_root is None:
        shutil.rmtree(work_root, ignore_errors=True)
    return _judged(report)


def _judged(report: dict) -> dict:
    report["gpu_verified"], report["gpu_reason"] = gpu_verification(report)
    return report


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.3g}"
    return str(value)


def markdown(report: dict) -> str:
    """The Markdown summary of one backend's report."""
    lines = [f"# flyhpc check: {report['backend']} on {report['host']}", "",
             f"- status: **{report['status']}**" + (f" ({report['reason']})" if report.get("reason") else "")
             + (f"; parts not done: {', '.join(report['parts_left'])}" if report.get("parts_left") else ""),
             f"- mode: {report.get('mode', '-')}; GPUs: {', '.join(report.get('gpus') or []) or 'none'}; "
             f"options: {json.dumps(report.get('options', {}))}",
             f"- GPU verified: **{'yes' if report.get('gpu_verified') else 'no'}**"
             + (f" ({report['gpu_reason']})" if report.get("gpu_reason") else ""),
             f"- flyhpc {report['flyhpc']}, Python {report['python']}, versions {json.dumps(report.get('versions', {}))}",
             f"- started {report['started']}, finished {report.get('finished', '-')}", ""]
    parts = report.get("parts", {})
    if "contract" in parts:
        c = parts["contract"]
        lines += ["## Contract scenarios", "", f"{c['status']} in {_fmt(c.get('wall_s'), 1)} s"
                  + (f": {c['passed']}/{c['n_scenarios']} passed" if c.get("scenarios") else f" — {c.get('note', '')}"), ""]
        lines += [f"- {r['status']}: {r['name']} {r['detail']}" for r in c.get("scenarios", []) if r["status"] != "passed"]
        if c.get("error"):
            lines.append(f"- error: {c['error']}")
        lines.append("")
    if "parity" in parts:
        p = parts["parity"]
        lines += ["## Parity with native (full-scale synthetic sugar, 1 s)", "", f"{p['status']}"
                  + (f" — {p['connectome']}" if p.get("connectome") else f" — {p.get('note') or p.get('error', '')}"), ""]
        lines += parity_markdown(p)
    if "timing" in parts:
        t = parts["timing"]
        lines += ["## Timing", "", t["status"] + (f" — {t.get('note') or t.get('error', '')}" if "grid" not in t else ""), ""]
        if t.get("grid"):
            lines += ["| t_run s | n_run | build s | setup s | sim s | x real time | spikes |", "|---|---|---|---|---|---|---|"]
            lines += [f"| {_fmt(r['t_run_s'])} | {r['n_run']} | {_fmt(r['build'], 2)} | {_fmt(r['setup'], 2)} | "
                      f"{_fmt(r['sim'], 2)} | {_fmt(r['realtime_ratio'], 3)} | {r['spikes']} |" for r in t["grid"]]
            lines.append("")
        if t.get("skipped"):
            lines += ["Skipped (time budget): " + ", ".join(f"{_fmt(x['t_run_s'])} s x {x['n_run']}" for x in t["skipped"]), ""]
    return "\n".join(lines)


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write check-<backend>[-<precision asked>]-<host>.json and .md into `out_dir`; return both paths."""
    from flyhpc.files import write_json_atomic, write_text_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"check-{report['backend']}-{report['precision_asked'] + '-' if report.get('precision_asked') else ''}" \
           f"{report['host']}"
    write_json_atomic(out_dir / f"{stem}.json", report)
    write_text_atomic(out_dir / f"{stem}.md", markdown(report))
    return out_dir / f"{stem}.json", out_dir / f"{stem}.md"


def failed(report: dict, asked: bool) -> bool:
    """Whether a report counts as a failure: failed parts, or unavailable when the backend was asked for by name."""
    return report["status"] == "failed" or (asked and report["status"] == "unavailable")


SUBMITTED = "submitted-checks.json"  # {"backends": [...]}: the checks `check submit` sent out to write here


def collect(folder: Path) -> tuple[str, list[dict]]:
    """One Markdown table of every check-*.json in `folder` (a site's reports), and the reports themselves; a
    backend `check submit` sent out (SUBMITTED) without a report of its own gets a row saying so (its job ended
    before writing one), so a folder missing a report never reads as all passed."""
    reports = []
    for path in sorted(Path(folder).glob("check-*.json")):
        try:
            reports.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            reports.append({"backend": path.stem, "host": "?", "status": f"unreadable: {exc}", "parts": {}})
    reported = {r.get("backend") for r in reports}
    for name in read_json_object(Path(folder) / SUBMITTED).get("backends", []):
        if name not in reported:
            reports.append({"backend": name, "host": "?", "parts": {},
                            "status": f"missing: submitted, but no check-{name}-*.json (see its job's log)"})
    rows = ["| backend | host | GPU | mode | GPU verified | status | contract | parity (n_run: verdict, worst J, r) | "
            "sim s, t_run 1 s x n_run 1 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        parts = r.get("parts", {})
        c = parts.get("contract", {})
        contract_cell = (f"{c.get('passed')}/{c.get('n_scenarios')}" if c.get("scenarios") else c.get("status", "-"))
        p = parts.get("parity", {})
        t = next((x for x in parts.get("timing", {}).get("grid", []) if x["t_run_s"] == 1.0 and x["n_run"] == 1), None)
        rows.append(f"| {r['backend']}{' ' + r['precision_asked'] if r.get('precision_asked') else ''} | {r['host']} | {', '.join(r.get('gpus') or []) or 'none'} | {r.get('mode', '-')} | "
                    f"{'yes' if r.get('gpu_verified') else 'no'} | {r['status']} | {contract_cell} | {parity_cell(p)} | "
                    f"{_fmt(t['sim'], 2) if t else '-'} |")
    return "\n".join(rows) + "\n", reports


def default_backends(include_unavailable: bool = False) -> list[str]:
    """Every registered backend whose probe passes here (all of them with `include_unavailable`)."""
    out = []
    for name in backends.names():
        if include_unavailable:
            out.append(name)
            continue
        try:
            if backends.get(name).probe().ok:
                out.append(name)
        except Exception:
            continue
    return out


def gpu_backends() -> list[str]:
    """The registered backends that need a GPU (one array task each in `check submit`)."""
    return [n for n in backends.names() if backends.get(n).caps.device == "gpu"]


def run_check(names: Sequence[str], plan: CheckPlan, out_dir: Path, asked: bool,
              log: Callable[[str], None] = print) -> tuple[list[dict], bool]:
    """Check each backend of `names`, write its reports into `out_dir`; return (reports, any failure)."""
    inputs = _Inputs(plan)
    reports, bad = [], False
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for name in names:
        report = check_backend(name, plan, inputs, log=log, on_part=lambda partial: write_report(partial, out_dir))
        json_path, md_path = write_report(report, out_dir)
        log(f"{name}: {report['status']}{' (' + report['reason'] + ')' if report.get('reason') else ''} -> {md_path}")
        reports.append(report)
        bad |= failed(report, asked)
    return reports, bad
