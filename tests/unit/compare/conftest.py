"""Two hand-written spike files of one grid point (brian2cpp and pytorch) whose metrics are worked out
by hand in the tests: the `bundle` fixture writes them into a label."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flyhpc.bundle import BundlePaths
from flyhpc.results.spikes import SpikeTable, write_spikes

IDS = np.array([100, 101, 102, 103], dtype=np.int64)
A = [(0, 10, 0), (0, 50, 0), (0, 90, 0), (0, 20, 1), (1, 30, 0), (1, 40, 2)]  # (trial, step, neuron index)
B = [(0, 15, 0), (0, 50, 0), (0, 120, 0), (0, 29, 1), (0, 70, 3), (1, 30, 0), (1, 60, 2), (1, 80, 1)]
PEARSON = 125 / math.sqrt(150 * 350 / 3)


def _write(path, events, stem):
    trial, step, neuron = zip(*events)
    write_spikes(path, SpikeTable.from_arrays(trial, step, neuron), IDS, 0.1, stem)


@pytest.fixture
def bundle(tmp_path):
    paths = BundlePaths(tmp_path, "lab")
    _write(paths.spike_file(1, "brian2cpp", 0.1, 2), A, "brian2cpp_t0.1s_n2")
    _write(paths.spike_file(1, "pytorch", 0.1, 2), B, "pytorch_t0.1s_n2")
    return paths
