"""Screen files: the presets load, they are found like grids, and every bad value names its file and key."""

from __future__ import annotations

import pytest

from flyhpc.errors import ConfigError
from flyhpc.screens import known_screens, load_screen
from flyhpc import config_paths

GOOD = """
[screen]
t_run_s = 0.2
n_run = 2
by = "index"
[base]
activate = [0, 1]
rate_hz = 150.0
[axes]
silence_each = [5, 9]
"""


def test_presets_load_and_are_packaged():
    assert {"atlas", "sugar-silence-top100"} <= set(known_screens())
    atlas = load_screen("atlas")
    assert atlas.activate_each.kind == "all" and atlas.rate_hz == 200.0 and (atlas.t_run_s, atlas.n_run) == (1.0, 1)
    assert atlas.backend == "native" and not atlas.activate.values
    top = load_screen("sugar-silence-top100")
    assert len(top.activate.values) == 21 and top.rate_hz == 200.0 and top.silence_mode == "outgoing"
    assert top.silence_each.kind == "most_active" and top.silence_each.count == 100 and top.n_run == 10


def test_the_papers_screens_load_as_the_paper_ran_them():
    """Figure 1 E / F (presets.py): the 200 most sugar-responsive neurons, 30 trials x 1 s, readout MN9."""
    from flyhpc.presets import MN9, NEURON_SETS, SUFFICIENCY_RATES_HZ, TOP_N

    assert {"sugar-sufficiency", "sugar-necessity"} <= set(known_screens())
    suff = load_screen("sugar-sufficiency")
    assert (suff.t_run_s, suff.n_run, suff.readout.values) == (1.0, 30, (MN9,))
    assert suff.activate_each.kind == "most_active" and suff.activate_each.count == TOP_N
    assert suff.activate_each.of == "sugar" and not suff.activate.values and suff.rates_hz == SUFFICIENCY_RATES_HZ
    nec = load_screen("sugar-necessity")
    assert (nec.t_run_s, nec.n_run, nec.readout.values, nec.silence_mode) == (1.0, 30, (MN9,), "outgoing")
    assert nec.activate.values == NEURON_SETS["sugar"].ids and nec.rate_hz == 200.0
    assert nec.silence_each.kind == "most_active" and nec.silence_each.count == TOP_N and nec.silence_each.of == ""


def test_screens_are_found_like_grids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs" / "screens").mkdir(parents=True)
    (tmp_path / "jobs" / "screens" / "atlas.toml").write_text(GOOD)
    assert config_paths.search_dirs("screens")[0] == (tmp_path / "jobs" / "screens").resolve()
    assert load_screen("atlas").by == "index"  # ./jobs/screens wins over the packaged atlas
    config = tmp_path / "config"
    (config / "screens").mkdir(parents=True)
    (config / "screens" / "atlas.toml").write_text(GOOD.replace("n_run = 2", "n_run = 3"))
    monkeypatch.setenv("FLYHPC_CONFIG", str(config))
    assert load_screen("atlas").n_run == 3  # --config-dir / $FLYHPC_CONFIG first
    with pytest.raises(ConfigError, match="unknown screen 'nope'; known: atlas"):
        load_screen("nope")


@pytest.mark.parametrize("change,message", [
    (("[axes]", "[axis]"), r"s.toml: unknown key\(s\) axis; valid: screen, base, axes"),
    (("n_run = 2", "n_run = 0"), r"\[screen\].n_run: must be an integer >= 1, got 0"),
    (("n_run = 2", "n_run = 2\nthreads = 4"), r"\[screen\]: unknown key\(s\) threads; valid: description, t_run_s"),
    (("t_run_s = 0.2", "t_run_s = -1"), r"\[screen\].t_run_s: t_run must be > 0 s, got -1"),
    (("t_run_s = 0.2", "t_run_s = \"1s\""), r"\[screen\].t_run_s: must be a number, got '1s'"),
    (("by = \"index\"", "by = \"name\""), r"\[screen\].by: must be one of id, index, got 'name'"),
    (("by = \"index\"", "by = \"index\"\nbackend = \"nest\""), r"\[screen\].backend: unknown backend 'nest'; known:"),
    (("by = \"index\"", "by = \"index\"\nsilence_mode = \"in\""),
     r"\[screen\].silence_mode: must be one of both, outgoing, got 'in'"),
    (("rate_hz = 150.0", "rate_hz = -1"), r"\[base\].rate_hz: must be a rate >= 0 Hz, got -1"),
    (("rate_hz = 150.0", ""), r"\[base\].rate_hz: needed"),
    (("activate = [0, 1]", "activate = [0, 1, 0]"), r"\[base\].activate: lists 0 more than once"),
    (("activate = [0, 1]", "activate = [0, \"x\"]"), r"\[base\].activate\[1\]: expected row indices"),
    (("activate = [0, 1]", "activate = \"all\""), r"\[base\].activate: cannot read neuron file .*all"),
    (("activate = [0, 1]", "preset = \"sugar\""), r"\[base\].preset: presets name FlyWire ids"),
    (("activate = [0, 1]", "preset = \"salt\""),
     r"\[base\].preset: unknown experiment 'salt'; known: bitter, ir94e, p9, sugar, water"),
    (("silence_each = [5, 9]", "silence_each = {most_active = 3, of = \"salt\"}"),
     r"\[axes\].silence_each.of: unknown experiment 'salt'; known: bitter"),
    (("silence_each = [5, 9]", "silence_each = {most_active = 3, by = \"x\"}"), r"\[axes\].silence_each: a table here"),
    (("activate = [0, 1]", "preset = [\"sugar\"]"), r"\[base\].preset: unknown experiment \['sugar'\]"),
    (("by = \"index\"", "by = \"index\"\nbackend = [1]"), r"\[screen\].backend: unknown backend \[1\]"),
    (("silence_each = [5, 9]", "silence_each = []"), r"\[axes\].silence_each: an axis needs at least one neuron"),
    (("silence_each = [5, 9]", "silence_each = {top = 3}"), r"\[axes\].silence_each: a table here must be"),
    (("silence_each = [5, 9]", ""), r"\[axes\]: needs at least one of activate_each, silence_each, rate_hz"),
    (("silence_each = [5, 9]", "rate_hz = [10, 10]"), r"\[axes\].rate_hz: lists 10.0 more than once"),
    (("[axes]", "readout = [1]\n[axes]"), r"\[base\]: unknown key\(s\) readout"),
    (("by = \"index\"", "by = \"index\"\nreadout = {most_active = 2}"),
     r"\[screen\].readout: a table here must be \{most_active = N\} or .* \(on an axis\)"),
])
def test_bad_values_are_named_with_file_and_key(write_screen, change, message):
    path = write_screen(GOOD.replace(*change))
    with pytest.raises(ConfigError, match=message):
        load_screen(str(path))


def test_neuron_csv_files_with_names(write_screen, tmp_path):
    (tmp_path / "cands.csv").write_text("neuron_index,name,other\n5,DNa02,x\n9,,y\n")
    path = write_screen(GOOD.replace("silence_each = [5, 9]", "silence_each = \"cands.csv\""))
    screen = load_screen(str(path))
    assert screen.silence_each.values == (5, 9) and screen.silence_each.labels == ("DNa02", "9")
    for text, message in (("flywire_id\n5\n", "has no column 'neuron_index' \\(columns: flywire_id"),
                          ("neuron_index\n5\nfive\n", "line 3: neuron_index 'five' is not an integer"),
                          ("neuron_index\n", "lists no neuron"),
                          ("neuron_index,name\n5,a\n6,a\n", "name: lists a more than once"),
                          ("neuron_index\n5\n5\n", "neuron_index: lists 5 more than once")):
        (tmp_path / "cands.csv").write_text(text)
        with pytest.raises(ConfigError, match=rf"s.toml \[axes\].silence_each: .*cands.csv.*{message}"):
            load_screen(str(path))
    (tmp_path / "cands.csv").unlink()
    with pytest.raises(ConfigError, match=r"\[axes\].silence_each: cannot read neuron file .*cands.csv"):
        load_screen(str(path))


def test_not_toml_is_named(write_screen):
    with pytest.raises(ConfigError, match="s.toml: not valid TOML"):
        load_screen(str(write_screen("[screen\n")))
