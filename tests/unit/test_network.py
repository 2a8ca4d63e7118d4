"""NetworkSpec: silencing (to and from, or outgoing only), weight scaling, refractoriness of driven neurons."""

import numpy as np
import pytest

from flyhpc.data.connectome import connectome_from_edges
from flyhpc.errors import ConfigError
from flyhpc.model import Experiment, Params
from flyhpc.network import build_network, silenced_edges


def _conn():
    ids = np.array([11, 22, 33, 44], dtype=np.int64)
    # 0->1 (+3), 1->2 (-2), 2->0 (+1), 3->1 (+4), 0->1 again (+2: adds up to 5)
    return connectome_from_edges(ids, [0, 1, 2, 3, 0], [1, 2, 0, 1, 1], [3, -2, 1, 4, 2], "test", "d")


def test_repeated_pairs_add_up_and_weights_scale():
    spec = build_network(_conn(), Experiment(name="t", activate=(11,), rate_hz=10))
    dense = np.zeros((4, 4))
    pre = spec.pre_indices
    dense[pre, spec.indices] = spec.weights_mv
    assert dense[0, 1] == 5 * 0.275 and dense[1, 2] == -2 * 0.275 and dense[3, 1] == 4 * 0.275
    assert spec.n_edges == 4


def test_silencing_removes_synapses_to_and_from():
    spec = build_network(_conn(), Experiment(name="t", activate=(11,), rate_hz=10, silence=(22,)))
    pairs = set(zip(spec.pre_indices.tolist(), spec.indices.tolist()))
    assert pairs == {(2, 0)}  # 0->1, 1->2 and 3->1 all touch neuron 1 (id 22)
    assert spec.silenced.tolist() == [1]


def test_driven_neurons_have_no_refractory_period():
    spec = build_network(_conn(), Experiment(name="t", activate=(11,), rate_hz=10, activate2=(44,), rate2_hz=5))
    assert spec.refractory_steps.tolist() == [0, 22, 22, 0]


def test_digest_changes_with_what_is_simulated():
    conn = _conn()
    a = build_network(conn, Experiment(name="t", activate=(11,), rate_hz=10))
    assert a.digest() == build_network(conn, Experiment(name="u", activate=(11,), rate_hz=10)).digest()
    assert a.digest() != build_network(conn, Experiment(name="t", activate=(11,), rate_hz=11)).digest()
    assert a.digest() != build_network(conn, Experiment(name="t", activate=(11,), rate_hz=10),
                                       Params(w_syn_mv=0.3)).digest()


def test_outgoing_silencing_keeps_the_synapses_into_the_silenced_neuron():
    conn = _conn()
    spec = build_network(conn, Experiment(name="t", activate=(11,), rate_hz=10, silence=(22,),
                                          silence_mode="outgoing"))
    pairs = set(zip(spec.pre_indices.tolist(), spec.indices.tolist()))
    assert pairs == {(0, 1), (2, 0), (3, 1)}  # 1->2 (from neuron 1, id 22) is gone; 0->1 and 3->1 stay
    both = build_network(conn, Experiment(name="t", activate=(11,), rate_hz=10, silence=(22,)))
    assert spec.digest() != both.digest()


def test_silenced_edges_by_mode():
    conn = _conn()
    silenced = np.array([1])
    out = silenced_edges(conn.indptr, conn.indices, silenced, "outgoing")
    both = silenced_edges(conn.indptr, conn.indices, silenced, "both")
    pre = np.repeat(np.arange(4), np.diff(conn.indptr))
    assert (pre[out] == 1).all() and out.sum() == 1
    assert set(zip(pre[both].tolist(), conn.indices[both].tolist())) == {(0, 1), (1, 2), (3, 1)}
    with pytest.raises(ConfigError, match="silence_mode must be one of both, outgoing, got 'all'"):
        silenced_edges(conn.indptr, conn.indices, silenced, "all")
