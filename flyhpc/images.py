"""Apptainer images: which .def builds which backend's image, and the build commands.

Owns the mapping backend -> apptainer/<name>.def -> <images dir>/<image>.sif (image names and build
arguments come from each backend's `caps.image` and `caps.image_build_args`; definitions are found in
the `flyhpc.config_paths` order) and the `apptainer build` command lines, run in the folder above the
definition's apptainer/ (the flyhpc source tree the images install). It runs nothing unless asked.
Also the images' %test (`smoke_test`). Entry points: `image_plan`, `build_images`, `smoke_test`, `DEF_DIR`
(the definitions packaged with flyhpc).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flyhpc import backends as registry
from flyhpc import config_paths
from flyhpc.errors import BackendUnavailable, ConfigError

DEF_DIR = (config_paths.PACKAGED / "apptainer").resolve()


@dataclass(frozen=True)
class ImageBuild:
    """One image to build: its backend, definition file, output .sif, the command and the folder it runs in.

    `context` is the folder above the definition's apptainer/: the definitions copy it into the image
    (`%files . /opt/flyhpc/src`) and pip-install it, so it must be a flyhpc source tree.
    """

    backend: str
    def_file: Path
    sif: Path
    command: tuple[str, ...]
    context: Path


def images_dir() -> Path:
    """Where images go: $FLYHPC_IMAGES, else ./images."""
    return Path(os.environ.get("FLYHPC_IMAGES", "images"))


def image_name(backend: str) -> str:
    """The image of a backend: its `caps.image`, prefixed "flyhpc-" (as cluster profiles name them)."""
    image = registry.get(backend).caps.image
    return image if image.startswith("flyhpc-") else f"flyhpc-{backend}"


def image_plan(backend: str | None = None, out_dir: Path | None = None, cuda_arch: str = "80") -> list[ImageBuild]:
    """The builds for one backend (plus the base image first) or for all of them.

    Each `<image>.def` is the first found in the `flyhpc.config_paths` order (config folder's apptainer/,
    ./apptainer, the packaged definitions).

    Raises
    ------
    ConfigError
        If `backend` is unknown or its definition file is found nowhere (naming the folders searched).
    """
    out_dir = images_dir() if out_dir is None else Path(out_dir)
    keys = registry.names() if backend is None else [backend]
    if backend is not None and backend not in registry.REGISTRY:
        raise ConfigError(f"unknown backend {backend!r}; known: {', '.join(registry.names())}")
    images: dict[str, list[str]] = {"flyhpc-base": []}  # image -> its --build-arg values, in build order
    for key in keys:
        args = images.setdefault(image_name(key), [])
        filled = (t.format(cuda_arch=cuda_arch) for t in registry.get(key).caps.image_build_args)
        args += [a for a in filled if a not in args]  # backends sharing an image share its arguments
    plan = []
    for name, build_args in images.items():
        def_file = config_paths.find("apptainer", name)
        if def_file is None:
            raise ConfigError(f"no definition file {name}.def for image {name!r}; searched "
                              f"{', '.join(map(str, config_paths.search_dirs('apptainer')))}")
        sif = out_dir / f"{name}.sif"
        cmd = ["apptainer", "build", "--force"]
        for arg in build_args:
            cmd += ["--build-arg", arg]
        plan.append(ImageBuild(backend or "all", def_file, sif, tuple(cmd + [str(sif), str(def_file)]),
                               def_file.parent.parent))
    return plan


def build_images(plan: list[ImageBuild]) -> None:
    """Run every build of `plan` in order, each in its `context` folder.

    Raises
    ------
    BackendUnavailable
        Without apptainer on PATH.
    ConfigError
        If a build's context is not a flyhpc source tree (an installed wheel ships the definitions, not
        the sources they install): checked for every build before any runs.
    """
    if not shutil.which("apptainer"):
        raise BackendUnavailable("apptainer is not on PATH; use --dry-run to print the commands")
    for item in plan:
        if not ((item.context / "setup.cfg").is_file() and (item.context / "flyhpc").is_dir()):
            raise ConfigError(f"{item.def_file}: building it needs the flyhpc source tree around it (setup.cfg "
                              f"and flyhpc/ in {item.context}); run it in a flyhpc checkout, whose ./apptainer/ "
                              "comes first")
    for item in plan:
        item.sif.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(item.command, check=True, cwd=item.context)


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process (`nvidia-smi -L` lists one)."""
    if not shutil.which("nvidia-smi"):
        return False
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return out.returncode == 0 and "GPU" in out.stdout


def smoke_mode(backend: str, gpu: bool) -> tuple[str, dict]:
    """("simulate" or "build only", backend options) of the smoke test of `backend` with or without a GPU.

    Images are often built on login nodes without a GPU: there a GPU backend simulates through the
    simulator's CPU code path (its `caps.cpu_fallback_options`) where it has one, else only builds.
    """
    caps = registry.get(backend).caps
    if caps.device != "gpu" or gpu:
        return "simulate", {}
    if caps.cpu_fallback_options:
        return "simulate", dict(caps.cpu_fallback_options)
    return "build only", {}


def smoke_test(backend: str, t_run_ms: float = 10.0, gpu: bool | None = None) -> int:
    """The images' %test: build `backend` and simulate a 3-neuron chain for `t_run_ms`; returns spikes.

    Without a visible GPU (`gpu` None: detect), a GPU backend simulates through its CPU code path where it
    has one (`caps.cpu_fallback_options`) and otherwise only builds (generation and compilation), and says so.
    """
    import numpy as np

    from flyhpc.backends.base import make_options
    from flyhpc.drive import make_drive
    from flyhpc.model import DriveSet, Experiment, Params
    from flyhpc.network import NetworkSpec

    params = Params()
    ids = np.array([1, 2, 3], np.int64)
    spec = NetworkSpec(
        params=params, flywire_ids=ids, indptr=np.array([0, 1, 2, 2]), indices=np.array([1, 2], np.int32),
        weights_mv=np.array([8.0, 8.0]), refractory_steps=np.array([0, 22, 22], np.int32),
        drive_sets=(DriveSet(np.array([0], np.int32), 200.0), DriveSet(np.zeros(0, np.int32), 0.0)),
        silenced=np.zeros(0, np.int32), experiment=Experiment(name="smoke", activate=(1,), rate_hz=200.0),
        connectome_source="smoke", connectome_digest="smoke")
    n_steps = int(round(t_run_ms / params.dt_ms))
    cls = registry.get(backend)
    mode, options = smoke_mode(backend, gpu_visible() if gpu is None else gpu)
    sim = cls(make_options(cls, options))
    try:
        sim.build(spec, n_steps)
        if mode == "build only":
            print(f"{backend}: no GPU visible, built only (nothing simulated)")
            return 0
        sim.setup()
        sim.run(make_drive(spec, n_steps, 1))
        n = len(sim.spikes())
    finally:
        sim.close()
    where = f" (no GPU visible: options {options})" if options else ""
    print(f"{backend}: {n} spikes in {t_run_ms} ms{where}")
    if n == 0:
        raise BackendUnavailable(f"{backend}: the smoke test's driven neuron never spiked in {t_run_ms} ms")
    return n
