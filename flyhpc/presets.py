"""The paper's experiments by name: its neuron sets (FlyWire v783 ids), the rates it used, and its published numbers.

Facts from Shiu et al. (2024)'s repository (github.com/philshiu/Drosophila_brain_model at `PAPER_COMMIT`): each
`NeuronSet` names the notebook cell its ids come from and the rates the paper drove it at. The paper ran FlyWire
v630; a root id that FlyWire changed by v783 is replaced by its v783 successor (`successors`, each with where the
mapping comes from), so every id here is in the packaged v783 id list (tests/unit/test_presets.py). `READOUTS`
are the paper's readout neurons; `PUBLISHED` are numbers the paper's own example outputs give (MN9's rate, measured
from the sha256-pinned files of `flyhpc.paper_examples`), which `flyhpc.api` shows beside ours. Pure data; imports
nothing of flyhpc. Entry points: `NeuronSet`, `NEURON_SETS`, `READOUTS`, `MN9`, `Published`, `PUBLISHED`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAPER_REPO = "philshiu/Drosophila_brain_model"
PAPER_COMMIT = "91bdd1e7dcf193f3e7ca5a8933497fcef63b7960"
_CAVE = ("v783 successor of the paper's v630 id (FlyWire CAVE chunkedgraph get_latest_roots at the v783 "
         "timestamp, same cell type; as recorded by a third-party port of the paper)")


def _sweep(first_hz: int, last_hz: int, step_hz: int) -> tuple[float, ...]:
    """The rates of one of the paper's sweeps, `first_hz` to `last_hz` inclusive."""
    return tuple(float(f) for f in range(first_hz, last_hz + 1, step_hz))


@dataclass(frozen=True)
class NeuronSet:
    """One of the paper's activation sets.

    `ids` are FlyWire v783 root ids; `rate_hz` the rate a preset drives them at (`rate_source` says why that
    one), `rates_hz` every rate the paper swept them over; `source` the file and cell of the paper's repository
    holding the (v630) list; `successors` {v630 id: v783 id} where FlyWire changed an id, with `successor_source`.
    """

    key: str
    name: str
    ids: tuple[int, ...]
    rate_hz: float
    rates_hz: tuple[float, ...]
    source: str
    rate_source: str
    successors: dict[int, int] = field(default_factory=dict)
    successor_source: str = ""


MN9 = 720575940660219265  # the paper's readout of proboscis extension: the same root id in v630 and v783
READOUTS: dict[str, int] = {
    "MN9": MN9,  # figures.ipynb Figure 1 E / 3 / 4 `id_mn9`; example.ipynb `id_mn9`
    "MN9 (other side)": 720575940618238523,  # Figure 2 `ids_mn9`[1], v630 720575940645521262 (see _CAVE)
}

_SUGAR = NeuronSet(
    key="sugar", name="Sugar GRNs (200 Hz)",
    ids=(720575940624963786, 720575940630233916, 720575940637568838, 720575940638202345, 720575940617000768,
         720575940630797113, 720575940632889389, 720575940621754367, 720575940621502051, 720575940640649691,
         720575940639332736, 720575940616885538, 720575940639198653, 720575940639259967, 720575940617937543,
         720575940632425919, 720575940633143833, 720575940612670570, 720575940628853239, 720575940629176663,
         720575940611875570),
    rate_hz=200.0, rates_hz=_sweep(10, 200, 10),
    source="figures.ipynb Figure 1 D `neu_sugar` (right labellar sugar GRNs; example.ipynb `neu_sugar`)",
    rate_source="Figure 1 D ranks the responding neurons at 200 Hz (`sugarR_200Hz`); example.ipynb `sugarR`",
    successors={720575940620900446: 720575940639259967},
    successor_source="the seed project's v783 list (reference/seed-spec.md §1.6)")

_BITTER = NeuronSet(
    key="bitter", name="Bitter GRNs (200 Hz)",
    ids=(720575940621778381, 720575940602353632, 720575940617094208, 720575940619197093, 720575940626287336,
         720575940619072513, 720575940627692048, 720575940630195909, 720575940646212996, 720575940610483162,
         720575940645743412, 720575940627578156, 720575940622298631, 720575940621008895, 720575940629146711,
         720575940610259370, 720575940610481370, 720575940619028208, 720575940614281266, 720575940613061118,
         720575940604027168),
    rate_hz=200.0, rates_hz=_sweep(0, 200, 20),
    source="figures.ipynb Figure 3 A `neu_bitter` (set 2 against the sugar GRNs)",
    rate_source="the top of Figure 3 A's sweep (0-200 Hz in 20 Hz steps)",
    successors={720575940618600651: 720575940619072513}, successor_source=_CAVE)

_IR94E = NeuronSet(
    key="ir94e", name="Ir94e GRNs (200 Hz)",
    ids=(720575940614211295, 720575940638218173, 720575940628832256, 720575940626016017, 720575940621375231,
         720575940612920386, 720575940614273292, 720575940628198503, 720575940626241636, 720575940619387814,
         720575940624604560, 720575940615274425, 720575940610683315, 720575940627265265, 720575940624079544,
         720575940629211607, 720575940615089369, 720575940631082124),
    rate_hz=200.0, rates_hz=_sweep(0, 200, 20),
    source="figures.ipynb Figure 3 B `neu_ir94e` (set 2 against the sugar GRNs)",
    rate_source="the top of Figure 3 B's sweep (0-200 Hz in 20 Hz steps)")

_WATER = NeuronSet(
    key="water", name="Water GRNs (260 Hz)",
    ids=(720575940612950568, 720575940631898285, 720575940606002609, 720575940612579053, 720575940622902535,
         720575940616177458, 720575940660292225, 720575940622486922, 720575940613786774, 720575940629852866,
         720575940625861168, 720575940613996959, 720575940617857694, 720575940644965399, 720575940625203504,
         720575940630553415, 720575940635172191, 720575940634796536),
    rate_hz=260.0, rates_hz=_sweep(20, 260, 20),
    source="figures.ipynb Figure 4 A `neu_water` (right labellar water GRNs)",
    rate_source="Figure 4 A ranks the responding neurons at 260 Hz (`waterR_260Hz`)")

_P9 = NeuronSet(
    key="p9", name="P9s forward walking (100 Hz)", ids=(720575940627652358, 720575940635872101),
    rate_hz=100.0, rates_hz=(100.0,),
    source="not in the paper's repository: the seed benchmark's EXPERIMENTS (reference/seed-spec.md §1.6)",
    rate_source="the seed benchmark's rate")

NEURON_SETS: dict[str, NeuronSet] = {s.key: s for s in (_SUGAR, _P9, _BITTER, _IR94E, _WATER)}

# Screens as the paper ran them (Figure 1 E and F): how many of the most sugar-responsive neurons, and the rates.
TOP_N = 200  # `id_top200`: the 200 neurons with the highest rate at sugar 200 Hz (Figure 1 D)
SUFFICIENCY_RATES_HZ = (25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 175.0, 200.0)  # Figure 1 E `freqs`
N_TRIALS, T_RUN_S = 30, 1.0  # model.py default_params: n_run 30, t_run 1000 ms


@dataclass(frozen=True)
class Published:
    """A number the paper's example outputs give: `neuron`'s mean rate over 30 trials of 1 s (spikes / 30),
    in the experiment that drives `preset` at `rate_hz` with `silence` silenced (outgoing, the paper's way)."""

    preset: str
    rate_hz: float
    silence: tuple[int, ...]
    neuron: str
    spikes: int
    source: str

    @property
    def rate_hz_paper(self) -> float:
        return self.spikes / (N_TRIALS * T_RUN_S)


# MN9's spikes in the paper's example outputs (results/example at PAPER_COMMIT, FlyWire v630, 30 x 1 s), counted
# from the files pinned in flyhpc.paper_examples. example.ipynb sets r_poi = 100 Hz before its silencing runs,
# so those ran at 100 Hz. Two of its three silenced neurons are sugar GRNs themselves (driven and silenced at
# once), which flyhpc refuses; the third is listed.
PUBLISHED: tuple[Published, ...] = (
    Published("sugar", 200.0, (), "MN9", 2798, "results/example/sugarR.parquet"),
    Published("sugar", 100.0, (), "MN9", 2011, "results/example/sugarR_100Hz.parquet"),
    Published("sugar", 100.0, (720575940622695448,), "MN9", 2135,
              "results/example/sugarR-720575940622695448.parquet"),
)
