"""A screen's plan on disk: its settings and every expanded experiment, in one parquet file per run label.

`flyhpc screen submit` expands a screen once on the connectome (for the atlas: 138,639 experiments; a most_active
axis also runs the base experiment) and writes the result here; every chunk task reads its slice back, so no task
expands the screen again, and all of them see the very list the submission planned (the file's sha256 is part
of every task's key and of the label's identity). Columns: `PLAN_SCHEMA`, one row per experiment in plan order;
the screen's settings ride in the file's metadata (`flyhpc.screen`, JSON). The bytes depend only on the
experiments and the settings, so planning the same screen again gives the same file.
Entry points: `write_plan`, `read_plan`, `plan_bytes`, `ScreenPlan`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from flyhpc.errors import DataError
from flyhpc.files import atomic_path
from flyhpc.model import Experiment
from flyhpc.results.parquet import parquet_bytes, read_table
from flyhpc.screens.expand import ScreenExperiment
from flyhpc.screens.spec import NeuronList, Screen

PLAN_FORMAT = "1"
_IDS = pa.list_(pa.int64())
PLAN_SCHEMA = pa.schema([
    ("experiment_key", pa.string()),
    ("experiment_name", pa.string()),
    ("activate", _IDS),
    ("rate_hz", pa.float64()),
    ("activate2", _IDS),
    ("rate2_hz", pa.float64()),
    ("silence", _IDS),
])
_LISTS = ("readout", "activate", "activate2", "silence", "activate_each", "silence_each")


@dataclass(frozen=True)
class ScreenPlan:
    """The screen as planned and a slice of its experiments (`first` is the position of experiments[0])."""

    screen: Screen
    experiments: tuple[ScreenExperiment, ...]
    first: int
    n_total: int
    base_key: str  # the base experiment's key, "" when the screen has none


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _screen_json(screen: Screen, base_key: str) -> str:
    data = dataclasses.asdict(screen)
    data["path"] = str(screen.path)
    for key in _LISTS:  # `of` only where set: every plan written before it existed keeps its bytes and sha256
        if data.get(key) is not None and not data[key]["of"]:
            del data[key]["of"]
    return json.dumps({"format": PLAN_FORMAT, "base_key": base_key, "screen": data}, sort_keys=True)


def _screen_from(data: dict) -> Screen:
    fields = dict(data)
    fields["path"] = Path(fields["path"])
    for key in _LISTS:
        value = fields.get(key)
        if value is not None:
            fields[key] = NeuronList(kind=value["kind"], values=tuple(value["values"]), labels=tuple(value["labels"]),
                                     count=value["count"], of=value.get("of", ""))
    fields["rates_hz"] = tuple(fields["rates_hz"])
    return Screen(**fields)


def _id_lists(sets: Sequence[tuple[int, ...]]) -> pa.Array:
    """One list<int64> array of neuron sets, from flat values and offsets (a list per row costs 3x more)."""
    offsets = np.zeros(len(sets) + 1, np.int32)
    np.cumsum(np.fromiter(map(len, sets), np.int64, len(sets)), out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(sets), np.int64, int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, pa.int64()), type=_IDS)


def _id_tuples(column: pa.ChunkedArray) -> list[tuple[int, ...]]:
    """The list<int64> column as one tuple of ints per row (what `Experiment` holds)."""
    lists = column.combine_chunks()
    if not len(lists):
        return []
    offsets = np.asarray(lists.offsets).tolist()
    values = lists.values.slice(offsets[0], offsets[-1] - offsets[0]).to_numpy(zero_copy_only=False).tolist()
    base = offsets[0]
    return [tuple(values[a - base:b - base]) for a, b in zip(offsets[:-1], offsets[1:])]


def plan_bytes(screen: Screen, experiments: Sequence[ScreenExperiment]) -> bytes:
    """The plan file's content (deterministic: the same screen and experiments give the same bytes)."""
    base = experiments[0].key if experiments and experiments[0].name == f"{screen.name}: base" else ""
    exps = [e.experiment for e in experiments]
    table = pa.Table.from_arrays([
        pa.array([e.key for e in experiments], pa.string()),
        pa.array([e.name for e in experiments], pa.string()),
        _id_lists([x.activate for x in exps]),
        pa.array([x.rate_hz for x in exps], pa.float64()),
        _id_lists([x.activate2 for x in exps]),
        pa.array([x.rate2_hz for x in exps], pa.float64()),
        _id_lists([x.silence for x in exps]),
    ], schema=PLAN_SCHEMA)
    return parquet_bytes(table, {"flyhpc.screen": _screen_json(screen, base)})


def write_plan(path: Path, content: bytes) -> str:
    """Write the plan file atomically (unless it already holds exactly `content`); return its sha256."""
    path = Path(path)
    if not (path.is_file() and path.read_bytes() == content):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, mode=0o644) as tmp:
            tmp.write_bytes(content)
    return _sha256(content)


def read_plan(path: Path, sha256: str, first: int = 0, stop: int | None = None) -> ScreenPlan:
    """Experiments first .. stop - 1 of the plan at `path`, after checking its sha256.

    Raises
    ------
    DataError
        The file is missing, damaged or is not the plan the task was made from (naming the file).
    """
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise DataError(f"screen plan {path}: cannot read it ({exc}); plan the screen again with "
                        "`flyhpc screen submit`") from None
    if _sha256(content) != sha256:
        raise DataError(f"screen plan {path}: sha256 {_sha256(content)[:12]}... is not the planned "
                        f"{sha256[:12]}... (the file changed since the tasks were submitted)")
    table = read_table(io.BytesIO(content), what="screen plan", name=path)
    meta = json.loads(table.schema.metadata[b"flyhpc.screen"])
    screen = _screen_from(meta["screen"])
    stop = table.num_rows if stop is None else stop
    if not 0 <= first <= stop <= table.num_rows:
        raise DataError(f"screen plan {path}: experiments {first}..{stop} asked, the plan has {table.num_rows}")
    rows = table.slice(first, stop - first)
    kind = f"screen:{screen.name}"
    experiments = tuple(
        ScreenExperiment(key=key, name=name, experiment=Experiment(
            name=name, key=kind, activate=a, rate_hz=r, activate2=a2, rate2_hz=r2, silence=s, by=screen.by,
            silence_mode=screen.silence_mode))
        for key, name, a, r, a2, r2, s in zip(
            rows["experiment_key"].to_pylist(), rows["experiment_name"].to_pylist(), _id_tuples(rows["activate"]),
            rows["rate_hz"].to_pylist(), _id_tuples(rows["activate2"]), rows["rate2_hz"].to_pylist(),
            _id_tuples(rows["silence"])))
    return ScreenPlan(screen=screen, experiments=experiments, first=first, n_total=table.num_rows,
                      base_key=meta["base_key"])
