"""`flyhpc backends`: the capability table of every registered backend, from `caps` and `probe()`.

Owns the table's rows and its two renderings (rich for the terminal, Markdown for the README, so a
test can check that the README and the code agree). Probing imports simulators, never allocates.
Entry points: `backends` (click command), `capability_rows`, `render_markdown`.
"""

from __future__ import annotations

import click

from flyhpc import backends as registry
from flyhpc.errors import BackendUnavailable
from flyhpc.images import image_name

COLUMNS = ("backend", "device", "batching", "drive", "dtype", "image", "verified here")


def capability_rows(probe: bool = False) -> list[dict[str, str]]:
    """One row per registered backend (registry order); with probe=True adds "available here"."""
    rows = []
    for key in registry.names():
        try:
            cls = registry.get(key)
        except BackendUnavailable as exc:
            rows.append({"backend": key, **{c: "?" for c in COLUMNS[1:]}, "available here": f"no: {exc}"})
            continue
        caps = cls.caps
        row = {"backend": key, "device": caps.device, "batching": caps.batching, "drive": caps.drive,
               "dtype": ", ".join(caps.precisions), "image": image_name(key), "verified here": caps.verified_here}
        if probe:
            result = cls.probe()
            row["available here"] = "yes" if result.ok else f"no: {result.reason}"
        rows.append(row)
    return rows


def render_markdown(rows: list[dict[str, str]] | None = None) -> str:
    """The capability table as GitHub Markdown (static columns only: the README's table)."""
    rows = capability_rows() if rows is None else rows
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@click.command("backends")
@click.option("--markdown", is_flag=True, help="Print the README's Markdown table instead (no probing).")
def backends(markdown: bool) -> None:
    """List every backend: device, batching, drive, dtype, image, verified here, available here."""
    if markdown:
        click.echo(render_markdown(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    rows = capability_rows(probe=True)
    table = Table(*COLUMNS, "available here")
    for row in rows:
        table.add_row(*(row[c] for c in (*COLUMNS, "available here")))
    Console().print(table)
