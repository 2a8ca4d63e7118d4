"""`flyhpc images build` (flyhpc/cli/images_cmd.py): --dry-run prints one shell-quoted apptainer command per
image (the base first, --backend narrows to the base and that image, --cuda-arch reaches nestgpu's build);
without apptainer on PATH a real build is refused in one line (exit 3), and an unknown backend is bad input."""

from __future__ import annotations

import shlex

from click.testing import CliRunner

from flyhpc.cli import cli
from flyhpc.images import DEF_DIR


def _invoke(*args, **kw):
    return CliRunner().invoke(cli, ["images", "build", *args], **kw)


def test_images_build_dry_run_prints_every_build():
    result = _invoke("--dry-run", "--cuda-arch", "90")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(list(DEF_DIR.glob("*.def"))) and lines[0].endswith("apptainer/flyhpc-base.def")
    assert any("CUDA_ARCH=90" in line and "flyhpc-nestgpu" in line for line in lines)
    assert all(shlex.split(line)[:2] == ["apptainer", "build"] for line in lines)


def test_one_backend_is_the_base_and_its_image():
    result = _invoke("--backend", "genn", "--dry-run")
    assert result.exit_code == 0, result.output
    defs = [shlex.split(line)[-1] for line in result.output.splitlines()]
    assert [d.rsplit("/", 1)[-1] for d in defs] == ["flyhpc-base.def", "flyhpc-genn.def"]
    assert "CUDA_ARCH=80" in _invoke("--backend", "nestgpu", "--dry-run").output  # the default architecture


def test_an_unknown_backend_is_bad_input():
    result = _invoke("--backend", "nope", "--dry-run")
    assert result.exit_code == 2 and "unknown backend 'nope'" in result.output


def test_a_build_without_apptainer_is_refused_in_one_line(tmp_path):
    result = _invoke("--backend", "genn", env={"PATH": str(tmp_path)})
    assert result.exit_code == 3
    assert result.output == "Error: apptainer is not on PATH; use --dry-run to print the commands\n"
