"""Where flyhpc finds its configuration files (grids, screens, cluster profiles, Apptainer definitions),
and how a TOML one is read.

Owns the one search order, the same for every kind; a name resolves to the first folder that holds it:

1. the config folder: ``flyhpc --config-dir DIR`` (which sets $FLYHPC_CONFIG for the process and its
   workers) or $FLYHPC_CONFIG: DIR/grids/<name>.toml, DIR/screens/<name>.toml, DIR/clusters/<name>.toml,
   DIR/apptainer/<name>.def;
2. the working directory: ./jobs/grids/, ./jobs/screens/, ./jobs/clusters/ and ./apptainer/ (a checkout's
   own layout);
3. the defaults packaged with flyhpc: flyhpc/resources/jobs/ and flyhpc/resources/apptainer/, which are
   links to the repository's top-level jobs/ and apptainer/ in a checkout and copies in a built wheel.

Callers decide when their argument is a path rather than a name. `read_toml` reads one file with errors
that name it. Entry points: `ENV_VAR`, `PACKAGED`, `search_dirs`, `find`, `locate`, `names`, `read_toml`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from flyhpc.errors import ConfigError

ENV_VAR = "FLYHPC_CONFIG"
PACKAGED = Path(__file__).resolve().parent / "resources"

# kind -> (folder under the config folder, folder under the working directory and the packaged root, suffix)
_KINDS = {
    "grids": ("grids", "jobs/grids", ".toml"),
    "screens": ("screens", "jobs/screens", ".toml"),
    "clusters": ("clusters", "jobs/clusters", ".toml"),
    "apptainer": ("apptainer", "apptainer", ".def"),
}


def search_dirs(kind: str) -> list[Path]:
    """The folders searched for `kind` ("grids", "screens", "clusters" or "apptainer"), first match first.

    Absolute and resolved (a packaged link points into the checkout), without repeats.

    Raises
    ------
    ConfigError
        If $FLYHPC_CONFIG is set but is not a folder.
    """
    in_config, in_tree, _ = _KINDS[kind]
    dirs = []
    config = os.environ.get(ENV_VAR)
    if config:
        root = Path(config).expanduser()
        if not root.is_dir():
            raise ConfigError(f"{ENV_VAR}={config}: not a folder (it should hold grids/, clusters/ or apptainer/)")
        dirs.append(root / in_config)
    dirs += [Path.cwd() / in_tree, PACKAGED / in_tree]
    out: list[Path] = []
    for folder in (d.resolve() for d in dirs):
        if folder not in out:
            out.append(folder)
    return out


def find(kind: str, name: str) -> Path | None:
    """The first `<folder>/<name><suffix>` that is a file, in search order; None if there is none."""
    suffix = _KINDS[kind][2]
    return next((p for p in (d / f"{name}{suffix}" for d in search_dirs(kind)) if p.is_file()), None)


def locate(kind: str, name_or_path: str | Path, what: str) -> Path:
    """The file a command line names: a path to a `.toml` (or any existing file) as is, else `name` found by
    `find`.

    Raises
    ------
    ConfigError
        Nothing found: naming `what` ("grid", "screen"), the known names and the folders searched.
    """
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") or path.is_file()):
        path = find(kind, text) or path
    if not path.is_file():
        raise ConfigError(f"unknown {what} {text!r}; known: {', '.join(names(kind)) or 'none'} (or a path to a "
                          f".toml file); searched {', '.join(map(str, search_dirs(kind)))}")
    return path


def names(kind: str) -> list[str]:
    """Every name of `kind` found in the searched folders, sorted."""
    suffix = _KINDS[kind][2]
    return sorted({p.stem for d in search_dirs(kind) for p in d.glob(f"*{suffix}") if p.is_file()})


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML document in `path` (a `what`: "grid", "screen", "profile").

    Raises
    ------
    ConfigError
        The file cannot be read, is not UTF-8 or is not valid TOML; the message names the file.
    """
    try:
        return tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); a {what} is a UTF-8 TOML "
                          "file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
