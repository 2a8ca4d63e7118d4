"""`flyhpc check`: self-test of the backends here; `check collect DIR`: one table of many; `check submit`: run it
once per GPU backend of a cluster profile, through its scheduler (`flyhpc.check_submit`). Parses flags, calls
flyhpc.check and flyhpc.check_submit. No logic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flyhpc.errors import BackendUnavailable, ConfigError

CHECK_HELP = """Check the backends of this environment (default: every backend whose probe passes here): the 13
contract scenarios, the full-scale synthetic sugar run (1 s; n_run 1 and 4) against native, and a timing grid
(t_run 0.1/1/10 s x n_run 1/8). Writes check-<backend>-<host>.json and .md into --out.

Parity: spike-identical to native, or (marked "not identical", first difference named) total count ratio 1 +-2 %,
each trial's 1 +-5 %, and per trial Jaccard >= 0.957 and rate r >= 0.9997.

A GPU backend without a visible GPU runs through its simulator's CPU code path where it has one (genn, brian2genn)
and otherwise only builds (brian2cuda, nestgpu), and the report says so (gpu_verified: false).

\b
Exit codes: 0 every check passed (or built only, where no GPU is visible); 4 a scenario or part failed,
parity failed, a backend named with --backend cannot run here, or (--require-gpu) a GPU backend did not
run on a GPU; 3 no backend can run here; 2 bad input (`check collect`: a folder without check-*.json;
`check submit`: sbatch refused the array).
"""


@click.group(invoke_without_command=True, help=CHECK_HELP)
@click.option("--backend", "backend_names", multiple=True, help="Backend to check (repeat); default: all available here.")
@click.option("--part", "parts", multiple=True, type=click.Choice(["contract", "parity", "timing"]),
              help="Part to run (repeat); default: all three.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder for the check-<backend>-<host>.json/.md reports.")
@click.option("--parity-n-run", type=int, multiple=True, help="Trials of the parity runs (repeat); default 1 and 4.")
@click.option("--t-run", "timing_t_runs", type=float, multiple=True, help="Timing grid t_run in s (repeat); default 0.1 1 10.")
@click.option("--n-run", "timing_n_runs", type=int, multiple=True, help="Timing grid n_run (repeat); default 1 8.")
@click.option("--connectome", default="synthetic", show_default=True,
              help="Connectome of the parity and timing parts: 'synthetic' (full scale), 'auto' or a folder.")
@click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where builds go (default: a temporary folder per backend, removed afterwards).")
@click.option("--budget-min", type=float, default=8.0, show_default=True,
              help="Per backend: timing-grid points not started by then are reported as skipped.")
@click.option("--require-gpu", is_flag=True,
              help="Exit 4 unless every GPU backend checked ran on a GPU (no CPU fallback, not build only).")
@click.option("--quick", is_flag=True, help="The short-window profile: timing at t_run 1 and 10 s x n_run 1 and 8 "
              "(contract and parity as always); explicit --t-run/--n-run/--parity-n-run win.")
@click.option("--precision", type=click.Choice(["float64", "float32"]), default=None,
              help="Precision of the parity and timing runs (default: the backend's first); named in the report files.")
@click.pass_context
def check(ctx, backend_names, parts, out_dir, parity_n_run, timing_t_runs, timing_n_runs, connectome, build_dir,
          budget_min, require_gpu, quick, precision):
    if ctx.invoked_subcommand is not None:
        return
    from flyhpc import check as lib
    from flyhpc.check_verdicts import unverified_gpus
    from flyhpc.data.connectome import default_data_dir

    grid = {**({k: getattr(lib.CheckPlan, k) for k in lib.QUICK} if not quick else lib.QUICK),
            **{k: tuple(v) for k, v in (("parity_n_runs", parity_n_run), ("timing_t_runs", timing_t_runs),
                                        ("timing_n_runs", timing_n_runs)) if v}}
    plan = lib.CheckPlan(parts=tuple(parts) or lib.PARTS, connectome=connectome, data_dir=default_data_dir(),
                         work_root=build_dir, budget_s=budget_min * 60.0, precision=precision, **grid)
    names = list(backend_names) or lib.default_backends()
    if not names:
        raise BackendUnavailable("no backend can run here (flyhpc backends lists why)")
    reports, bad = lib.run_check(names, plan, out_dir, asked=bool(backend_names),
                                 log=lambda msg: click.echo(msg, err=False))
    unverified = unverified_gpus(reports) if require_gpu else []
    for line in unverified:
        click.echo(f"--require-gpu: {line}", err=True)
    if bad or unverified:
        sys.exit(4)


@check.command("collect")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def collect_cmd(folder):
    """One table of every check-*.json in FOLDER (written to FOLDER/check-summary.md); exit 4 if any failed,
    2 if FOLDER holds no check-*.json (nothing is written then)."""
    from flyhpc import check as lib
    from flyhpc.files import write_text_atomic

    table, reports = lib.collect(folder)
    if not reports:
        raise ConfigError(f"no check-*.json in {folder} (run `flyhpc check --out {folder}` or `flyhpc check submit` "
                          "first)")
    write_text_atomic(folder / "check-summary.md", "# flyhpc check: " + str(folder) + "\n\n" + table)
    click.echo(table, nl=False)
    if any(r.get("status") not in ("passed", "build only") for r in reports):
        sys.exit(4)


@check.command("submit")
@click.option("--profile", "profile_name", required=True, help="Cluster profile (jobs/clusters/<name>.toml or a path).")
@click.option("--backend", "backend_names", multiple=True, help="Backend (repeat); default: every GPU backend.")
@click.option("--part", "parts", multiple=True, type=click.Choice(["contract", "parity", "timing"]),
              help="Part to run (repeat); default: all three.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder (shared with the nodes) for the reports.")
@click.option("--time-min", type=int, default=45, show_default=True, help="Time limit of each array task, minutes.")
@click.option("--dry-run", is_flag=True, help="Print the arrays and each task's command, submit nothing.")
def submit_cmd(profile_name, backend_names, parts, out_dir, time_min, dry_run):
    """Run `flyhpc check` on a cluster, one array task per backend (one array per image), through the profile's
    scheduler as benchmark tasks go; then `flyhpc check collect OUT`."""
    from flyhpc import check as lib, check_submit
    from flyhpc.cluster.profiles import load_profile

    profile = load_profile(profile_name)
    names = list(backend_names) or lib.gpu_backends()
    arrays = check_submit.plan_arrays(profile, names, out_dir, time_min, [a for p in parts for a in ("--part", p)])
    if dry_run:
        click.echo(check_submit.describe(profile, arrays), nl=False)
        return
    entries, folder = check_submit.submit(profile, arrays, out_dir)
    jobs = ", ".join(e["job_id"] for e in entries)
    click.echo(f"submitted {len(names)} task(s) ({', '.join(names)}): job(s) {jobs}; then: flyhpc check collect "
               f"{out_dir}; job scripts and logs in {folder}")
