"""Which connectome a run uses (`data.sources.resolve_sources`): real files when present, else the
synthetic one (the path every fresh clone takes), a folder, and a clear error for anything else."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import pytest

from flyhpc.data import synthetic
from flyhpc.data.sources import resolve_sources
from flyhpc.errors import ConfigError

from tests.integration.test_quick_grid import write_tiny_connectome


def _default_synthetic_folder(data_dir):
    digest = hashlib.sha256(json.dumps([synthetic.FORMAT, asdict(synthetic.SynthParams())], sort_keys=True)
                            .encode()).hexdigest()
    return data_dir / "synthetic" / f"fullscale-seed0-{digest[:10]}"


def test_auto_without_real_files_takes_the_synthetic_connectome(tmp_path):
    folder = _default_synthetic_folder(tmp_path)
    made = synthetic.generate(folder, n_neurons=300, n_edges=3000, seed=0)  # stands where the full-scale one goes
    for value in (None, "auto", "synthetic"):
        found = resolve_sources(value, tmp_path)
        assert found.completeness == made.completeness and found.source.startswith("synthetic"), value
    for value in ("", " "):  # an unset shell variable is a mistake, never "auto"
        with pytest.raises(ConfigError, match="empty; give 'auto', 'synthetic' or a folder"):
            resolve_sources(value, tmp_path)


def test_auto_prefers_real_files_and_a_folder_is_read_as_given(tmp_path):
    write_tiny_connectome(tmp_path)
    assert resolve_sources("auto", tmp_path).source == "flywire-783"
    assert resolve_sources(str(tmp_path), tmp_path / "elsewhere").source == "flywire-783"


def test_anything_else_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not a folder, 'auto' or 'synthetic'"):
        resolve_sources(str(tmp_path / "nowhere"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no Completeness_783.csv"):
        resolve_sources(str(tmp_path / "empty"), tmp_path)
