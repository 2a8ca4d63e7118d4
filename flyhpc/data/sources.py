"""Which connectome a run uses: the real FlyWire files when present, else the synthetic one.

`resolve_sources` maps the `--connectome` value (None/"auto", "synthetic", or a folder) to the
`Sources` pair to load. Real files are looked for as <data dir>/Completeness_<v>.csv and
Connectivity_<v>.parquet, the names `flyhpc data fetch` writes. Entry point: `resolve_sources`.
"""

from __future__ import annotations

from pathlib import Path

from flyhpc.data.connectome import Sources
from flyhpc.errors import ConfigError


def real_sources(folder: Path, version: str = "783") -> Sources | None:
    """The real FlyWire pair in `folder`, or None if either file is absent."""
    comp = Path(folder) / f"Completeness_{version}.csv"
    conn = Path(folder) / f"Connectivity_{version}.parquet"
    if comp.is_file() and conn.is_file():
        return Sources(completeness=comp, connectivity=conn, source=f"flywire-{version}")
    return None


def resolve_sources(connectome: str | None, data_dir: Path, version: str = "783") -> Sources:
    """Sources for `--connectome`: None/"auto" = real data if present else synthetic; "synthetic"; or a folder.

    Raises
    ------
    ConfigError
        If a folder is given that holds no Completeness/Connectivity pair, or an empty or blank string (a
        shell variable that was not set: never read as "auto").
    """
    data_dir = Path(data_dir)
    if connectome is not None and not str(connectome).strip():
        raise ConfigError(f"--connectome {connectome!r}: empty; give 'auto', 'synthetic' or a folder")
    if connectome in (None, "auto"):
        real = real_sources(data_dir, version)
        if real:
            return real
        from flyhpc.data import synthetic  # imported only when a synthetic connectome is needed

        return synthetic.default_sources(data_dir)
    if connectome == "synthetic":
        from flyhpc.data import synthetic

        return synthetic.default_sources(data_dir)
    folder = Path(connectome)
    if not folder.is_dir():
        raise ConfigError(f"--connectome {connectome!r}: not a folder, 'auto' or 'synthetic'")
    found = real_sources(folder, version)
    if found is None:
        from flyhpc.data import synthetic

        found = synthetic.sources_in(folder)
    if found is None:
        raise ConfigError(
            f"--connectome {folder}: no Completeness_{version}.csv + Connectivity_{version}.parquet "
            "and no synthetic connectome in it")
    return found
