"""Every apptainer/*.def parses with spython, pins the versions setup.cfg pins, has a %test that runs the contract
part of `flyhpc check` on its backend, and the build plan names them all (`flyhpc images build` itself:
tests/unit/cli/test_images_cmd.py). The GPU images build what they must at build time
(tests/unit/test_build_scripts.py runs the build scripts they call).
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
from packaging.markers import Marker

from flyhpc import backends
from flyhpc.errors import ConfigError
from flyhpc.images import DEF_DIR, image_name, image_plan

SingularityParser = pytest.importorskip("spython.main.parse.parsers.singularity").SingularityParser
DEFS = sorted(DEF_DIR.glob("*.def"))


def sections(path: Path) -> dict[str, str]:
    out, name = {}, None
    for line in path.read_text().splitlines():
        m = re.match(r"^%(\w+)", line)
        if m:
            name = m.group(1)
            out[name] = ""
        elif name:
            out[name] += line + "\n"
    return out


def test_one_def_per_backend_plus_base():
    names = {p.stem for p in DEFS}
    assert names == {"flyhpc-base"} | {image_name(k) for k in backends.names()}


@pytest.mark.parametrize("path", DEFS, ids=lambda p: p.stem)
def test_def_parses_and_has_cuda12_python311_flyhpc(path):
    recipe = next(iter(SingularityParser(str(path)).recipe.values()))
    assert recipe.fromHeader.startswith("nvidia/cuda:12.") and "devel" in recipe.fromHeader
    assert any("/opt/flyhpc/src" in f for f in recipe.files)
    assert f"org.flyhpc.image {path.stem}" in recipe.labels
    assert any("PATH=/opt/venv" in e for e in recipe.environ)
    sec = sections(path)
    assert "base-install.sh" in sec["post"] and 'exec flyhpc "$@"' in sec["runscript"]
    if path.stem != "flyhpc-base":
        key = next(lab.split()[1] for lab in recipe.labels if lab.startswith("org.flyhpc.backend"))
        assert key in backends.names()
        assert f"flyhpc check --backend {key} --part contract --out /tmp/flyhpc-check" in sec["test"]


def test_pins_match_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(DEF_DIR.parent / "setup.cfg")
    torch_pin = cfg["options.extras_require"]["torch"].strip()
    assert torch_pin in (DEF_DIR / "flyhpc-pytorch.def").read_text()
    base = (DEF_DIR / "base-install.sh").read_text()
    for line in filter(None, cfg["options"]["install_requires"].splitlines()):
        req, _, marker = (part.strip() for part in line.partition(";"))
        if marker and not Marker(marker).evaluate({"python_version": "3.11"}):
            continue  # the images run Python 3.11
        if re.split(r"[<>=]", req)[0] != "brian2":
            assert f'"{req}"' in base, f"{req} from setup.cfg is not pinned in base-install.sh"
    assert "brian2==2.9.0" in (DEF_DIR / "flyhpc-brian2cpp.def").read_text()
    assert "brian2==2.8.0 brian2cuda==1.0a7" in (DEF_DIR / "flyhpc-brian2cuda.def").read_text()
    assert '"brian2genn==1.7.0"' in (DEF_DIR / "flyhpc-brian2genn.def").read_text()
    assert "GENN_VERSION=5.4.0" in (DEF_DIR / "flyhpc-genn.def").read_text()
    assert "GENN4_VERSION=4.9.0" in (DEF_DIR / "flyhpc-brian2genn.def").read_text()


def test_nestgpu_image_fills_the_user_model_slot_with_files_that_exist():
    text = (DEF_DIR / "flyhpc-nestgpu.def").read_text()
    assert re.search(r"NESTGPU_COMMIT=[0-9a-f]{40}\b", text)
    script = (DEF_DIR.parent / "scripts" / "build-nestgpu.sh").read_text()
    copied = re.search(r"flyhpc/backends/nestgpu/\{([^}]*)\}", script).group(1).split(",")
    assert sorted(copied) == ["flyhpc_lif.cuh", "user_m1.cu", "user_m1.h"]
    for name in copied:
        assert (DEF_DIR.parent / "flyhpc" / "backends" / "nestgpu" / name).is_file()
    assert "-Dwith-mpi=OFF" in script and '-Dwith-gpu-arch="$ARCH"' in script and "CUDA_ARCH={{ CUDA_ARCH }}" in text
    worker = (DEF_DIR.parent / "flyhpc" / "backends" / "nestgpu" / "trial.py").read_text()
    assert 'NEURON_MODEL = "user_m1"' in worker


def _post_lines(name: str) -> list[str]:
    return [line.strip() for line in sections(DEF_DIR / f"{name}.def")["post"].splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_genn_image_builds_pygenn_with_cuda_path_set():
    """GeNN's setup.py builds the CUDA backend only if CUDA_PATH is set at BUILD time (%post), not in %environment."""
    post = _post_lines("flyhpc-genn")
    build = next(i for i, line in enumerate(post) if "build-pygenn.sh" in line)
    assert any(line == "export CUDA_PATH=/usr/local/cuda" for line in post[:build])
    assert "--cpu-only" not in post[build] and post[build].endswith("/opt/genn /opt/venv/bin/python")
    base = (DEF_DIR / "base-install.sh").read_text()
    assert "pkg-config" in base and "libffi-dev" in base  # setup.py reads libffi through pkgconfig


def test_nestgpu_image_sets_nestgpu_lib_to_the_library_it_builds():
    """nestgpu.py reads os.environ["NESTGPU_LIB"] at import; the image must set it to the installed library."""
    sec = sections(DEF_DIR / "flyhpc-nestgpu.def")
    lib = re.search(r"export NESTGPU_LIB=(\S+)", sec["environment"]).group(1)
    post = _post_lines("flyhpc-nestgpu")
    build = next(i for i, line in enumerate(post) if "build-nestgpu.sh" in line)
    assert f"test -f {lib}" in " ".join(post[build:]) and lib.startswith("/opt/nestgpu/")
    assert "CUDA_PATH=/usr/local/cuda" in " ".join(post[build - 1:build + 1])


def test_brian2genn_image_builds_genn49_libraries_and_links_against_the_driver_stub():
    """GeNN 4.9 builds its libraries only into a writable $GENN_PATH/lib: the image must build them in %post; the
    generator of each model links -lcuda, the stub at link time."""
    post = _post_lines("flyhpc-brian2genn")
    clone = next(i for i, line in enumerate(post) if "genn.git /opt/genn-4.9" in line)
    build = next(i for i, line in enumerate(post) if "build-genn4.sh" in line)
    assert build > clone and post[build] == "CUDA_PATH=/usr/local/cuda bash /opt/flyhpc/src/scripts/build-genn4.sh /opt/genn-4.9"
    env = sections(DEF_DIR / "flyhpc-brian2genn.def")["environment"]
    assert "export GENN_PATH=/opt/genn-4.9" in env and "LIBRARY_PATH=/usr/local/cuda/lib64/stubs" in env


def test_image_plan_for_one_backend_and_unknown():
    plan = image_plan("genn")
    assert [p.def_file.stem for p in plan] == ["flyhpc-base", "flyhpc-genn"]
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        image_plan("nope")


def test_build_args_and_cpu_fallbacks_come_from_the_backends_caps():
    from flyhpc.check import mode_of

    plan = {p.def_file.stem: p.command for p in image_plan(cuda_arch="90")}
    for key in backends.names():
        caps = backends.get(key).caps
        command = plan[image_name(key)]
        args = [command[i + 1] for i, part in enumerate(command) if part == "--build-arg"]
        assert args == [a.format(cuda_arch="90") for a in caps.image_build_args], key
        if caps.device == "gpu":
            mode = "cpu fallback" if caps.cpu_fallback_options else "build only"
            assert mode_of(key, gpu=False) == (mode, dict(caps.cpu_fallback_options)), key
    assert "--build-arg" not in plan["flyhpc-base"]
