"""The paper's neuron sets (flyhpc/presets.py): every id a FlyWire v783 neuron, sources and rates recorded, the
presets built from them, and the published numbers as the paper's example files give them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flyhpc.data.synthetic import SEEDED_PRESETS, packaged_ids
from flyhpc.model import PRESETS, preset
from flyhpc.presets import MN9, NEURON_SETS, PUBLISHED, READOUTS

V783 = set(packaged_ids().tolist())
COPIES = Path(__file__).resolve().parents[3] / "shared" / "data" / "paper-examples"


@pytest.mark.parametrize("key", list(NEURON_SETS))
def test_every_preset_id_is_a_flywire_783_neuron(key):
    s = NEURON_SETS[key]
    missing = [i for i in s.ids if i not in V783]
    assert not missing, f"{key}: {missing} not in the packaged FlyWire v783 ids"
    assert len(set(s.ids)) == len(s.ids) and s.ids
    assert s.rate_hz > 0 and s.rate_hz in s.rates_hz and s.source and s.rate_source


def test_readouts_are_flywire_783_neurons():
    assert MN9 == 720575940660219265 and READOUTS["MN9"] == MN9
    assert set(READOUTS.values()) <= V783


def test_successors_replace_ids_that_v783_lost():
    """A v630 id FlyWire changed is not in v783; its successor is, and sits in the set in its place."""
    changed = [(k, old, new) for k, s in NEURON_SETS.items() for old, new in s.successors.items()]
    assert {k for k, _, _ in changed} == {"sugar", "bitter"}
    for key, old, new in changed:
        s = NEURON_SETS[key]
        assert old not in V783 and new in V783 and new in s.ids and old not in s.ids and s.successor_source


def test_presets_are_the_papers_sets_at_their_rates():
    assert list(PRESETS)[:2] == list(SEEDED_PRESETS) == ["sugar", "p9"]  # the synthetic generator's seeds
    for key, s in NEURON_SETS.items():
        assert preset(key).activate == s.ids and preset(key).rate_hz == s.rate_hz and preset(key).key == key
    assert (len(PRESETS["bitter"].activate), len(PRESETS["water"].activate), len(PRESETS["ir94e"].activate)) == \
        (21, 18, 18)
    assert PRESETS["water"].rate_hz == 260.0 and PRESETS["sugar"].rate_hz == 200.0


def test_published_numbers():
    got = {(p.rate_hz, p.silence): round(p.rate_hz_paper, 4) for p in PUBLISHED}
    assert got == {(200.0, ()): 93.2667, (100.0, ()): 67.0333, (100.0, (720575940622695448,)): 71.1667}
    for p in PUBLISHED:  # a silenced neuron the paper's run silenced must be one flyhpc can silence
        assert not set(p.silence) & set(NEURON_SETS[p.preset].ids) and set(p.silence) <= V783


@pytest.mark.skipif(not COPIES.is_dir(), reason=f"{COPIES} (the paper's example outputs) not present here")
def test_published_numbers_are_what_the_example_files_hold():
    import pyarrow.parquet as pq

    for p in PUBLISHED:
        table = pq.read_table(COPIES / Path(p.source).name, columns=["flywire_id", "trial"])
        ids = table.column("flywire_id").to_numpy()
        assert int(np.count_nonzero(ids == READOUTS[p.neuron])) == p.spikes
        assert len(set(table.column("trial").to_pylist())) == 30
