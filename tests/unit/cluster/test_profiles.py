"""Cluster profiles and the time-limit model: search order, schema and type checks, clamping.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import pytest

from flyhpc.errors import ConfigError
from flyhpc.cluster.profiles import TIME_LADDER_MIN, ClusterProfile, Resources, load_profile, profile_from_dict

REPO = Path(__file__).resolve().parents[3]
SEED_TOTALS_S = {  # seed-spec 6.1, totals with spike I/O: (t_run, n_run) -> seconds
    "brian2cpp": {(0.1, 1): 4.542, (100, 1): 293.9, (0.1, 32): 28.09, (100, 32): 4283.7, (10, 32): 451.2},
    "brian2cuda": {(0.1, 1): 31.80, (100, 1): 389.9, (0.1, 32): 327.1, (100, 32): 12298, (10, 32): 1503.1},
    "pytorch": {(0.1, 1): 3.194, (100, 1): 1007.4, (0.1, 32): 19.52, (100, 32): 18539, (10, 32): 1859.6},
    "nestgpu": {(0.1, 1): 5.926, (100, 1): 112.3, (0.1, 32): 187.3, (100, 32): 3830.7, (10, 32): 549.7},
    "genn": {(0.1, 1): 15.55, (100, 1): 70.84, (0.1, 32): 17.49, (100, 32): 2482.5, (10, 32): 262.8},
    "brian2genn": {(0.1, 1): 32.49, (100, 1): 235.5, (0.1, 32): 996.2, (100, 32): 7464.8, (10, 32): 1630.3},
}


def test_shipped_profiles_load():
    local = load_profile("local")
    assert local.executor == "local" and local.array_parallelism == 1 and not local.container
    site = load_profile("example-site")
    assert site.executor == "slurm" and site.container and site.partition == "gpu"
    assert site.image_path("genn") == "/project/flybrain/images/flyhpc-genn.sif"
    assert site.resources("brian2cpp").gpus == 0 and site.resources("genn").gpus == 1


def test_embedded_local_without_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("flyhpc.cluster.profiles.clusters_dirs", lambda: [tmp_path / "jobs" / "clusters"])
    prof = load_profile("local")
    assert prof.source == "<embedded>" and prof.executor == "local"
    with pytest.raises(ConfigError, match="no cluster profile 'nosuch'; known: local"):
        load_profile("nosuch")


def test_profile_search_order_config_folder_then_working_dir_then_packaged(tmp_path, monkeypatch):
    from flyhpc import config_paths
    from flyhpc.cluster.profiles import profile_names

    cfg, work = tmp_path / "cfg", tmp_path / "work"
    for path, parallel in ((cfg / "clusters" / "local.toml", 3), (cfg / "clusters" / "site.toml", 4),
                           (work / "jobs" / "clusters" / "local.toml", 2)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"[cluster]\nexecutor = 'local'\narray_parallelism = {parallel}\n")
    monkeypatch.chdir(work)
    monkeypatch.delenv(config_paths.ENV_VAR, raising=False)
    assert load_profile("local").array_parallelism == 2
    packaged = (config_paths.PACKAGED / "jobs" / "clusters" / "example-site.toml").resolve()
    assert load_profile("example-site").source == str(packaged)
    monkeypatch.setenv(config_paths.ENV_VAR, str(cfg))
    assert load_profile("local").array_parallelism == 3 and load_profile("site").array_parallelism == 4
    assert {"example-site", "local", "site"} <= set(profile_names())
    with pytest.raises(ConfigError, match="no cluster profile 'nosuch'") as err:
        load_profile("nosuch")
    assert f"searched {cfg.resolve() / 'clusters' / 'nosuch.toml'}, " in str(err.value)


@pytest.mark.parametrize("backend", sorted(SEED_TOTALS_S))
def test_time_model_bounds_the_seed_timings(backend):
    """The example site's model (before the safety factor) is an upper bound of every seed total."""
    res = load_profile("example-site").resources(backend)
    for (t_run, n_run), total_s in SEED_TOTALS_S[backend].items():
        assert res.wall_estimate_s(t_run, n_run) >= total_s, (backend, t_run, n_run)
        # and not absurdly loose at the largest point (less than 10x)
    assert res.wall_estimate_s(100, 32) < 10 * SEED_TOTALS_S[backend][(100, 32)]


def test_time_limit_ladder_and_factor():
    prof = ClusterProfile(name="t", safety_factor=2.0, min_time_min=1, max_time_min=600, signal_delay_s=0,
                          default=Resources(base_s=30, per_trial_s=0, per_sim_s=60))
    assert prof.time_limit_min("x", 0.0, 1) == 2  # 60 s -> 1 min, raised to the 2 min a warning needs
    assert prof.time_limit_min("x", 1.0, 1) == 5  # (30 + 60) * 2 = 180 s -> 3 min -> rung 5
    assert prof.time_limit_min("x", 1.0, 1, time_factor=2.0) == 10  # 6 min -> rung 10
    assert prof.time_limit_min("x", 100.0, 32) == 600  # capped at the partition's MaxTime
    expected = math.ceil((30 + 4 * 60 * 10) * 2 / 60)
    assert prof.time_limit_min("x", 10.0, 4) == next(m for m in TIME_LADDER_MIN if m >= expected)


def test_unknown_keys_list_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'partion' in t.toml \[cluster\]; valid keys: .*partition"):
        profile_from_dict({"cluster": {"partion": "gpu"}}, "t", "t.toml")
    with pytest.raises(ConfigError, match=r"'gpu' in t.toml \[backends.genn\]; valid keys: .*gpus"):
        profile_from_dict({"backends": {"genn": {"gpu": 1}}}, "t", "t.toml")
    with pytest.raises(ConfigError, match=r"top-level tables"):
        profile_from_dict({"clusters": {}}, "t", "t.toml")


def test_sbatch_table_checked_against_submitit():
    with pytest.raises(ConfigError, match=r"'constrant'.*\[sbatch\].*valid keys: .*constraint.*exclude"):
        profile_from_dict({"cluster": {"executor": "slurm"}, "sbatch": {"constrant": "a100"}}, "t", "t.toml")
    prof = profile_from_dict({"cluster": {"executor": "slurm"}, "sbatch": {"constraint": "a100"}}, "t", "t.toml")
    assert prof.sbatch == {"constraint": "a100"}
    # keys the profile owns itself are not accepted twice
    with pytest.raises(ConfigError, match="'partition'"):
        profile_from_dict({"cluster": {"executor": "slurm"}, "sbatch": {"partition": "x"}}, "t", "t.toml")


@pytest.mark.parametrize("table, message", [
    ({"cluster": {"executor": "pbs"}}, "executor = 'pbs'; valid: slurm, local, debug"),
    ({"cluster": {"max_array_size": 0}}, "max_array_size = 0"),
    ({"cluster": {"safety_factor": 0.5}}, "safety_factor = 0.5"),
    ({"cluster": {"binds": "/scratch"}}, r"binds = '/scratch': expected a list of strings, got a string"),
    ({"default": {"cpus": 0}}, r"\[default\].cpus = 0"),
    ({"backends": {"genn": {"mem_gb": -1}}}, r"\[backends.genn\].mem_gb = -1"),
    ({"cluster": {"container": True}}, "container = true needs executor = 'slurm'"),
])
def test_bad_values(table, message):
    with pytest.raises(ConfigError, match=message):
        profile_from_dict(table, "t", "t.toml")


@pytest.mark.parametrize("table, key, value, expected", [
    # a string is not a boolean: "false" must not turn containers on (executor slurm allows containers)
    ("cluster", "container", "false", "true or false (a TOML boolean, unquoted), got a string"),
    ("cluster", "container", 1, "true or false (a TOML boolean, unquoted), got an integer"),
    # booleans and floats are not integers
    ("cluster", "max_array_size", True, "an integer >= 1, got a boolean"),
    ("cluster", "max_time_min", 60.0, "an integer >= 1, got a float"),
    ("cluster", "signal_delay_s", "30", "an integer >= 0, got a string"),
    ("cluster", "safety_factor", True, "a number >= 1, got a boolean"),
    ("cluster", "partition", 7, "a string, got an integer"),
    ("cluster", "slurm_setup", ["module load x", 3], "a list of strings, got a list"),
    ("default", "gpus", False, "an integer >= 0, got a boolean"),
    ("default", "cpus", 2.5, "an integer >= 1, got a float"),
    ("backends.genn", "mem_gb", "16", "a number >= 0, got a string"),
    ("backends.genn", "image", 1, "a string, got an integer"),
])
def test_wrong_types_name_the_key_and_the_type(table, key, value, expected):
    data = {"cluster": {"executor": "slurm"}}
    if table == "backends.genn":
        data["backends"] = {"genn": {key: value}}
    else:
        data.setdefault(table, {})[key] = value
    with pytest.raises(ConfigError) as err:
        profile_from_dict(data, "t", "t.toml")
    assert str(err.value) == f"t.toml [{table}].{key} = {value!r}: expected {expected}"


def test_tables_that_are_not_tables():
    with pytest.raises(ConfigError, match=r"^t.toml \[backends.genn\] must be a table, got an integer: 4$"):
        profile_from_dict({"backends": {"genn": 4}}, "t", "t.toml")
    with pytest.raises(ConfigError, match=r"^t.toml \[cluster\] must be a table, got a string: 'slurm'$"):
        profile_from_dict({"cluster": "slurm"}, "t", "t.toml")


def test_unknown_backend_table_lists_the_registered_backends():
    from flyhpc import backends

    with pytest.raises(ConfigError) as err:
        profile_from_dict({"backends": {"brian2": {"cpus": 2}}}, "t", "t.toml")
    assert str(err.value) == (f"t.toml [backends.brian2]: unknown backend 'brian2'; valid backends: "
                              f"{', '.join(backends.names())}")


def test_profile_file_not_utf8_or_not_toml_is_a_config_error(tmp_path):
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[cluster]\npartition = "gpu"\naccount = "m\u00fcller"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.toml: not UTF-8 text \(byte \d+: invalid") as err:
        load_profile(latin)
    assert str(latin) in str(err.value)
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("executor = slurm\n")
    with pytest.raises(ConfigError, match=r"garbage.toml: not valid TOML: "):
        load_profile(garbage)


def test_time_limit_says_when_max_time_clamps_it():
    prof = ClusterProfile(name="t", safety_factor=2.0, min_time_min=1, max_time_min=600,
                          default=Resources(base_s=30, per_trial_s=0, per_sim_s=60))
    assert prof.time_limit("x", 1.0, 1) == (5, False)
    limit = prof.time_limit("x", 100.0, 32)  # (30 + 32 * 6000) * 2 s = 6401 min > 600
    assert limit.minutes == 600 and limit.clamped and prof.time_limit_min("x", 100.0, 32) == 600
    # (30 + 2 * 4035) * 2 s = 270 min -> rung 360 <= 600: not clamped; x3 asks for 810 min: clamped at 600
    assert prof.time_limit("x", 67.25, 2) == (360, False)
    assert prof.time_limit("x", 67.25, 2, time_factor=3.0) == (600, True)
    # the ladder's rung may exceed max_time_min while the need does not: capped, but not clamped
    tight = dataclasses.replace(prof, max_time_min=300)
    assert tight.time_limit("x", 67.25, 2) == (300, False)


def test_backend_tables_inherit_default():
    prof = profile_from_dict({"default": {"gpus": 1, "cpus": 4}, "backends": {"genn": {"cpus": 8}}}, "t", "t.toml")
    assert prof.resources("genn") == Resources(gpus=1, cpus=8)
    assert prof.resources("pytorch") == Resources(gpus=1, cpus=4)


def test_a_backend_without_a_table_gets_the_gpus_it_declares():
    """[default] says 2 GPUs: a CPU backend without a table still asks for none, a GPU backend for its own 1."""
    prof = profile_from_dict({"default": {"gpus": 2, "cpus": 4}}, "t", "t.toml")
    assert prof.resources("native") == Resources(gpus=0, cpus=4) == prof.resources("brian2cpp")
    assert prof.resources("nestgpu") == Resources(gpus=1, cpus=4) and prof.resources("pytorch").gpus == 1
    cpu_site = profile_from_dict({"default": {"gpus": 0}}, "t", "t.toml")
    assert cpu_site.resources("genn").gpus == 1  # a GPU backend is never sent to a node without one


def test_bad_toml_names_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[cluster\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_profile(path)


def test_shipped_profiles_are_plain_toml():
    for path in (REPO / "jobs" / "clusters").glob("*.toml"):
        tomllib.loads(path.read_text())


def test_every_profile_key_has_a_checked_type():
    from flyhpc.cluster import profiles

    assert set(profiles._CLUSTER_TYPES) == profiles._TOP_KEYS - {"sbatch"}
    assert set(profiles._RES_TYPES) == profiles._RES_KEYS


def test_no_limit_lets_the_pre_timeout_warning_reach_a_starting_task():
    """Slurm may send --signal=USR2@D up to 60 s early: a limit is at least D + 60 s + a start-up minute."""
    prof = ClusterProfile(name="t", min_time_min=1, max_time_min=600, signal_delay_s=30,
                          default=Resources(base_s=1, per_trial_s=0, per_sim_s=0))
    assert prof.shortest_limit_min == 3  # 30 + 60 + 60 s
    assert prof.time_limit("x", 0.0, 1) == (5, False)  # 3 min -> rung 5
    assert dataclasses.replace(prof, signal_delay_s=0).time_limit("x", 0.0, 1) == (2, False)
    assert dataclasses.replace(prof, min_time_min=10).shortest_limit_min == 10
    with pytest.raises(ConfigError, match=r"max_time_min 2 leaves no room .* signal_delay_s 90 .* at least 4 min"):
        profile_from_dict({"cluster": {"executor": "slurm", "max_time_min": 2, "min_time_min": 1,
                                       "signal_delay_s": 90}}, "t", "t.toml")
