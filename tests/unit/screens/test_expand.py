"""Expansion: the product of the axes in order, base first, stable keys, names, and the axes that need a connectome."""

from __future__ import annotations

import numpy as np
import pytest

from flyhpc.errors import ConfigError
from flyhpc.model import Experiment
from flyhpc.screens import load_screen, plan_experiments
from flyhpc.screens.expand import concrete_axes, expand, most_active

SCREEN = """
[screen]
by = "index"
silence_mode = "outgoing"
[base]
activate = [0, 1]
rate_hz = 150.0
silence = [3]
[axes]
activate_each = [7, 8]
silence_each = [5, 9]
rate_hz = [100.0, 150.0]
"""


def test_product_in_axis_order_base_first_with_names_and_keys(write_screen):
    screen = load_screen(str(write_screen(SCREEN)))
    exps = expand(screen)
    assert len(exps) == 1 + 2 * 2 * 2
    assert exps[0].name == "s: base" and exps[0].experiment.activate == (0, 1)
    assert [e.name for e in exps[1:4]] == ["s: activate 7, silence 5, 100 Hz", "s: activate 7, silence 5, 150 Hz",
                                           "s: activate 7, silence 9, 100 Hz"]
    last = exps[-1].experiment
    assert (last.activate, last.silence, last.rate_hz) == ((0, 1, 8), (3, 9), 150.0)
    assert last.silence_mode == "outgoing" and last.by == "index"
    same = Experiment(name="anything", activate=(0, 1, 8), rate_hz=150.0, silence=(3, 9), by="index",
                      silence_mode="outgoing")
    assert exps[-1].key == same.digest()[:16] and last.key == "screen:s"  # the key is what the experiment does
    assert len({e.key for e in exps}) == len(exps)
    assert [e.key for e in expand(load_screen(str(write_screen(SCREEN, "t"))))] == [e.key for e in exps]


def test_a_point_equal_to_the_base_runs_once(write_screen):
    screen = load_screen(str(write_screen(SCREEN.replace("activate_each = [7, 8]\nsilence_each = [5, 9]\n", ""))))
    exps = expand(screen)
    assert [e.name for e in exps] == ["s: base", "s: 100 Hz"]  # 150 Hz is the base itself


def test_clashes_name_the_file_and_the_experiment(write_screen):
    screen = load_screen(str(write_screen(SCREEN.replace("silence_each = [5, 9]", "silence_each = [5, 1]"))))
    with pytest.raises(ConfigError, match=r"s.toml: experiment 's: activate 7, silence 1, 100 Hz': 1 both driven"):
        expand(screen)


def test_all_and_most_active_need_the_connectome(write_screen):
    text = SCREEN.replace("activate_each = [7, 8]", "activate_each = \"all\"").replace(
        "silence_each = [5, 9]", "silence_each = {most_active = 2}")
    screen = load_screen(str(write_screen(text)))
    with pytest.raises(ConfigError, match=r"\[axes\].activate_each: 'all' needs the connectome"):
        expand(screen)
    ids = np.arange(100, 112, dtype=np.int64)
    with pytest.raises(ConfigError, match=r"\[axes\].silence_each: most_active needs a run of the base"):
        concrete_axes(screen, ids)
    # ranking: neuron 1 (driven) and 3 (silenced) are not candidates; ties go to the lower index
    axes = concrete_axes(screen, ids, (np.array([1, 2, 3, 4, 6]), np.array([50, 7, 40, 9, 7])))
    assert axes["silence_each"].values == (4, 2)
    assert axes["activate_each"].values == (2, 4, 5, 6, 7, 8, 9, 10, 11)  # all but the base's 0, 1, 3
    with pytest.raises(ConfigError, match="no neuron outside the base experiment spiked"):
        most_active(screen, np.array([0, 1, 3]), np.array([5, 5, 5]), ids, 2)


def test_most_active_of_a_preset_takes_that_ranking(write_screen):
    """{most_active = N, of = "<preset>"}: ranked by a run of the preset (its own driven neurons are candidates, as
    the paper ranks them); the base's ranking is not used for it, and without its ranking the error names it."""
    text = SCREEN.replace("silence_each = [5, 9]", "silence_each = {most_active = 2, of = \"sugar\"}")
    screen = load_screen(str(write_screen(text)))
    ids = np.arange(100, 112, dtype=np.int64)
    with pytest.raises(ConfigError, match=r"\[axes\].silence_each: most_active needs a run of preset 'sugar'"):
        concrete_axes(screen, ids, {"": (np.array([4]), np.array([9]))})
    axes = concrete_axes(screen, ids, {"sugar": (np.array([2, 4, 6]), np.array([5, 30, 30])), "": None})
    assert axes["silence_each"].values == (4, 6)


def test_unknown_neurons_name_their_key(write_screen):
    screen = load_screen(str(write_screen(SCREEN.replace("silence_each = [5, 9]", "silence_each = [5, 90]"))))
    with pytest.raises(ConfigError, match=r"\[axes\].silence_each: index 90 out of range 0..11"):
        concrete_axes(screen, np.arange(100, 112, dtype=np.int64))
    by_id = load_screen(str(write_screen("[screen]\nreadout = [100, 5]\n[base]\nactivate = [101]\nrate_hz = 5.0\n"
                                         "[axes]\nrate_hz = [1.0]\n", "ids")))
    with pytest.raises(ConfigError, match=r"\[screen\].readout: FlyWire id 5 not in the connectome's 12 neurons"):
        concrete_axes(by_id, np.arange(100, 112, dtype=np.int64))


def test_plan_ranks_the_base_run_on_the_connectome(write_screen, conn):
    text = SCREEN.replace("silence_each = [5, 9]", "silence_each = {most_active = 3}").replace(
        "activate_each = [7, 8]\n", "").replace("rate_hz = [100.0, 150.0]\n", "")
    exps = plan_experiments(load_screen(str(write_screen(text))), conn)
    assert len(exps) == 4 and exps[0].name == "s: base"
    silenced = [e.experiment.silence[-1] for e in exps[1:]]
    assert len(set(silenced)) == 3 and not {0, 1, 3} & set(silenced)
