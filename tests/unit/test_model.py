"""Params derived quantities, experiment validation and resolution against a neuron list."""

import hashlib
import json
import math

import numpy as np
import pytest

from flyhpc.errors import ConfigError
from flyhpc.model import PRESETS, Experiment, Params, preset, validate_run


def test_params_derived_values_match_the_paper_model():
    p = Params()
    assert p.kick_mv == pytest.approx(68.75)
    assert p.delay_steps == 18
    assert p.refractory_steps == 22
    assert p.decay_m == pytest.approx(0.99501248, abs=1e-8)
    assert p.decay_s == pytest.approx(0.98019867, abs=1e-8)
    # coefficient of g in the exact membrane update: tau_s/(tau_s - tau_m) * (b - a) = (a - b)/3
    assert (p.decay_m - p.decay_s) / 3 == pytest.approx(0.00493794, abs=1e-8)


@pytest.mark.parametrize("t_run_s,steps", [(0.1, 1000), (1, 10000), (1.0, 10000), (10.0, 100000), (100, 1000000)])
def test_steps_of_the_paper_durations(t_run_s, steps):
    assert validate_run(t_run_s, 1) == steps


@pytest.mark.parametrize("t_run_s,n_run,msg", [
    (0, 1, "t_run must be > 0"), (-1.0, 1, "t_run must be > 0"), (math.nan, 1, "t_run must be > 0"),
    (0.00005, 1, "whole number"), (1.0, 0, "n_run must be an integer >= 1"), (1.0, 2.5, "n_run"),
    (1e6, 1, "t_run must be <="),
])
def test_bad_runs_are_named(t_run_s, n_run, msg):
    with pytest.raises(ConfigError, match=msg):
        validate_run(t_run_s, n_run)


def test_experiment_validation_names_offending_values():
    with pytest.raises(ConfigError, match="rate must be a finite rate >= 0 Hz, got -5"):
        Experiment(name="x", activate=(1,), rate_hz=-5)
    with pytest.raises(ConfigError, match="rate2"):
        Experiment(name="x", activate=(1,), rate_hz=5, rate2_hz=-1)
    with pytest.raises(ConfigError, match="3 both driven and silenced"):
        Experiment(name="x", activate=(1, 3), rate_hz=5, silence=(3,))
    with pytest.raises(ConfigError, match="7 both driven and silenced"):
        Experiment(name="x", activate=(1,), rate_hz=5, activate2=(7,), silence=(7,))
    with pytest.raises(ConfigError, match="in both activation sets"):
        Experiment(name="x", activate=(1,), rate_hz=5, activate2=(1,))
    with pytest.raises(ConfigError, match="no neuron to activate"):
        Experiment(name="x", activate=(), rate_hz=5)
    with pytest.raises(ConfigError, match="more than once"):
        Experiment(name="x", activate=(2, 2), rate_hz=5)


def test_resolve_by_id_and_index():
    ids = np.array([10, 20, 30, 40], dtype=np.int64)
    r = Experiment(name="x", activate=(30, 10), rate_hz=100, activate2=(40,), rate2_hz=5, silence=(20,)).resolve(ids)
    assert r.drive_sets[0].indices.tolist() == [2, 0]
    assert r.drive_sets[1].indices.tolist() == [3]
    assert r.silenced.tolist() == [1]
    assert r.driven.tolist() == [0, 2, 3]
    r = Experiment(name="x", activate=(1,), rate_hz=1, by="index").resolve(ids)
    assert r.drive_sets[0].indices.tolist() == [1]


def test_resolve_names_every_unknown_id():
    ids = np.array([10, 20, 30], dtype=np.int64)
    with pytest.raises(ConfigError, match=r"FlyWire id 15, 99 not in the connectome's 3 neurons"):
        Experiment(name="x", activate=(10, 15, 99), rate_hz=1).resolve(ids)
    with pytest.raises(ConfigError, match="silence FlyWire id 5"):
        Experiment(name="x", activate=(10,), rate_hz=1, silence=(5,)).resolve(ids)
    with pytest.raises(ConfigError, match="index 3 out of range 0..2"):
        Experiment(name="x", activate=(3,), rate_hz=1, by="index").resolve(ids)


def test_presets():
    assert len(PRESETS["sugar"].activate) == 21 and PRESETS["sugar"].rate_hz == 200.0
    assert PRESETS["p9"].activate == (720575940627652358, 720575940635872101) and PRESETS["p9"].rate_hz == 100.0
    with pytest.raises(ConfigError, match="known: bitter, ir94e, p9, sugar, water"):
        preset("suggar")


def test_digest_ignores_display_name_but_not_content():
    a = Experiment(name="a", activate=(1,), rate_hz=5)
    assert a.digest() == Experiment(name="b", activate=(1,), rate_hz=5).digest()
    assert a.digest() != Experiment(name="a", activate=(1,), rate_hz=6).digest()


def _json_digest(e: Experiment) -> str:
    """The digest as it was defined: sha256 of json.dumps of the experiment's body, keys sorted."""
    body = {"activate": list(e.activate), "rate_hz": float(e.rate_hz), "activate2": list(e.activate2),
            "rate2_hz": float(e.rate2_hz), "silence": list(e.silence), "by": e.by}
    if e.silence and e.silence_mode != "both":
        body["silence_mode"] = e.silence_mode
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("fields", [
    dict(activate=(1,), rate_hz=5),
    dict(activate=(720575940627652358, 720575940635872101), rate_hz=100.0, activate2=(3, -4), rate2_hz=1e-7),
    dict(activate=(7,), rate_hz=1e16, silence=(2, 9), silence_mode="outgoing", by="index"),
    dict(activate=(), rate_hz=0, activate2=(np.int64(5),), rate2_hz=0.1 + 0.2, silence=(6,), silence_mode="both"),
    dict(activate=(True,), rate_hz=200, silence=(12345678901234567890,)),
])
def test_digest_is_the_json_of_the_body(fields):
    e = Experiment(name="x", **fields)
    assert e.digest() == _json_digest(e)


def test_silence_mode_is_checked_and_digested_only_where_it_changes_the_network():
    with pytest.raises(ConfigError, match="silence_mode must be one of both, outgoing, got 'in'"):
        Experiment(name="x", activate=(1,), rate_hz=5, silence=(2,), silence_mode="in")
    both = Experiment(name="x", activate=(1,), rate_hz=5, silence=(2,))
    # the default mode digests exactly as before modes existed: task keys and drives of old labels stay valid
    legacy = {"activate": [1], "rate_hz": 5.0, "activate2": [], "rate2_hz": 0.0, "silence": [2], "by": "id"}
    assert both.digest() == hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest()
    assert both.digest() != Experiment(name="x", activate=(1,), rate_hz=5, silence=(2,),
                                       silence_mode="outgoing").digest()
    quiet = Experiment(name="x", activate=(1,), rate_hz=5)
    assert quiet.digest() == Experiment(name="x", activate=(1,), rate_hz=5, silence_mode="outgoing").digest()
