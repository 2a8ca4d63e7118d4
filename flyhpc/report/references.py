"""What `--reference` names, read into something the report can put beside a label's own numbers.

A reference is another collected label, a CSV in the seed's benchmark-results.csv schema (its 12 or
18 columns first; extra columns allowed), a packaged reference CSV (`jobs/reference/<name>.csv`
with a `<name>.json` saying where it comes from and what hardware it ran on; searched in
$FLYHPC_CONFIG/reference, ./jobs/reference, then flyhpc's packaged copy), or a folder of the paper's
example outputs (`paper`: the folder `flyhpc data fetch --examples` fills). Bad input is a one-line
ConfigError. Entry points: `resolve_reference`, `read_seed_csv`, `Reference`, `packaged_names`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyhpc import backends, paper_examples
from flyhpc.pipeline import framework_name
from flyhpc.config_paths import ENV_VAR, PACKAGED
from flyhpc.errors import ConfigError
from flyhpc.report.label import LabelData, load_label

SEED_12 = ("framework", "n_run", "t_run", "setup_time", "build_time", "sim_time", "total_time", "realtime_ratio",
           "spikes", "active_neurons", "status", "timestamp")
SEED_18 = SEED_12 + ("backend_key", "experiment", "experiment_key", "run_label", "round", "spike_path")
_ALIASES = {"rt_ratio": "realtime_ratio"}  # the seed's older header name, same meaning (seed-spec §4.3)
_FRAMEWORK_KEYS = {framework_name(k, device): k for k in backends.names() for device in ("", "cuda")}
_HINT = ("give a collected label, a CSV written by `flyhpc collect` (results/<label>/benchmark-results.csv) or the "
         "seed's data/benchmark-results.csv, a packaged reference ({known}), or `paper` after "
         "`flyhpc data fetch --examples`")


@dataclass(frozen=True)
class Reference:
    """Numbers shown beside the label's own.

    kind "label": another collected label (`label` set); "csv": rows of a seed-schema CSV;
    "examples": the paper's example spike files (`examples`: (pinned file, path) pairs).
    """

    name: str
    kind: str
    hardware: str = ""
    source: str = ""
    rows: list[dict[str, str]] = field(default_factory=list, repr=False)
    label: LabelData | None = field(default=None, repr=False)
    examples: list[tuple[Any, Path]] = field(default_factory=list, repr=False)


def reference_dirs() -> list[Path]:
    """Folders searched for a packaged reference name, first match first."""
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser() / "reference")
    dirs += [Path.cwd() / "jobs" / "reference", PACKAGED / "jobs" / "reference"]
    return dirs


def packaged_names() -> list[str]:
    """Every reference name found in `reference_dirs()`, sorted."""
    return sorted({p.stem for d in reference_dirs() if d.is_dir() for p in d.glob("*.csv")})


def resolve_reference(arg: str, results_root: str | Path) -> list[Reference]:
    """Read what `--reference ARG` names (a CSV holding several run labels gives one Reference per label).

    Raises
    ------
    ConfigError
        ARG names nothing known, a folder that is neither a label nor the paper's examples, a CSV
        not in the seed's schema, or an uncollected/empty label.
    """
    hint = _HINT.format(known=", ".join(packaged_names()) or "none installed")
    path = Path(arg).expanduser()
    if arg == "paper":
        return [_examples(paper_examples.default_dir(), arg)]
    if path.is_file():
        return read_seed_csv(path)
    if path.is_dir():
        if (path / "benchmark-results.csv").is_file() or (path / "manifest.csv").is_file():
            return [_label(path.parent, path.name)]
        if paper_examples.find(path):
            return [_examples(path, arg)]
        raise ConfigError(f"--reference {arg}: folder holds neither a collected label (benchmark-results.csv) nor "
                          f"the paper's example files ({paper_examples.EXAMPLES[0].name}, ...); {hint}")
    if re.fullmatch(r"[A-Za-z0-9_.-]+", arg):
        if (Path(results_root) / arg).is_dir():
            return [_label(Path(results_root), arg)]
        for folder in reference_dirs():
            if (folder / f"{arg}.csv").is_file():
                return read_seed_csv(folder / f"{arg}.csv")
    raise ConfigError(f"--reference {arg}: no such label under {results_root}/, file, folder or packaged "
                      f"reference; {hint}")


def _label(results_root: Path, name: str) -> Reference:
    data = load_label(results_root, name)
    hosts = sorted({f"{r.get('node') or '?'} ({r.get('device') or '?'})" for r in data.records() if r})
    return Reference(name=f"label {name}", kind="label", hardware=", ".join(hosts),
                     source=str(data.paths.label_dir), rows=data.results, label=data)


def _examples(folder: Path, arg: str) -> Reference:
    found = paper_examples.find(folder)
    if not found:
        raise ConfigError(f"--reference {arg}: no paper example files in {folder}; run "
                          f"`flyhpc data fetch --examples` (or give the folder holding them)")
    return Reference(name="paper (Shiu et al. 2024)", kind="examples",
                     hardware=f"the paper's model.py on the real {paper_examples.CONNECTOME} connectome",
                     source=f"{paper_examples.UPSTREAM_REPO} results/example @ {paper_examples.UPSTREAM_COMMIT[:7]}",
                     examples=found)


def _backend_key(row: dict[str, str]) -> str:
    key = row.get("backend_key") or _FRAMEWORK_KEYS.get(row.get("framework", ""), "")
    return key or re.sub(r"[^a-z0-9]+", "", row.get("framework", "").lower()) or "unknown"


def _sidecar(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON object with name/hardware/source ({exc})") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: not a JSON object with name/hardware/source")
    return meta


def read_seed_csv(path: Path) -> list[Reference]:
    """Read a benchmark-results.csv in the seed's schema: one Reference per run label it holds.

    The header must start with the seed's 12 columns (`rt_ratio` accepted for `realtime_ratio`) and,
    if longer, continue with the other 6 of its 18; flyhpc's extra columns may follow. A sidecar
    `<stem>.json` may give `name`, `hardware` and `source`.

    Raises
    ------
    ConfigError
        Naming the first wrong column or the first row whose t_run / n_run / sim_time is not a number.
    """
    hint = _HINT.format(known=", ".join(packaged_names()) or "none installed")
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = [_ALIASES.get(h.strip(), h.strip()) for h in next(reader, [])]
            body = [dict(zip(header, cells)) for cells in reader if cells]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"--reference {path}: cannot read it as CSV ({exc}); {hint}") from None
    want = SEED_18 if len(header) > len(SEED_12) else SEED_12
    for i, name in enumerate(want):
        got = header[i] if i < len(header) else None
        if got != name:
            found = f"is {got!r}" if got is not None else "is missing"
            raise ConfigError(f"--reference {path}: not in the seed's benchmark-results.csv schema (seed-spec §4.3, "
                              f"12 or 18 columns): column {i + 1} {found}, expected {name!r}; {hint}")
    for n, row in enumerate(body, 2):
        for column in ("t_run", "n_run", "sim_time"):
            try:
                float(row.get(column, ""))
            except ValueError:
                raise ConfigError(f"--reference {path}: line {n}: {column} {row.get(column)!r} is not a number; "
                                  f"{hint}") from None
        row["backend_key"] = _backend_key(row)
    meta = _sidecar(path.with_suffix(".json"))
    base = str(meta.get("name") or path.stem)
    labels = sorted({row.get("run_label", "") for row in body})
    return [Reference(name=base if len(labels) <= 1 else f"{base} / {lab or 'unlabelled'}", kind="csv",
                      hardware=str(meta.get("hardware", "")), source=str(meta.get("source") or path),
                      rows=[r for r in body if r.get("run_label", "") == lab]) for lab in labels] or [
        Reference(name=base, kind="csv", hardware=str(meta.get("hardware", "")), source=str(path))]
