"""silence_mode "outgoing" on every backend: a silenced neuron still receives and spikes, but reaches nobody.

Four neurons: D (driven) -> S (silenced) -> G, and D -> X (a control). Each edge is BIG (1500 mV: one step of
integration crosses the threshold), so a kick of D at step 0 makes D spike at 1, S and X at 20 (18-step delay,
then one step of integration) and, without silencing, G at 39. With "outgoing" S keeps its input and spikes at
20 like X, while G stays silent; with "both" (the scenario `silenced_neuron_and_its_targets_stay_silent` of the
backend contract) S has no synapse left at all. One build per backend; skipped where a backend cannot run here.
"""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc import backends
from flyhpc.data.connectome import connectome_from_edges
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network
from tests.contract.conftest import BIG, hand_drive, spikes_of

D, S, G, X = 0, 1, 2, 3
IDS = np.arange(2000, 2004, dtype=np.int64)
N_STEPS = 100


def silence_spec(mode: str):
    conn = connectome_from_edges(IDS, np.array([D, S, D]), np.array([S, G, X]), np.array([BIG, BIG, BIG]),
                                 source="silence-mode", digest="silence-mode-v1")
    experiment = Experiment(name="silence-mode", activate=(int(IDS[D]),), rate_hz=100.0, silence=(int(IDS[S]),),
                            silence_mode=mode)
    return build_network(conn, experiment, Params())


def test_modes_differ_only_in_the_synapses_into_the_silenced_neuron():
    both, outgoing = silence_spec("both"), silence_spec("outgoing")
    assert set(zip(both.pre_indices.tolist(), both.indices.tolist())) == {(D, X)}
    assert set(zip(outgoing.pre_indices.tolist(), outgoing.indices.tolist())) == {(D, S), (D, X)}


@pytest.fixture(scope="module")
def outgoing_spikes(backend_key, build_root):
    backend = backends.get(backend_key)(None, n_threads=1, work_root=build_root)
    try:
        backend.build(silence_spec("outgoing"), N_STEPS)
        backend.setup()
        backend.run(hand_drive(N_STEPS, {0: [(0, D)]}))
        return backend.spikes()
    finally:
        backend.close()


def test_outgoing_silenced_neuron_receives_and_spikes_but_reaches_nobody(outgoing_spikes):
    assert spikes_of(outgoing_spikes, 0, D) == [1]
    assert spikes_of(outgoing_spikes, 0, X) == [20]
    assert spikes_of(outgoing_spikes, 0, S) == [20]  # input into S is kept
    assert spikes_of(outgoing_spikes, 0, G) == []  # S's spike reaches nobody (G would spike at 39)
