"""A resubmitted task whose new job is cancelled before it reaches the task is judged by that job's end, never by
its earlier attempt's record — for real, on both schedulers (the local executor: submitit's LocalExecutor; the
loopback Slurm of scripts/local-slurm/start.sh).

Two tiny tasks of one label fail (their jobs inherit FLYHPC_PRECISION=bogus, which the real worker rejects and
records as an error), are resubmitted with array_parallelism 1, and the first task of the new attempt is held at
a gate (`gated_run`: SIGTERM ends it while it waits, as it ends `run_task`). `flyhpc cancel` ends the new jobs
while the other task still waits its turn: its failed record from the first attempt is still on disk (dated in
the future, as a file server's clock may), yet `flyhpc status` says what became of its latest job — cancelled on
Slurm, missing on the local executor (an ended local job leaves nothing) — names that job, quotes the earlier
record, and exits 4; a resubmit takes the task again.
"""

from __future__ import annotations

import pytest

from flyhpc.cluster import status

from tests.integration.test_resubmit_waiting import ON_SLURM, _cli, _until, gated_run, resubmitted_with_one_held


@pytest.mark.parametrize("kind", [pytest.param("slurm", marks=ON_SLURM), "local"])
def test_a_resubmitted_task_whose_job_was_cancelled_first_is_not_its_old_failure(tmp_path, kind, monkeypatch):
    with resubmitted_with_one_held(tmp_path, kind, f"cancel_{kind}", gated_run, monkeypatch) as case:
        root, label, paths, waiting, old_reason = case.root, case.label, case.paths, case.waiting, case.old_reason
        assert status.status(root, label).exit_code == 75  # queued behind the held one (test_resubmit_waiting)

        cancelled = _cli("cancel", label, "--results-root", str(root))
        assert cancelled.returncode == 0 and cancelled.stdout.startswith("cancelled "), cancelled.stdout
        report = _until("the new jobs ended", lambda: (r := status.status(root, label)).active == 0 and r)
        row = next(r for r in report.rows if r.key == waiting.key)
        latest = row.job_id
        assert latest and latest not in old_reason  # the resubmission's job, not the first attempt's
        assert row.state == ("cancelled" if kind == "slurm" else "missing"), report.rows
        ended = f"job {latest} ended CANCELLED" if kind == "slurm" else f"job {latest} ended before it reached the task"
        assert row.reason.startswith(ended), row.reason
        assert row.reason.endswith(f"; the earlier attempt's record says {old_reason}"), row.reason
        assert not (tmp_path / "gate").exists() and not paths.parquet(waiting).exists()  # it never ran

        shown = _cli("status", label, "--results-root", str(root))
        assert shown.returncode == 4, shown.stdout + shown.stderr
        cells = {c[0]: c[1:] for c in ([x.strip() for x in ln.split("│")[1:-1]] for ln in shown.stdout.splitlines())
                 if c}
        state, job, reason = cells[waiting.key][:3]  # the reason's first line (the table wraps it)
        assert (state, job) == (row.state, latest) and reason.startswith(ended), shown.stdout
        assert waiting.key in {r.key for r in report.failures()}  # a resubmit takes it again
