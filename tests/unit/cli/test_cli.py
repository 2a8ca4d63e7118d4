"""The `flyhpc` group itself (flyhpc/cli/__init__.py): its commands, --version, --help, --config-dir, and
every flyhpc.errors class (and an OSError saying the output cannot be written) turned into one line with its
exit code; --debug keeps the traceback, any other exception stays a bug with its traceback."""

from __future__ import annotations

import errno
import os

import click
import pytest
from click.testing import CliRunner

from flyhpc import __version__, config_paths, errors
from flyhpc.cli import FlyhpcGroup, cli

COMMANDS = {"backends", "bench", "cancel", "check", "collect", "compare", "data", "images", "report", "resubmit",
            "run", "screen", "status", "submit", "verify", "wheelhouse"}
ERRORS = sorted((cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.FlyhpcError)),
                key=lambda cls: cls.__name__)


def _invoke(group, *args, **kw):
    return CliRunner().invoke(group, [str(a) for a in args], **kw)


def test_help_lists_every_command_and_h_is_help():
    long, short = _invoke(cli, "--help"), _invoke(cli, "-h")
    assert long.exit_code == 0 and short.output == long.output
    assert set(cli.commands) == COMMANDS
    listed = {line.split()[0] for line in long.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == COMMANDS
    assert "--config-dir" in long.output and "FLYHPC_CONFIG" in long.output
    assert {"ground-truth", "pairs", "backend", "runs", "paper"} == set(cli.commands["compare"].commands)


def test_version_is_the_package_version():
    out = _invoke(cli, "--version")
    assert out.exit_code == 0 and out.output == f"flyhpc, version {__version__}\n"


def test_an_unknown_command_is_a_usage_error():
    out = _invoke(cli, "sumbit")
    assert out.exit_code == 2 and "No such command 'sumbit'" in out.output


def _raising(exc: BaseException) -> click.Group:
    """A group of flyhpc's class with one command that raises `exc` (a stand-in for a library call failing)."""
    group = FlyhpcGroup(name="flyhpc", params=[click.Option(["--debug"], is_flag=True)])

    @group.command("boom")
    def boom():
        raise exc

    return group


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_each_flyhpc_error_is_one_line_with_its_exit_code(cls):
    out = _invoke(_raising(cls("what went wrong, named")), "boom")
    assert out.exit_code == cls.exit_code
    assert out.output == "Error: what went wrong, named\n"
    assert isinstance(out.exception, SystemExit)  # no traceback: click printed the line and exited


def test_the_documented_exit_codes_of_the_error_families():
    codes = {cls.__name__: cls.exit_code for cls in ERRORS}
    assert codes["ConfigError"] == codes["UnknownBackendError"] == codes["DataError"] == 2
    assert codes["BackendUnavailable"] == codes["SchedulerUnavailable"] == codes["UnsupportedFeature"] == 3
    assert (codes["TaskFailed"], codes["IntegrityError"], codes["OutputError"], codes["Busy"]) == (4, 5, 74, 75)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_an_oserror_that_cannot_write_the_output_is_exit_74(code, tmp_path):
    target = tmp_path / "out.csv"
    out = _invoke(_raising(OSError(code, os.strerror(code), str(target))), "boom")
    assert out.exit_code == errors.OutputError.exit_code == 74
    lines = out.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot write {target}: ") and errno.errorcode[code] in lines[0]


def test_any_other_exception_is_a_bug_and_keeps_its_traceback(tmp_path):
    for exc in (OSError(errno.ENOENT, "No such file or directory", str(tmp_path / "x")), RuntimeError("bug")):
        out = _invoke(_raising(exc), "boom")
        assert out.exit_code == 1 and out.exception is exc and "Error:" not in out.output


def test_debug_reraises_the_flyhpc_error(tmp_path):
    plain = _invoke(cli, "check", "collect", tmp_path)
    assert plain.exit_code == 2 and plain.output.startswith("Error: no check-*.json in ")
    debug = _invoke(cli, "--debug", "check", "collect", tmp_path)
    assert isinstance(debug.exception, errors.ConfigError) and "no check-*.json" in str(debug.exception)
    assert debug.exit_code == 1 and debug.output == ""


def _grid_file(path, description: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[grid]\ndescription = "{description}"\nbackends = ["native"]\nt_run_s = [0.1]\nn_run = [1]\n')


def test_config_dir_option_sets_the_search_for_the_process(tmp_path, monkeypatch):
    monkeypatch.setenv(config_paths.ENV_VAR, "unset by the test")
    monkeypatch.delenv(config_paths.ENV_VAR)  # restored (removed) after the test
    monkeypatch.chdir(tmp_path)
    _grid_file(tmp_path / "cfg" / "grids" / "mine.toml", "mine")
    result = _invoke(cli, "--config-dir", "cfg", "submit", "--grid", "nope", "--run-label", "x", "--dry-run")
    assert result.exit_code == 2 and "unknown grid 'nope'; known: demo, mine, paper, quick" in result.output
    assert os.environ[config_paths.ENV_VAR] == str((tmp_path / "cfg").resolve())
    result = _invoke(cli, "--config-dir", "nowhere", "backends")
    assert result.exit_code == 2 and "'--config-dir'" in result.output and "'nowhere' does not exist" in result.output


def test_config_dir_comes_from_the_environment_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _grid_file(tmp_path / "cfg" / "grids" / "mine.toml", "mine")
    monkeypatch.setenv(config_paths.ENV_VAR, str(tmp_path / "cfg"))
    result = _invoke(cli, "submit", "--grid", "nope", "--run-label", "x", "--dry-run")
    assert result.exit_code == 2 and "known: demo, mine, paper, quick" in result.output
    result = _invoke(cli, "backends", env={config_paths.ENV_VAR: str(tmp_path / "missing")})
    assert result.exit_code == 2 and "FLYHPC_CONFIG" in result.output and "does not exist" in result.output
