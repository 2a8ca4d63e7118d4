"""`flyhpc images build [--backend B] [--dry-run]`: run or print the apptainer build commands.

Parses flags and calls `flyhpc.images`; no logic of its own. Entry point: `images_group`.
"""

from __future__ import annotations

import shlex

import click


@click.group("images")
def images_group() -> None:
    """Apptainer images of the backends."""


@images_group.command("build")
@click.option("--backend", default=None, help="Build only this backend's image (and the base).")
@click.option("--cuda-arch", default="80", show_default=True, help="CUDA architecture for nestgpu (e.g. 90).")
@click.option("--dry-run", is_flag=True, help="Print the commands instead of running them.")
def build(backend: str | None, cuda_arch: str, dry_run: bool) -> None:
    """Build the base image and the backend images from apptainer/*.def."""
    from flyhpc.images import build_images, image_plan

    plan = image_plan(backend, cuda_arch=cuda_arch)
    if dry_run:
        for item in plan:
            click.echo(shlex.join(item.command))
        return
    build_images(plan)
