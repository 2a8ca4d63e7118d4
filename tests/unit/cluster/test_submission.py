"""The label's record (submission.json) as status, collect and verify read it: a file that is not a record is
bad input naming it, and a planned task removed from it by hand is caught by plan.log."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from flyhpc import collect
from flyhpc.bundle import BundlePaths
from flyhpc.cli import cli
from flyhpc.cluster.status import EXIT_UNFINISHED, status
from flyhpc.errors import ConfigError

from tests.unit.bundles import fake_result, make_task, plan


@pytest.mark.parametrize("text,why", [("{}", 'no "tasks" object'), ("[]", "a JSON list, not an object"),
                                      ('{"tasks": {}, "submissions": {}}', 'no "submissions" list'),
                                      ('{"tasks": {"a": 1}, "submissions": []}', "task 'a' is a int")])
def test_a_submission_json_that_is_no_record_is_named_not_a_traceback(tmp_path, text, why):
    paths = BundlePaths(tmp_path, "lab")
    paths.label_dir.mkdir()
    paths.submission.write_text(text)
    with pytest.raises(ConfigError, match=f"submission.json: not valid: {why}"):
        status(tmp_path, "lab")
    for args in (["status", "lab"], ["collect", "lab"], ["verify", "lab"], ["resubmit", "lab"]):
        out = CliRunner().invoke(cli, [*args, "--results-root", str(tmp_path)])
        assert out.exit_code == 2 and "not valid" in out.output and out.exception.__class__ is SystemExit, args


def test_a_task_removed_from_submission_json_is_caught_by_plan_log(tmp_path):
    kept, removed = make_task(tmp_path, t=0.1), make_task(tmp_path, t=0.2)
    plan(kept, removed)
    fake_result(kept)
    fake_result(removed)
    paths = BundlePaths(tmp_path, "lab")
    assert paths.plan_log.read_text() == f"{kept.key}\n{removed.key}\n"
    assert collect.collect(tmp_path, "lab").exit_code == 0 and collect.verify(tmp_path, "lab").exit_code == 0
    record = json.loads(paths.submission.read_text())
    del record["tasks"][removed.key]
    paths.submission.write_text(json.dumps(record))
    report = status(tmp_path, "lab")
    assert report.exit_code == EXIT_UNFINISHED and not report.complete
    assert report.damaged[0][0] == "submission.json" and removed.key in report.damaged[0][1]
    assert collect.collect(tmp_path, "lab").exit_code == EXIT_UNFINISHED
    verdict = collect.verify(tmp_path, "lab")
    assert verdict.exit_code == 5 and any(removed.key in line for line in verdict.corrupt)
    out = CliRunner().invoke(cli, ["status", "lab", "--results-root", str(tmp_path)])
    assert out.exit_code == EXIT_UNFINISHED and "damaged" in out.output


def test_plan_log_only_grows(tmp_path):
    first, second = make_task(tmp_path, t=0.1), make_task(tmp_path, t=0.2)
    plan(first)
    plan(first, second)  # a second plan adds what is new, in order, once
    assert BundlePaths(tmp_path, "lab").plan_log.read_text().splitlines() == [first.key, second.key]
