"""`flyhpc.run` and `flyhpc.connectome`: one experiment and one connectome from Python, as pandas objects.

`run` is `flyhpc run` (the same `pipeline.run_experiment`, the same `model.make_experiment`) into a temporary
folder whose files are read back and removed, so nothing is written unless `RunResult.save` is called: the
spikes (the seed's parquet schema), the per-neuron rates and the record come back in a `RunResult`.
`connectome` loads a connectome (real FlyWire files or the synthetic one) and maps FlyWire ids to row indices and
back. Errors are the `flyhpc.errors` classes the command line turns into exit codes.
Entry points: `run`, `RunResult`, `connectome`, `ConnectomeInfo`.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from flyhpc.api.paper import beside_paper
from flyhpc.data.connectome import Connectome, default_data_dir, load_connectome
from flyhpc.data.sources import resolve_sources
from flyhpc.errors import ConfigError
from flyhpc.files import atomic_path
from flyhpc.model import Experiment, make_experiment
from flyhpc.screens.expand import resolve_neurons
from flyhpc.results.spikes import read_spikes

Ids = int | Iterable[int]


def _ids(values: Ids | None) -> tuple[int, ...]:
    if values is None:
        return ()
    if isinstance(values, (int, np.integer)):
        return (int(values),)
    return tuple(int(v) for v in values)


@dataclass(frozen=True, repr=False)
class RunResult:
    """What one `flyhpc.run` gave.

    Attributes
    ----------
    experiment : Experiment
        What ran (neurons, rates, silencing).
    spikes : pandas.DataFrame
        One row per spike, the seed's schema: `t` (s), `time_ms`, `trial`, `neuron_index`, `flywire_id`,
        `exp_name`, sorted by (trial, time, neuron).
    rates : pandas.DataFrame
        Per neuron that spiked: `neuron_index`, `flywire_id`, `spikes`, `rate_mean_hz`, `rate_std_hz` (over
        trials, ddof 1; NaN for one trial), highest rate first (the paper's `get_rate`).
    record : dict
        The JSON record of `flyhpc run`: phase seconds (`phases_s`), backend, versions, drive, connectome
        source and digest, `synthetic_connectome`, the parquet's sha256.
    """

    experiment: Experiment
    spikes: pd.DataFrame
    rates: pd.DataFrame
    record: dict
    files: dict[str, bytes] = field(default_factory=dict)  # file name -> the bytes `save` writes

    @property
    def synthetic(self) -> bool:
        """True when the run used the synthetic connectome (its numbers then mean nothing biologically)."""
        return bool(self.record.get("synthetic_connectome"))

    def rate_of(self, flywire_ids: Ids) -> pd.Series:
        """Mean rate (Hz) of each given neuron, 0.0 for a neuron that never spiked, indexed by FlyWire id."""
        ids = list(_ids(flywire_ids))
        by_id = self.rates.set_index("flywire_id")["rate_mean_hz"]
        return pd.Series([float(by_id.get(i, 0.0)) for i in ids], index=pd.Index(ids, name="flywire_id"),
                         name="rate_mean_hz")

    @property
    def paper(self) -> pd.DataFrame:
        """The paper's published numbers for this experiment beside ours (empty when it published none):
        columns `neuron`, `flywire_id`, `paper_hz`, `ours_hz`, `paper_source`, `note`."""
        return beside_paper([(self.experiment, self.experiment.name, lambda fid: float(self.rate_of(fid).iloc[0]))],
                            synthetic=self.synthetic, connectome=self.record.get("connectome_source", ""))

    def save(self, folder: str | os.PathLike, force: bool = False) -> list[Path]:
        """Write what `flyhpc run` writes into `folder`: `<stem>.parquet`, `<stem>_rates.csv`, `<stem>.json`.

        Raises
        ------
        ConfigError
            One of the files exists already (unless `force`).
        """
        folder = Path(folder)
        paths = [folder / name for name in self.files]
        existing = [str(p) for p in paths if p.exists()]
        if existing and not force:
            raise ConfigError(f"results exist already: {', '.join(existing)} (use force=True to replace them)")
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            with atomic_path(path) as tmp:
                tmp.write_bytes(self.files[path.name])
        return paths

    def __repr__(self) -> str:
        r = self.record
        warn = " SYNTHETIC connectome" if self.synthetic else ""
        return (f"<RunResult {r['experiment']!r} on {r['backend']}: {r['t_run_s']:g} s x {r['n_run']}, "
                f"{r['spikes']} spikes, {r['active_neurons']} active neurons, sim {r['phases_s']['sim']:.3f} s{warn}>")


def run(activate: Ids | None = None, rate_hz: float | None = None, activate2: Ids | None = None,
        rate2_hz: float = 0.0, silence: Ids | None = None, silence_mode: str = "both", experiment: str | None = None,
        backend: str = "native", t_run_s: float = 1.0, n_run: int = 1, seed: int = 0,
        connectome: str | os.PathLike = "auto", by: str = "id", *, n_threads: int | None = None,
        precision: str | None = None, options: Mapping[str, Any] | None = None) -> RunResult:
    """Simulate one experiment, as `flyhpc run` does, and return spikes, rates and the record. Writes nothing.

    Parameters
    ----------
    activate, rate_hz
        Neurons of activation set 1 (FlyWire ids, or row indices with ``by="index"``) and their Poisson rate.
    activate2, rate2_hz
        A second set with its own rate.
    silence, silence_mode
        Neurons to silence; ``"both"`` zeroes their synapses in and out, ``"outgoing"`` only the outgoing ones
        (the paper's silencing).
    experiment
        A preset instead of `activate` (``flyhpc.PRESETS``: sugar, p9, bitter, ir94e, water); `rate_hz`,
        `activate2` and `silence` then change it. Neither given: ``"sugar"``, as `flyhpc run`.
    backend, t_run_s, n_run, seed
        Simulator (``"native"``: flyhpc's exact CPU engine), seconds per trial, trials, base seed of the drive.
    connectome
        ``"auto"`` (real FlyWire files in $FLYHPC_DATA or ./data, else the synthetic one), ``"synthetic"``, or
        a folder holding a connectome.
    n_threads, precision, options
        CPUs for the backend, state dtype, backend options (as ``--option KEY=VALUE``).

    Returns
    -------
    RunResult

    Raises
    ------
    ConfigError
        Bad values or unknown neurons (named), an unknown preset or backend.
    DataError, BackendUnavailable, UnsupportedFeature
        Missing or damaged data; a backend that cannot run here or cannot do what was asked.

    Examples
    --------
    >>> import flyhpc
    >>> r = flyhpc.run(experiment="sugar", n_run=2, t_run_s=0.5)            # doctest: +SKIP
    >>> r.rates.head()                                                       # doctest: +SKIP
    >>> r.rate_of(flyhpc.MN9)                                                # doctest: +SKIP
    >>> flyhpc.run(experiment="sugar", silence=[720575940622695448], silence_mode="outgoing")  # doctest: +SKIP
    """
    from flyhpc.pipeline import run_experiment

    if experiment is None and not _ids(activate):
        experiment = "sugar"
    exp = make_experiment(experiment, _ids(activate), rate_hz, _ids(activate2), rate2_hz, _ids(silence), by,
                          silence_mode)
    with tempfile.TemporaryDirectory(prefix="flyhpc-run-") as tmp:
        outcome = run_experiment(backend=backend, experiment=exp, t_run_s=t_run_s, n_run=n_run, out_dir=Path(tmp),
                                 connectome=str(connectome), data_dir=default_data_dir(), seed=seed,
                                 n_threads=n_threads, precision=precision, options=options)
        files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}
    record = outcome.record
    spikes = read_spikes(io.BytesIO(files[record["parquet"]]))
    return RunResult(experiment=exp, spikes=spikes, rates=outcome.rates, record=record, files=files)


def _of_data(name: str, doc: str) -> property:
    """A read-only attribute of `ConnectomeInfo` that is its Connectome's `name`."""
    return property(lambda self: getattr(self.data, name), doc=doc)


@dataclass(frozen=True, repr=False)
class ConnectomeInfo:
    """A loaded connectome: its neurons (FlyWire ids in row order), edges, where it came from, and lookups."""

    data: Connectome

    flywire_ids = _of_data("flywire_ids", "FlyWire root ids (int64) in row order: row index i is neuron "
                                          "`flywire_ids[i]`.")
    n_neurons = _of_data("n_neurons", "Neurons (rows).")
    n_edges = _of_data("n_edges", "(pre, post) pairs.")
    source = _of_data("source", '"flywire-783", a folder, or "synthetic:<neurons>n:<edges>e:seed<k>".')
    digest = _of_data("digest", "sha256 over the source files (what records and task keys carry).")
    synthetic = _of_data("is_synthetic", "True for the generated stand-in, not the real FlyWire data.")

    @property
    def neurons(self) -> pd.DataFrame:
        """`neuron_index`, `flywire_id`, `in_degree`, `out_degree` (connected partners) of every neuron."""
        d = self.data
        return pd.DataFrame({"neuron_index": np.arange(d.n_neurons, dtype=np.int32), "flywire_id": d.flywire_ids,
                             "in_degree": np.bincount(d.indices, minlength=d.n_neurons),
                             "out_degree": np.diff(d.indptr)})

    def edges(self) -> pd.DataFrame:
        """Every (pre, post) pair once: `pre_index`, `post_index`, `pre_id`, `post_id`, `synapses` (signed count:
        negative for inhibitory)."""
        d = self.data
        pre = np.repeat(np.arange(d.n_neurons, dtype=np.int32), np.diff(d.indptr))
        return pd.DataFrame({"pre_index": pre, "post_index": d.indices, "pre_id": d.flywire_ids[pre],
                             "post_id": d.flywire_ids[d.indices], "synapses": d.counts})

    def index_of(self, flywire_ids: Ids) -> np.ndarray:
        """Row indices (int32) of FlyWire ids. Raises ConfigError naming every id the connectome lacks."""
        return resolve_neurons(_ids(flywire_ids), "id", self.data.flywire_ids, f"connectome {self.source}")

    def id_of(self, indices: Ids) -> np.ndarray:
        """FlyWire ids (int64) of row indices. Raises ConfigError naming every index out of range."""
        rows = resolve_neurons(_ids(indices), "index", self.data.flywire_ids, f"connectome {self.source}")
        return self.data.flywire_ids[rows]

    def __contains__(self, flywire_id: object) -> bool:
        ids = self.data.flywire_ids
        if not isinstance(flywire_id, (int, np.integer)):
            return False
        pos = int(np.searchsorted(ids, flywire_id))
        return pos < ids.size and int(ids[pos]) == int(flywire_id)

    def __repr__(self) -> str:
        warn = " (SYNTHETIC: not the real FlyWire data)" if self.synthetic else ""
        return f"<Connectome {self.source}: {self.n_neurons} neurons, {self.n_edges} edges{warn}>"


def connectome(connectome: str | os.PathLike = "auto", *, data_dir: str | os.PathLike | None = None) -> ConnectomeInfo:
    """Load a connectome as `flyhpc run` does (cached after the first time) with its ids and lookups.

    Parameters
    ----------
    connectome
        ``"auto"``, ``"synthetic"`` or a folder (as `flyhpc.run`).
    data_dir
        Where real and generated data live (default: $FLYHPC_DATA, else ./data).

    Raises
    ------
    ConfigError, DataError
        No such folder; files that are not a FlyWire connectome or fail their checks.

    Examples
    --------
    >>> c = flyhpc.connectome()                                              # doctest: +SKIP
    >>> c.index_of(flyhpc.MN9), flyhpc.MN9 in c                              # doctest: +SKIP
    """
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    return ConnectomeInfo(load_connectome(resolve_sources(str(connectome), folder)))
