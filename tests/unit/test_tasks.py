"""Benchmark tasks and grids: keys, file names, grid presets, expansion order, round resumption, bad input."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from flyhpc import tasks
from flyhpc.bundle import check_label
from flyhpc.bundle import BundlePaths
from flyhpc.errors import ConfigError
from flyhpc.tasks import BenchmarkTask, Grid


def _task(**kw) -> BenchmarkTask:
    base = dict(run_label="lab", round=1, backend="brian2cpp", experiment="sugar", t_run_s=1, n_run=1, seed=0,
                connectome="auto", connectome_digest="", results_root="results")
    base.update(kw)
    return BenchmarkTask(**base)


def test_key_and_stem_write_t_run_as_float():
    one, one_f = _task(t_run_s=1), _task(t_run_s=1.0)
    assert one == one_f and hash(one) == hash(one_f)
    assert one.name == "lab/round_01/brian2cpp_t1.0s_n1" and one.key == f"{one.name}@{one.fingerprint[:10]}"
    assert one.stem == "brian2cpp_t1.0s_n1"
    assert _task(t_run_s=0.1, n_run=32, round=12).name == "lab/round_12/brian2cpp_t0.1s_n32"


def test_the_key_changes_with_everything_that_changes_results():
    base = _task()
    changed = [_task(experiment="p9"), _task(seed=1), _task(connectome_digest="c" * 64),
               _task(backend="genn", backend_options={"genn_backend": "single_threaded_cpu"})]
    assert len({base.key, *(t.key for t in changed)}) == 5
    assert _task(backend="genn").key != _task(backend="genn", backend_options={"genn_backend": "single_threaded_cpu"}).key
    # options that only steer the run (which GPU) keep the key
    assert _task(backend="genn").key == _task(backend="genn", backend_options={"device_id": 1}).key
    # the connectome's path does not matter, its digest does
    assert _task(connectome="/a").key == _task(connectome="/b").key


def test_task_pickles_and_round_trips_through_asdict():
    t = _task(backend="pytorch", t_run_s=0.05, n_run=4)
    assert pickle.loads(pickle.dumps(t)) == t
    assert BenchmarkTask(**dataclasses.asdict(t)) == t


def test_bundle_paths_follow_the_seed_layout(tmp_path):
    t = _task(results_root=str(tmp_path), t_run_s=0.1, n_run=8, round=3)
    p = BundlePaths(tmp_path, "lab")
    assert p.parquet(t) == tmp_path / "lab/round_03/brian2cpp_t0.1s_n8.parquet"
    assert p.record(t).name == "brian2cpp_t0.1s_n8.json" and p.log(t).name == "brian2cpp_t0.1s_n8.log"
    assert p.manifest.name == "manifest.csv" and p.checksums.name == "checksums.sha256"
    assert p.results_csv.name == "benchmark-results.csv" and p.submission.name == "submission.json"


@pytest.mark.parametrize("label", ["a/b", "..", "x..y", "a;rm -rf", "$(id)", "", "a b", "-x", "lab`id`", "é",
                                   "nl\n", "nl\r\n", "a\nb", "\nnl"])
def test_bad_labels_are_refused(label):
    with pytest.raises(ConfigError, match="run label") as err:
        check_label(label)
    assert f"run label {label!r} is not allowed" in str(err.value)
    with pytest.raises(ConfigError):
        _task(run_label=label)


@pytest.mark.parametrize("kw, match", [
    (dict(backend="brian2-cuda"), "unknown backend 'brian2-cuda'"),
    (dict(t_run_s=0), "t_run must be > 0"),
    (dict(t_run_s=-1.0), "t_run must be > 0"),
    (dict(t_run_s=1e6), "t_run must be <="),
    (dict(t_run_s=0.00015), "whole number"),
    (dict(n_run=0), "n_run"),
    (dict(round=0), "round"),
    (dict(experiment=""), "experiment"),
    (dict(seed=-1), "seed"),
])
def test_bad_task_values_name_the_value(kw, match):
    with pytest.raises(ConfigError, match=match):
        _task(**kw)


def test_index_experiment_form():
    exp = tasks.experiment_of("index:0,5,7@150.5")
    assert exp.activate == (0, 5, 7) and exp.rate_hz == 150.5 and exp.by == "index"
    assert tasks.experiment_of("sugar").key == "sugar"
    with pytest.raises(ConfigError):
        tasks.experiment_of("index:0,x@1")


def test_grid_presets_load():
    paper = tasks.load_grid("paper")
    assert paper.t_run_s == (0.1, 1.0, 10.0, 100.0) and paper.n_run == (1, 4, 8, 16, 32)
    assert paper.rounds == 5 and paper.backends == ("brian2cpp", "brian2cuda", "pytorch", "nestgpu", "genn")
    quick = tasks.load_grid("quick")
    assert "brian2cpp" in quick.backends and max(quick.t_run_s) <= 0.1


def test_paper_grid_expands_to_20_points_per_backend_and_round():
    grid = dataclasses.replace(tasks.load_grid("paper"), backends=("brian2cpp", "pytorch"))
    todo = tasks.expand_grid(grid, "paper_x", "results")
    assert len(todo) == 5 * 2 * 20
    assert len({t.key for t in todo}) == len(todo)
    first = todo[:21]  # order: round, backend, n_run, t_run
    assert [(t.round, t.backend, t.n_run, t.t_run_s) for t in first[:5]] == [
        (1, "brian2cpp", 1, 0.1), (1, "brian2cpp", 1, 1.0), (1, "brian2cpp", 1, 10.0), (1, "brian2cpp", 1, 100.0),
        (1, "brian2cpp", 4, 0.1)]
    assert (first[20].round, first[20].backend) == (1, "pytorch")


def test_an_unregistered_backend_in_a_grid_is_refused_with_the_known_ones(monkeypatch):
    from flyhpc import backends

    monkeypatch.setattr(backends, "REGISTRY", {k: v for k, v in backends.REGISTRY.items() if k != "nestgpu"})
    with pytest.raises(ConfigError, match=r"paper.toml \[grid\].backends: unknown backend 'nestgpu'; known: brian2cpp"):
        tasks.load_grid("paper")


def test_round_start_resumes_within_the_grid_not_past_it():
    grid = dataclasses.replace(tasks.load_grid("paper"), backends=("brian2cpp",), round_start=3)
    rounds = sorted({t.round for t in tasks.expand_grid(grid, "p", "results")})
    assert rounds == [3, 4, 5]  # the seed would have run 3..7
    with pytest.raises(ConfigError, match="past the last round"):
        tasks.expand_grid(dataclasses.replace(grid, round_start=6), "p", "results")


def test_one_and_one_point_zero_give_one_task():
    grid = Grid(name="g", backends=("brian2cpp",), t_run_s=(1, 1.0, 0.1), n_run=(1, 1), experiment="sugar")
    keys = [t.name for t in tasks.expand_grid(grid, "lab", "results")]
    assert keys == ["lab/round_01/brian2cpp_t0.1s_n1", "lab/round_01/brian2cpp_t1.0s_n1"]


def test_unknown_experiment_is_refused_by_the_grid():
    grid = Grid(name="g", backends=("brian2cpp",), t_run_s=(1.0,), n_run=(1,), experiment="walk")
    with pytest.raises(ConfigError, match="unknown experiment 'walk'"):
        tasks.expand_grid(grid, "lab", "results")


def test_grid_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown grid 'nope'; known: .*paper.*quick"):
        tasks.load_grid("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('[grid]\nbackends = ["brian2cpp"]\nt_run_s = [1.0]\nn_run = [1]\nrepeats = 3\n')
    with pytest.raises(ConfigError, match="unknown key.*repeats.*valid"):
        tasks.load_grid(bad)
    bad.write_text('[grid]\nbackends = ["brian2cpp"]\nt_run_s = [0.0]\nn_run = [1]\n')
    with pytest.raises(ConfigError, match="t_run"):
        tasks.load_grid(bad)
    bad.write_text('[grid\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        tasks.load_grid(bad)


def _grid_file(path, description: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[grid]\ndescription = "{description}"\nbackends = ["native"]\nt_run_s = [0.1]\nn_run = [1]\n')


def test_grid_search_order_config_folder_then_working_dir_then_packaged(tmp_path, monkeypatch):
    from flyhpc import config_paths

    cfg, work = tmp_path / "cfg", tmp_path / "work"
    _grid_file(cfg / "grids" / "demo.toml", "from the config folder")
    _grid_file(cfg / "grids" / "mine.toml", "mine")
    _grid_file(work / "jobs" / "grids" / "demo.toml", "from ./jobs")
    _grid_file(work / "jobs" / "grids" / "here.toml", "here")
    monkeypatch.chdir(work)
    monkeypatch.delenv(config_paths.ENV_VAR, raising=False)
    assert tasks.load_grid("demo").description == "from ./jobs"
    assert tasks.load_grid("quick").name == "quick"  # packaged with flyhpc
    packaged = (config_paths.PACKAGED / "jobs" / "grids").resolve()  # the checkout's jobs/grids, through a link
    assert config_paths.search_dirs("grids") == [work.resolve() / "jobs" / "grids", packaged]
    monkeypatch.setenv(config_paths.ENV_VAR, str(cfg))
    assert tasks.load_grid("demo").description == "from the config folder"
    assert tasks.load_grid("here").description == "here" and tasks.load_grid("mine").description == "mine"
    assert {"demo", "here", "mine", "paper", "quick"} <= set(tasks.known_grids())
    assert tasks.load_grid(str(work / "jobs" / "grids" / "demo.toml")).description == "from ./jobs"  # a path as is
    with pytest.raises(ConfigError, match="unknown grid 'nope'") as err:
        tasks.load_grid("nope")
    assert f"searched {cfg.resolve() / 'grids'}, {work.resolve() / 'jobs' / 'grids'}, " in str(err.value)
    monkeypatch.setenv(config_paths.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=f"FLYHPC_CONFIG={tmp_path / 'missing'}: not a folder"):
        tasks.load_grid("demo")
