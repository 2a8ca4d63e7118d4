"""Apptainer images: which .def builds which backend's image, and the build commands.

Owns the mapping backend -> apptainer/<name>.def -> <images dir>/<image>.sif (image names and build
arguments come from each backend's `caps.image` and `caps.image_build_args`; definitions are found in
the `flyhpc.config_paths` order) and the `apptainer build` command lines, run in the folder above the
definition's apptainer/ (the flyhpc source tree the images install). It runs nothing unless asked
and simulates nothing (each image's %test runs `flyhpc check --part contract`). Entry points:
`image_plan`, `build_images`, `DEF_DIR` (the definitions packaged with flyhpc).
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
