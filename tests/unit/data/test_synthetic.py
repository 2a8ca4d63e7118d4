"""Synthetic connectome: FlyWire schema, exact size, determinism, Dale's law, pathways, loadability, and the
packaged FlyWire v783 ids it always uses (sha256-pinned, the same wherever flyhpc sits)."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import pyarrow.parquet as pq
import pytest

from flyhpc.data.connectome import load_connectome, read_completeness
from flyhpc.data.sources import resolve_sources
from flyhpc.errors import ConfigError, DataError
from flyhpc.files import sha256_file
from flyhpc.model import SUGAR_IDS
from flyhpc.data.synthetic import (PACKAGED_IDS, PACKAGED_IDS_SHA256, SynthParams, default_sources, generate, packaged_ids,
                              sources_in)

REPO = Path(__file__).resolve().parents[3]
# Sugar GRN row indices in the v783 Completeness CSV, seed-spec §1.6 (in SUGAR_IDS order).
SUGAR_INDICES_783 = (69093, 97602, 122795, 124291, 29281, 100605, 110469, 51107, 49584, 129730, 126873,
                     28825, 126600, 126752, 32863, 108426, 111357, 14842, 90589, 92298, 12494)

COLUMNS = ["Presynaptic_ID", "Postsynaptic_ID", "Presynaptic_Index", "Postsynaptic_Index", "Connectivity",
           "Excitatory", "Excitatory x Connectivity"]
SMALL = dict(n_neurons=3000, n_edges=60_000, params=SynthParams(extra_pathways=3))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    return generate(out, seed=3, **SMALL)


def test_schema_size_and_uniqueness(small):
    table = pq.read_table(small.connectivity)
    assert table.column_names == COLUMNS
    assert table.num_rows == 60_000
    df = table.to_pandas()
    assert not df.duplicated(["Presynaptic_Index", "Postsynaptic_Index"]).any()
    assert (df["Presynaptic_Index"] != df["Postsynaptic_Index"]).all()
    ids = read_completeness(small.completeness)
    assert ids.size == 3000
    assert (ids[df["Presynaptic_Index"]] == df["Presynaptic_ID"]).all()
    assert (ids[df["Postsynaptic_Index"]] == df["Postsynaptic_ID"]).all()
    assert (df["Connectivity"] >= 1).all() and set(df["Excitatory"].unique()) <= {-1, 1}
    assert (df["Excitatory x Connectivity"] == df["Excitatory"] * df["Connectivity"]).all()


def test_dale_law_and_statistics(tmp_path):
    background = generate(tmp_path, n_neurons=3000, n_edges=60_000, seed=1, params=SynthParams(extra_pathways=0))
    df = pq.read_table(background.connectivity).to_pandas()
    assert (df.groupby("Presynaptic_Index")["Excitatory"].nunique() == 1).all()
    assert 0.6 < (df["Excitatory"] > 0).mean() < 0.85
    out_deg = df.groupby("Presynaptic_Index").size()
    assert out_deg.median() < out_deg.mean()  # heavy tail, as the lognormal degrees of FlyWire
    assert (df["Connectivity"] == 1).mean() == pytest.approx(0.37, abs=0.05)


def test_same_seed_same_bytes_other_seed_other_graph(small, tmp_path):
    again = generate(tmp_path / "again", seed=3, **SMALL)
    assert sha256_file(again.connectivity) == sha256_file(small.connectivity)
    assert sha256_file(again.completeness) == sha256_file(small.completeness)
    other = generate(tmp_path / "other", seed=4, **SMALL)
    assert sha256_file(other.connectivity) != sha256_file(small.connectivity)


def test_says_it_is_synthetic_and_loads(small):
    meta = pq.read_schema(small.connectivity).metadata
    assert meta[b"flyhpc.data.synthetic"] == b"true"
    assert json.loads(meta[b"flyhpc.synthetic_params"])["params"]["pathway_fan_in"] == 8
    conn = load_connectome(small)
    assert conn.is_synthetic and conn.n_neurons == 3000 and conn.n_edges == 60_000
    assert sources_in(small.connectivity.parent) == small
    assert resolve_sources(str(small.connectivity.parent), small.connectivity.parent) == small


def test_pathways_are_strong_feed_forward_layers(small):
    """3 seed sets of 20 neurons, layers of 60/100/120/100 neurons, fan-in 8: 3 x 380 x 8 strong edges."""
    df = pq.read_table(small.connectivity).to_pandas()
    # pathway counts: lognormal, median 20, sigma 0.5 -> 85 % are >= 12; background: ~2 % are
    strong = df[df["Connectivity"] >= 12]
    pathway_edges = 3 * 380 * 8
    assert 0.75 * pathway_edges < len(strong) < 0.95 * pathway_edges + 0.04 * 60_000
    targets = strong.groupby("Postsynaptic_Index").size()
    assert (targets >= 5).sum() > 0.8 * 3 * 380  # nearly every layer neuron gets most of its 8 inputs


def test_impossible_sizes_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot make 100 edges among 10 neurons"):
        generate(tmp_path / "x", n_neurons=10, n_edges=100)
    assert not (tmp_path / "x" / "Connectivity.parquet").exists()


def test_default_sources_reuses_what_is_there(tmp_path, monkeypatch):
    import flyhpc.data.synthetic as synthetic

    calls = []

    def fake_generate(folder, **kw):
        calls.append(folder)
        return generate(folder, n_neurons=200, n_edges=2000, seed=0, params=SynthParams(extra_pathways=0))

    monkeypatch.setattr(synthetic, "generate", fake_generate)
    first = default_sources(tmp_path)
    second = default_sources(tmp_path)
    assert first == second and len(calls) == 1


def test_packaged_ids_are_the_v783_neurons_in_file_order():
    assert hashlib.sha256(PACKAGED_IDS.read_bytes()).hexdigest() == PACKAGED_IDS_SHA256
    ids = packaged_ids()
    assert ids.shape == (138_639,) and ids.dtype == np.int64 and np.all(np.diff(ids) > 0)
    assert ids[0] == 720575940596125868 and ids[-1] == 720575940661339777
    index = {int(fid): i for i, fid in enumerate(ids)}
    assert tuple(index[fid] for fid in SUGAR_IDS) == SUGAR_INDICES_783


def test_pack_script_reproduces_the_packaged_file(tmp_path, shared_dir):
    """scripts/pack-flywire-ids.py on the real CSV (../shared, a test fixture only) gives the packaged bytes."""
    out = tmp_path / "ids.gz"
    real_csv = shared_dir / "data" / "Completeness_783.csv"
    subprocess.run([sys.executable, str(REPO / "scripts" / "pack-flywire-ids.py"), str(real_csv), str(out)],
                   check=True, capture_output=True)
    assert out.read_bytes() == PACKAGED_IDS.read_bytes()


def test_damaged_or_other_ids_file_fails_its_sha256(tmp_path):
    csv = tmp_path / "Completeness_783.csv"
    csv.write_text(",Completed\n11,True\n12,True\n")
    other = tmp_path / "ids.gz"
    subprocess.run([sys.executable, str(REPO / "scripts" / "pack-flywire-ids.py"), str(csv), str(other)],
                   check=True, capture_output=True)
    digest = sha256_file(other)
    with pytest.raises(DataError) as err:
        packaged_ids(other)
    assert str(err.value) == (f"packaged FlyWire ids {other}: sha256 {digest} does not match the pinned "
                              f"{PACKAGED_IDS_SHA256}; the file is damaged, reinstall flyhpc")
    with pytest.raises(DataError, match=f"packaged FlyWire ids {tmp_path / 'none.gz'} not found"):
        packaged_ids(tmp_path / "none.gz")


def test_ids_never_depend_on_data_lying_around(tmp_path, monkeypatch):
    """A Completeness_783.csv in the data folder, the old $FLYHPC_SHARED_DATA or the working directory
    changes nothing: the packaged ids are used (a subset, seeded, for a smaller size)."""
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "Completeness_783.csv").write_text(",Completed\n" + "".join(f"{i},True\n" for i in range(1, 5001)))
    monkeypatch.setenv("FLYHPC_SHARED_DATA", str(decoy))
    monkeypatch.setenv("FLYHPC_DATA", str(decoy))
    monkeypatch.chdir(decoy)
    out = generate(tmp_path / "s", n_neurons=3000, n_edges=20_000, seed=2, params=SynthParams(extra_pathways=0))
    ids = read_completeness(out.completeness)
    assert np.isin(ids, packaged_ids()).all() and np.all(np.diff(ids) > 0)
    assert json.loads((tmp_path / "s" / "synthetic.json").read_text())["ids"] == "real ids from Completeness_783.csv"
    monkeypatch.delenv("FLYHPC_SHARED_DATA")
    again = generate(tmp_path / "t", n_neurons=3000, n_edges=20_000, seed=2, params=SynthParams(extra_pathways=0))
    assert sha256_file(again.connectivity) == sha256_file(out.connectivity)
    assert sha256_file(again.completeness) == sha256_file(out.completeness)


def test_more_neurons_than_ids_are_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        generate(tmp_path / "x", n_neurons=138_640, n_edges=1000)
    assert str(err.value) == "--neurons 138640 exceeds the 138639 ids of FlyWire v783 (flywire_783_root_ids.gz)"
