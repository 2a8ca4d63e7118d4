"""Adding a backend, as docs/DESIGN.md §6 describes it: one class and one registry line.

`ToyBackend` is the model contract as a plain numpy loop (one trial after another), written only with
the hooks (`probe`, `_build`, `_run`, `_collect`); `Backend` does the rest (probe before build, call
order, step counts, spikes cache). Registered from this module by one `REGISTRY` line, it appears in
the capability table, gets its display name and image, and passes every scenario of
tests/contract/test_backend_contract.py. `BrokenToyBackend` keeps input that arrives while a neuron is
refractory (the seed's mistake, DESIGN §1a) and must fail some of them, so these tests can fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from flyhpc import backends
from flyhpc.backends.base import Backend, BuildReport, Capabilities, Probe, RunReport, import_probe
from flyhpc.pipeline import framework_name
from flyhpc.check import mode_of
from flyhpc.cli.backends_cmd import capability_rows
from flyhpc.drive import Drive, TrialDrive
from flyhpc.errors import ConfigError
from flyhpc.images import image_name
from flyhpc.network import NetworkSpec
from flyhpc.results.spikes import SpikeTable
from tests.contract.conftest import CONTRACT_STEPS, contract_spec, hand_drive
from tests.contract.test_backend_contract import SCENARIOS, contract_runs_of

REPO = Path(__file__).resolve().parents[3]
TOY = f"{__name__}:ToyBackend"
BROKEN_TOY = f"{__name__}:BrokenToyBackend"


def simulate_trial(spec: NetworkSpec, n_steps: int, trial: TrialDrive, keep_refractory_input: bool) -> SpikeTable:
    """One trial of the contract's clock-driven schedule (DESIGN §1a), slot by slot, in u = v - v_0."""
    p, n = spec.params, spec.n_neurons
    a, b = p.decay_m, p.decay_s
    c = p.tau_s_ms / (p.tau_s_ms - p.tau_m_ms) * (b - a)
    pre, post, w = spec.pre_indices, np.asarray(spec.indices), np.asarray(spec.weights_mv, np.float64)
    ref = np.asarray(spec.refractory_steps, np.int64)
    u, g, last = np.zeros(n), np.zeros(n), np.full(n, -(10 ** 9), np.int64)
    kick_bounds = np.searchsorted(trial.steps, np.arange(n_steps + 1))
    fired: dict[int, np.ndarray] = {}
    steps, neurons = [], []
    for step in range(n_steps):
        free = step - last >= ref  # groups: refractory neurons are frozen (v and g)
        u[free], g[free] = a * u[free] + c * g[free], b * g[free]
        spiking = free & (u > p.v_th_mv - p.v_0_mv)  # thresholds
        takes_input = ~spiking if keep_refractory_input else free & ~spiking
        source = fired.pop(step - p.delay_steps, None)  # synapses: spikes of D steps ago, then kicks
        if source is not None:
            hit = source[pre]
            g += np.where(takes_input, np.bincount(post[hit], w[hit], minlength=n), 0.0)
        kicked = trial.neurons[kick_bounds[step]:kick_bounds[step + 1]]
        np.add.at(u, kicked[takes_input[kicked]], p.kick_mv)
        if spiking.any():  # resets
            u[spiking], g[spiking], last[spiking] = p.v_rst_mv - p.v_0_mv, 0.0, step
            fired[step] = spiking
            steps.append(np.full(int(spiking.sum()), step))
            neurons.append(np.flatnonzero(spiking))
    if not steps:
        return SpikeTable.from_arrays([], [], [])
    found = np.concatenate(steps)
    return SpikeTable.from_arrays(np.full(found.size, trial.trial), found, np.concatenate(neurons))


class ToyBackend(Backend):
    """The model contract in numpy, one trial after another: a whole backend is its hooks."""

    name: ClassVar[str] = "toy"
    caps: ClassVar[Capabilities] = Capabilities(
        device="cpu", batching="sequential", drive="events", precisions=("float64",), compiles=False,
        deterministic=True, image="flyhpc-toy", verified_here="yes", display_name="Toy (CPU)")
    keep_refractory_input: ClassVar[bool] = False

    def __init__(self, options=None, **kwargs):
        super().__init__(options, **kwargs)
        self._tables: list[SpikeTable] = []

    @classmethod
    def probe(cls) -> Probe:
        return import_probe("numpy")

    def _build(self, spec: NetworkSpec, n_steps: int, probe: Probe) -> BuildReport:
        return BuildReport(versions=probe.versions)

    def _run(self, drive: Drive) -> RunReport:
        self._tables = [simulate_trial(self._spec, drive.n_steps, t, self.keep_refractory_input)
                        for t in drive.trials]
        return RunReport(notes={"trials": str(drive.n_trials)})

    def _collect(self) -> SpikeTable:
        return SpikeTable.concat(self._tables)


class BrokenToyBackend(ToyBackend):
    """The toy with the seed's mistake: input arriving while a neuron is refractory is kept, not dropped."""

    name: ClassVar[str] = "brokentoy"
    keep_refractory_input: ClassVar[bool] = True


@pytest.fixture
def registered(monkeypatch):
    """The registry with the two toys added, as one line each in flyhpc/backends/__init__.py would."""
    monkeypatch.setattr(backends, "REGISTRY", {**backends.REGISTRY, "toy": TOY, "brokentoy": BROKEN_TOY})


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    """The contract runs of each toy, each got through the registry like any backend."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backends, "REGISTRY", {**backends.REGISTRY, "toy": TOY, "brokentoy": BROKEN_TOY})
        return {key: contract_runs_of(backends.get(key), tmp_path_factory.mktemp(key)) for key in ("toy", "brokentoy")}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__.removeprefix("test_"))
def test_toy_passes_every_contract_scenario(toy_runs, scenario):
    scenario(toy_runs["toy"])


def test_broken_toy_fails_the_refractory_scenarios(toy_runs):
    failed = set()
    for scenario in SCENARIOS:
        try:
            scenario(toy_runs["brokentoy"])
        except AssertionError:
            failed.add(scenario.__name__.removeprefix("test_"))
    assert {"input_while_refractory_is_dropped", "hand_trials_give_exactly_the_derived_spikes"} <= failed


def test_one_registry_line_is_all_the_rest_needs(registered):
    assert backends.get("toy") is ToyBackend and "toy" in backends.names()
    row = next(r for r in capability_rows(probe=True) if r["backend"] == "toy")
    assert row == {"backend": "toy", "device": "cpu", "batching": "sequential", "drive": "events",
                   "dtype": "float64", "image": "flyhpc-toy", "verified here": "yes", "available here": "yes"}
    assert framework_name("toy") == "Toy (CPU)" and framework_name("toy", "cuda:0") == "Toy (CPU)"
    assert image_name("toy") == "flyhpc-toy" and mode_of("toy", gpu=False) == ("cpu", {})
    assert framework_name("pytorch", "cuda:0") == "PyTorch (CUDA)" and framework_name("pytorch") == "PyTorch (CPU)"
    assert framework_name("unregistered", "cuda:1") == "unregistered (CUDA)"


def test_the_base_class_owns_the_lifecycle(registered, tmp_path):
    spec = contract_spec()
    toy = backends.get("toy")(work_root=tmp_path)
    with pytest.raises(ConfigError, match=r"backend 'toy': run\(\) called before build\(\)"):
        toy.run(hand_drive(CONTRACT_STEPS, {0: []}))
    with pytest.raises(ConfigError, match=r"backend 'toy': setup\(\) called before build\(\)"):
        toy.setup()
    with pytest.raises(ConfigError, match=r"backend 'toy': spikes\(\) called before run\(\)"):
        toy.spikes()
    with pytest.raises(ConfigError, match="n_steps must be >= 1, got 0"):
        toy.build(spec, 0)
    assert toy.build(spec, CONTRACT_STEPS).versions == {"numpy": np.__version__}
    with pytest.raises(ConfigError, match="drive has 10 steps but the build was made for 2000"):
        toy.run(hand_drive(10, {0: []}))
    with pytest.raises(ConfigError, match="the drive has no trial"):
        toy.run(hand_drive(CONTRACT_STEPS, {}))
    toy.run(hand_drive(CONTRACT_STEPS, {3: [(0, 3)]}))  # D3 has no targets; run sets up when the caller did not
    first = toy.spikes()
    assert toy.spikes() is first
    assert (first.trial.tolist(), first.step.tolist(), first.neuron.tolist()) == ([3], [1], [3])
    toy.close()
    toy.close()
    with pytest.raises(ConfigError, match="spikes\\(\\) called before run\\(\\)"):
        toy.spikes()
    with pytest.raises(ConfigError, match="run\\(\\) called before build\\(\\)"):
        toy.run(hand_drive(CONTRACT_STEPS, {0: []}))


@pytest.fixture
def found_toy(tmp_path, monkeypatch):
    """The toy declared by an installed package's entry point (group flyhpc.backends), as a plug-in backend
    would be, with two bad declarations beside it; the registry reloaded to find them, and restored after."""
    import importlib
    import sys

    dist = tmp_path / "site" / "flyhpc_toy-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flyhpc-toy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[flyhpc.backends]\ntoy = {TOY}\nToy2 = {TOY}\nnative = {TOY}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.reload(backends)
    yield
    monkeypatch.undo()
    sys.path[:] = [p for p in sys.path if p != str(tmp_path / "site")]
    importlib.reload(backends)


def test_design_6a_checklist_with_a_found_backend(found_toy, tmp_path, monkeypatch):
    """DESIGN §6a, item by item, for a backend another package declares."""
    from click.testing import CliRunner

    from flyhpc.cli.backends_cmd import backends as backends_command
    from flyhpc.cli.backends_cmd import readme_table, render_markdown, with_readme_table
    from flyhpc.cluster.profiles import load_profile
    from flyhpc.images import image_plan

    # 2. registration: found through the entry point; a bad key and a shadowing one are left out, named
    assert backends.get("toy") is ToyBackend and backends.names()[-1] == "toy"
    assert backends.REGISTRY["native"] == backends.BUILT_IN["native"]
    assert set(backends.rejected()) == {"Toy2", "native"}
    out = CliRunner().invoke(backends_command, [], env={"COLUMNS": "250"}).output
    assert "left out" in out and "'Toy2'" in out and "name of a built-in backend" in out, out
    # 1. the class alone gives the capability row, the framework name and the check's mode
    row = next(r for r in capability_rows() if r["backend"] == "toy")
    assert row["device"] == "cpu" and row["image"] == "flyhpc-toy" and framework_name("toy") == "Toy (CPU)"
    # 3. its image: a definition where flyhpc looks for one (here a site's config folder)
    (tmp_path / "config" / "apptainer").mkdir(parents=True)
    (tmp_path / "config" / "apptainer" / "flyhpc-toy.def").write_text("Bootstrap: docker\nFrom: debian:12\n")
    monkeypatch.setenv("FLYHPC_CONFIG", str(tmp_path / "config"))
    plan = image_plan("toy", out_dir=tmp_path / "sif")
    assert plan[-1].def_file == tmp_path / "config" / "apptainer" / "flyhpc-toy.def" and plan[-1].sif.name == "flyhpc-toy.sif"
    # 4. site profiles need no table: the example site's [default] asks for a GPU, the CPU toy gets none
    site = load_profile("example-site")
    assert "toy" not in site.backends and site.default.gpus == 1 and site.resources("toy").gpus == 0
    assert site.resources("toy").cpus == site.default.cpus
    # 5. generated docs: the README table gains the toy's row
    readme = with_readme_table((REPO / "README.md").read_text(), render_markdown())
    assert "| toy | cpu | sequential | events | float64 | flyhpc-toy | yes |" in readme_table(readme)
