"""Fixtures of the screen tests: a small generated FlyWire-format connectome (300 neurons) and screen files."""

from __future__ import annotations

import textwrap

import pytest

from flyhpc.data.connectome import load_connectome
from flyhpc.data.sources import resolve_sources
from tests.integration.test_quick_grid import write_tiny_connectome


@pytest.fixture(scope="session")
def conn_dir(tmp_path_factory):
    return write_tiny_connectome(tmp_path_factory.mktemp("screens") / "conn", n_neurons=300, n_edges=5000, seed=2)


@pytest.fixture(scope="session")
def conn(conn_dir):
    return load_connectome(resolve_sources(str(conn_dir), conn_dir))


@pytest.fixture()
def write_screen(tmp_path):
    """write_screen(text, name="s") -> path of tmp_path/<name>.toml holding the dedented text."""

    def write(text: str, name: str = "s"):
        path = tmp_path / f"{name}.toml"
        path.write_text(textwrap.dedent(text))
        return path

    return write
