"""Screen files (`jobs/screens/<name>.toml`): reading and checking them, before any connectome is loaded.

A screen is a base experiment plus axes combined as a product (`activate_each`, `silence_each`, `rate_hz`), run
with one t_run x n_run, seed, backend and silence mode, with optional readout neurons. Files are found like grids
(`--config-dir`/$FLYHPC_CONFIG, then ./jobs, then the packaged defaults: a `screens/` folder beside each searched
`grids/` folder). Every error names the file and the key. Reads files only; runs nothing.
Entry points: `Screen`, `NeuronList`, `load_screen`, `known_screens`, `SCREEN_KEYS`, `BASE_KEYS`,
`AXES_KEYS`.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyhpc import backends, config_paths
from flyhpc.errors import ConfigError
from flyhpc.model import PRESETS, SILENCE_MODES, Params, validate_run

SCREEN_KEYS = ("description", "t_run_s", "n_run", "seed", "backend", "silence_mode", "by", "readout")
BASE_KEYS = ("preset", "activate", "rate_hz", "activate2", "rate2_hz", "silence")
AXES_KEYS = ("activate_each", "silence_each", "rate_hz")
ALL = "all"  # an axis over every neuron of the connectome that the base neither drives nor silences


@dataclass(frozen=True)
class NeuronList:
    """Neurons as written in a screen (FlyWire ids or row indices, by the screen's `by`), with a label each.

    `kind` is "list" (the values, from the file or a CSV), "all" (every neuron not in the base experiment) or
    "most_active" (the `count` neurons with the most spikes in the base experiment, driven and silenced ones
    excepted; with `of`, in a run of that preset instead, its own driven neurons included as the paper ranks
    them); the last two are made concrete once the connectome is known (`flyhpc.screens.expand`).
    `labels[k]` names values[k]: the CSV's `name` column where it has one, else the value itself.
    """

    kind: str = "list"
    values: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    count: int = 0
    of: str = ""

    def __post_init__(self) -> None:
        if not self.labels:
            object.__setattr__(self, "labels", tuple(str(v) for v in self.values))


@dataclass(frozen=True)
class Screen:
    """A checked screen file. `rates_hz` is the rate axis (empty: every experiment drives set 1 at `rate_hz`)."""

    name: str
    path: Path
    description: str
    t_run_s: float
    n_run: int
    seed: int
    backend: str
    silence_mode: str
    by: str
    readout: NeuronList
    activate: NeuronList
    rate_hz: float | None
    activate2: NeuronList
    rate2_hz: float
    silence: NeuronList
    activate_each: NeuronList | None
    silence_each: NeuronList | None
    rates_hz: tuple[float, ...]

    @property
    def n_steps(self) -> int:
        return validate_run(self.t_run_s, self.n_run)


def known_screens() -> list[str]:
    """Names of the screen presets in the searched folders (`flyhpc.config_paths` order)."""
    return config_paths.names("screens")


def load_screen(name_or_path: str | Path) -> Screen:
    """Read and check a screen: a name (`atlas`, `sugar-silence-top100`: screens/<name>.toml) or a .toml path.

    Raises
    ------
    ConfigError
        Unknown screen, unreadable TOML, unknown keys (listing the valid ones), values of the wrong type or
        range, unreadable or malformed neuron CSV files; each naming the file and the key.
    """
    path = config_paths.locate("screens", name_or_path, "screen")
    data = config_paths.read_toml(path, "screen")
    _check_keys(data, ("screen", "base", "axes"), f"{path}")
    tables = {}
    for key, valid in (("screen", SCREEN_KEYS), ("base", BASE_KEYS), ("axes", AXES_KEYS)):
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {key} must be a table [{key}], got {type(table).__name__}")
        _check_keys(table, valid, f"{path} [{key}]")
        tables[key] = table
    return _screen(path, tables["screen"], tables["base"], tables["axes"])


def _screen(path: Path, top: dict, base: dict, axes: dict) -> Screen:
    where = f"{path} [screen]"
    by = _choice(top.get("by", "id"), ("id", "index"), f"{where}.by")
    t_run_s = _number(top.get("t_run_s", 1.0), f"{where}.t_run_s")
    try:
        validate_run(t_run_s, 1, Params())
    except ConfigError as exc:
        raise ConfigError(f"{where}.t_run_s: {exc}") from None
    backend = top.get("backend", "native")
    if not isinstance(backend, str) or backend not in backends.REGISTRY:
        raise ConfigError(f"{where}.backend: unknown backend {backend!r}; known: {', '.join(backends.names())}")
    description = top.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}.description: must be a string, got {description!r}")
    folder = path.parent

    def neurons(table: dict, key: str, section: str, axis: bool = False) -> NeuronList:
        return _neurons(table.get(key, []), f"{path} [{section}].{key}", folder, by, axis)

    activate = neurons(base, "activate", "base")
    rate_hz = _number(base["rate_hz"], f"{path} [base].rate_hz", rate=True) if "rate_hz" in base else None
    if "preset" in base:
        key = base["preset"]
        if not isinstance(key, str) or key not in PRESETS:
            raise ConfigError(f"{path} [base].preset: unknown experiment {key!r}; known: {', '.join(sorted(PRESETS))}")
        if activate.values:
            raise ConfigError(f"{path} [base]: give either preset or activate, not both")
        if by != "id":
            raise ConfigError(f"{path} [base].preset: presets name FlyWire ids; set [screen].by = \"id\"")
        activate = NeuronList(values=PRESETS[key].activate)
        rate_hz = PRESETS[key].rate_hz if rate_hz is None else rate_hz
    rates_hz = _rates(axes["rate_hz"], f"{path} [axes].rate_hz") if "rate_hz" in axes else ()
    activate_each = neurons(axes, "activate_each", "axes", axis=True) if "activate_each" in axes else None
    silence_each = neurons(axes, "silence_each", "axes", axis=True) if "silence_each" in axes else None
    if activate_each is None and silence_each is None and not rates_hz:
        raise ConfigError(f"{path} [axes]: needs at least one of {', '.join(AXES_KEYS)}")
    if not activate.values and activate_each is None:
        raise ConfigError(f"{path} [base]: no neuron to activate (give preset or activate, or [axes].activate_each)")
    if rate_hz is None and not rates_hz:
        raise ConfigError(f"{path} [base].rate_hz: needed (the rate of activation set 1) unless [axes].rate_hz "
                          "gives the rates")
    if rate_hz == 0 and not rates_hz:
        raise ConfigError(f"{path} [base].rate_hz: 0 Hz activates nothing; give a rate > 0 Hz")
    if 0.0 in rates_hz:
        raise ConfigError(f"{path} [axes].rate_hz: 0 Hz activates nothing; every rate must be > 0 Hz")
    if base.get("activate2") and not base.get("rate2_hz"):
        raise ConfigError(f"{path} [base].rate2_hz: activate2 needs a rate > 0 Hz (0 Hz activates nothing)")
    return Screen(
        name=path.stem, path=path, description=description, t_run_s=t_run_s,
        n_run=_integer(top.get("n_run", 1), f"{where}.n_run", 1), seed=_integer(top.get("seed", 0), f"{where}.seed", 0),
        backend=backend, silence_mode=_choice(top.get("silence_mode", "both"), SILENCE_MODES, f"{where}.silence_mode"),
        by=by, readout=neurons(top, "readout", "screen"), activate=activate, rate_hz=rate_hz,
        activate2=neurons(base, "activate2", "base"),
        rate2_hz=_number(base.get("rate2_hz", 0.0), f"{path} [base].rate2_hz", rate=True),
        silence=neurons(base, "silence", "base"),
        activate_each=activate_each, silence_each=silence_each, rates_hz=rates_hz)


def _check_keys(table: dict, valid: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(valid)}")


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ConfigError(f"{where}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def _integer(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: must be an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, where: str, rate: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: must be a number, got {value!r}")
    if rate and value < 0:
        raise ConfigError(f"{where}: must be a rate >= 0 Hz, got {value!r}")
    return float(value)


def _rates(value: Any, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: must be a non-empty list of rates in Hz, got {value!r}")
    rates = tuple(_number(v, f"{where}[{i}]", rate=True) for i, v in enumerate(value))
    _no_repeats(rates, where)
    return rates


def _no_repeats(values: tuple, where: str) -> None:
    counts = Counter(values)
    dup = sorted(v for v, n in counts.items() if n > 1)
    if dup:
        raise ConfigError(f"{where}: lists {', '.join(map(str, dup[:8]))} more than once")


def _neurons(value: Any, where: str, folder: Path, by: str, axis: bool) -> NeuronList:
    """A neuron list as written: integers, a CSV path (relative to the screen's folder), and on axes only
    "all" or {most_active = N} (optionally `of = "<preset>"`)."""
    if axis and value == ALL:
        return NeuronList(kind=ALL)
    if isinstance(value, dict):
        if not axis or "most_active" not in value or not set(value) <= {"most_active", "of"}:
            raise ConfigError(f"{where}: a table here must be {{most_active = N}} or {{most_active = N, of = "
                              f"\"<preset>\"}} (on an axis), got {value!r}")
        of = value.get("of", "")
        if "of" in value and (not isinstance(of, str) or of not in PRESETS):
            raise ConfigError(f"{where}.of: unknown experiment {of!r}; known: {', '.join(sorted(PRESETS))}")
        return NeuronList(kind="most_active", count=_integer(value["most_active"], f"{where}.most_active", 1), of=of)
    if isinstance(value, str):
        return read_neuron_csv(folder / Path(value).expanduser(), by, where)
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of {_unit(by)}, a CSV file name" +
                          (", \"all\" or {most_active = N}" if axis else "") + f", got {value!r}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{where}[{i}]: expected {_unit(by)} (integers >= 0), got {v!r}")
    _no_repeats(tuple(value), where)
    if axis and not value:
        raise ConfigError(f"{where}: an axis needs at least one neuron")
    return NeuronList(values=tuple(value))


def _unit(by: str) -> str:
    return "FlyWire ids" if by == "id" else "row indices"


def read_neuron_csv(path: Path, by: str, where: str) -> NeuronList:
    """Neurons of a CSV file with a header: column `flywire_id` (by = "id") or `neuron_index` (by = "index"),
    optional column `name` (labels); other columns are ignored, so `flyhpc run`'s rates CSV reads as is.

    Raises
    ------
    ConfigError
        Missing or unreadable file, missing column, a value that is not an integer (naming its line),
        repeated neurons or names, no rows.
    """
    column = "flywire_id" if by == "id" else "neuron_index"
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            if column not in fields:
                raise ConfigError(f"{where}: {path} has no column {column!r} (columns: {', '.join(fields) or 'none'};"
                                  f" by = {by!r} reads {column})")
            values, labels = [], []
            for line, row in enumerate(reader, start=2):
                raw = (row.get(column) or "").strip()
                try:
                    value = int(raw)
                except ValueError:
                    raise ConfigError(f"{where}: {path} line {line}: {column} {raw!r} is not an integer") from None
                if value < 0:
                    raise ConfigError(f"{where}: {path} line {line}: {column} {value} is negative")
                values.append(value)
                labels.append((row.get("name") or "").strip() or str(value))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read neuron file {path} ({exc})") from None
    if not values:
        raise ConfigError(f"{where}: {path} lists no neuron")
    _no_repeats(tuple(values), f"{where}: {path} {column}")
    _no_repeats(tuple(labels), f"{where}: {path} name")
    return NeuronList(values=tuple(values), labels=tuple(labels))
