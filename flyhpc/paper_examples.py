"""The paper's own example outputs (Shiu et al. 2024, real FlyWire v630): what they are, fetching and checking them.

Owns the pinned list of the upstream repository's results/example files flyhpc uses as a reference
(`EXAMPLES`: name, git blob id, size, sha256 and what experiment each one ran). Downloading and checking
are flyhpc.data.fetch's (each `ExampleFile` is an `UpstreamFile`): HTTP Range onto `<name>.part`,
size + sha256 + blob check, then one atomic rename. Never prints (progress goes to a callback) and never
parses the files (see flyhpc.report.paper). Entry points: `EXAMPLES`, `default_dir`, `find`, `fetch`, `verify`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from flyhpc.data import fetch as data
from flyhpc.data.fetch import UPSTREAM_REPO

UPSTREAM_COMMIT = "91bdd1e7dcf193f3e7ca5a8933497fcef63b7960"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/{UPSTREAM_COMMIT}"
FOLDER_NAME = "paper-examples"
CONNECTOME = "FlyWire v630"
T_RUN_S = 1.0  # every example: 30 trials of 1 s each (the paper's model.py defaults)
N_TRIALS = 30


@dataclass(frozen=True, kw_only=True)
class ExampleFile(data.UpstreamFile):
    """One of the paper's example outputs: an upstream file (size and sha256 always known) and what it ran.

    `experiment` is the flyhpc experiment it corresponds to ("sugar": the 21 sugar GRNs at 200 Hz)
    or "" when flyhpc has no preset for it; `description` says what the paper ran.
    """

    experiment: str
    description: str


def _example(name: str, blob_sha1: str, size_bytes: int, sha256: str, experiment: str,
             description: str) -> ExampleFile:
    remote = f"results/example/{name}"
    return ExampleFile(version="630", name=name, remote=remote, url=f"{DEFAULT_BASE_URL}/{remote}",
                       blob_sha1=blob_sha1, size_bytes=size_bytes, sha256=sha256, experiment=experiment,
                       description=description)


def _silenced(neuron: int, blob_sha1: str, size_bytes: int, sha256: str) -> ExampleFile:
    """A silencing example: sugar at 100 Hz with `neuron`'s outgoing synapses removed (`sugarR-<neuron>.parquet`)."""
    return _example(f"sugarR-{neuron}.parquet", blob_sha1, size_bytes, sha256, "",
                    f"sugar at 100 Hz, {neuron} silenced (outgoing synapses)")


# Blob ids and sizes from the upstream git tree at UPSTREAM_COMMIT; sha256 of copies whose blob id matches.
# The silencing examples ran at 100 Hz: example.ipynb sets r_poi = 100 Hz before them (their MN9 rates, 63-71 Hz,
# sit beside sugarR_100Hz's 67 Hz, not sugarR's 93 Hz).
EXAMPLES: tuple[ExampleFile, ...] = (
    _example("sugarR.parquet", "1204cb3ed453ad03b0141028fa511d924f99d599", 948_526,
             "83921d50089d966785e402d6c0e3be5ab3eba5beb680410a09c557b0f22dcc28", "sugar",
             "the 21 sugar GRNs at 200 Hz"),
    _example("sugarR_100Hz.parquet", "bd76730d5e991d64b756f354a749f94ffb874c64", 557_849,
             "93722ec03c3faa5a85790d77ed16bdd7f1e38a7c847ed0bc3af3dc2e4d0c3d34", "",
             "the 21 sugar GRNs at 100 Hz"),
    _silenced(720575940617937543, "1cdeee4a3d4aa5b16602ac0a1e76f1db14e19f9b", 537_629,
              "e0d39699bd979a5761138dbab964dbfe1c55feb945349cd24bc1c1f9a925753b"),
    _silenced(720575940621754367, "17942838fe14639269fdff3636ebadbc13645436", 553_968,
              "f7d7cd7386663cbce864d6ca132ce5992d0cdb65f281b30768c3afe0804514a6"),
    _silenced(720575940622695448, "b4524c7d29476f0816b5162b8ebb4839d4e040fc", 578_825,
              "c6b5e102249e23c30989ad66ad897d81a6453681ba3756dd30c83e956aee803e"),
)


def default_dir() -> Path:
    """Where `flyhpc data fetch --examples` puts the files: $FLYHPC_DATA/paper-examples, else data/paper-examples."""
    return Path(os.environ.get("FLYHPC_DATA", "data")) / FOLDER_NAME


def find(folder: Path) -> list[tuple[ExampleFile, Path]]:
    """The pinned example files present in `folder` (by name), in the order of `EXAMPLES`."""
    return [(spec, Path(folder) / spec.name) for spec in EXAMPLES if (Path(folder) / spec.name).is_file()]


def verify(folder: Path, files: Sequence[ExampleFile] = EXAMPLES) -> list[data.FileCheck]:
    """Re-hash each pinned example file in `folder` (status 'ok', 'missing' or 'bad'); never raises for one."""
    return data.verify_dir(files, folder)


def fetch(dest: Path, files: Sequence[ExampleFile] = EXAMPLES, base_url: str = DEFAULT_BASE_URL,
          progress: data.Progress | None = None, timeout_s: float = data.TIMEOUT_S) -> list[data.FetchResult]:
    """Download the pinned example files from `base_url` into `dest`, as `flyhpc.data.fetch.fetch` does.

    A verified file already there is left alone; an interrupted download leaves `<name>.part`, which
    the next call resumes with an HTTP Range request (or restarts when the server ignores Range).

    Raises
    ------
    DataError
        A network error (names the URL) or a download that ended short (the `.part` is kept).
    IntegrityError
        Downloaded bytes of another size or hash than pinned (the `.part` is removed).
    """
    return data.fetch([spec.rebased(base_url) for spec in files], dest, progress, timeout_s,
                      rerun="`flyhpc data fetch --examples`")
