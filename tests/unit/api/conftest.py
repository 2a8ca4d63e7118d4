"""Fixtures of the Python API tests: a small synthetic connectome that holds the paper's neurons.

`write_small_connectome` is also what the tutorial notebook's test runs the notebook on: the synthetic generator
(`flyhpc data synth --ids-csv`) over a random sample of the packaged v783 ids plus every preset neuron and the
readouts, so `experiment="sugar"` and MN9 resolve and the sugar pathway is wired as at full scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_small_connectome(folder: Path, n_neurons: int = 3000, n_edges: int = 100_000, seed: int = 0) -> Path:
    """Generate (once) a synthetic connectome of ~`n_neurons` v783 ids in `folder`; returns the connectome folder."""
    from flyhpc.data import synthetic
    from flyhpc.model import PRESETS
    from flyhpc.presets import READOUTS

    out = Path(folder) / "connectome"
    if synthetic.sources_in(out) is not None:
        return out
    ids = synthetic.packaged_ids()
    keep = set(np.random.default_rng(seed).choice(ids, size=n_neurons, replace=False).tolist())
    keep |= {i for exp in PRESETS.values() for i in exp.activate} | set(READOUTS.values())
    Path(folder).mkdir(parents=True, exist_ok=True)
    ids_csv = Path(folder) / "ids.csv"
    ids_csv.write_text(",Completed\n" + "".join(f"{i},True\n" for i in sorted(keep)))
    synthetic.generate(out, n_edges=n_edges, seed=seed, ids_csv=ids_csv)
    return out


@pytest.fixture(scope="session")
def small_connectome(tmp_path_factory) -> Path:
    return write_small_connectome(tmp_path_factory.mktemp("api"))
