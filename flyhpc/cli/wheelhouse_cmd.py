"""`flyhpc wheelhouse DIR`: the wheels and source archives an offline node needs (flyhpc.wheelhouse). No logic."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("wheelhouse")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--python", "python", default="3.12", show_default=True, help="Python version of the node.")
@click.option("--for", "target", default="gpu-node", show_default=True,
              help="The kind of node (gpu-node: the node of scripts/gpu-proof.sh, see flyhpc.node_facts).")
@click.option("--source", "sources", multiple=True, metavar="NAME=GIT_DIR",
              help="Take a source (genn, nest-gpu) from a local clone or mirror instead of cloning it (repeat).")
@click.option("--verify", "verify_only", is_flag=True, help="Only check DIR against its wheelhouse.json.")
def wheelhouse(out_dir, python, target, sources, verify_only):
    """Fill OUT_DIR so that an offline node needs nothing else: `pip install --no-index --find-links OUT_DIR
    -r OUT_DIR/requirements-<env>.txt`, and the GeNN / NEST GPU sources that scripts/gpu-proof.sh builds there.
    Prints the size. Exit 2 on bad input, 4 when a download or a git command fails, 5 when --verify finds a
    file missing or changed."""
    from flyhpc import wheelhouse as lib
    from flyhpc.errors import ConfigError

    if verify_only:
        problems = lib.verify(out_dir)
        for line in problems:
            click.echo(f"wheelhouse: {line}", err=True)
        if problems:
            raise SystemExit(5)
        click.echo(f"wheelhouse: {out_dir} matches its wheelhouse.json")
        return
    git_dirs = {}
    for item in sources:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            raise ConfigError(f"wheelhouse: --source {item!r} must be NAME=GIT_DIR with an existing folder")
        git_dirs[name] = Path(path)
    manifest = lib.build(out_dir, lib.plan(target, python), git_dirs, log=click.echo)
    for name, entry in sorted(manifest["files"].items()):
        click.echo(f"  {entry['bytes'] / 2**20:7.2f} MiB  {entry['env']:<10} {name}")
    click.echo(f"wheelhouse: {out_dir}: {len(manifest['files'])} files, {manifest['total_bytes'] / 2**20:.1f} MiB "
               f"(target {target}, Python {python})")
    if manifest["note"]:
        click.echo(f"wheelhouse: note: {manifest['note']}")
