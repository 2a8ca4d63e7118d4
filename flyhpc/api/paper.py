"""The paper's published numbers beside ours, for the experiments the paper published a number for.

An experiment matches a published point (`flyhpc.presets.PUBLISHED`) when it does exactly what the paper's run
did: `Experiment.digest()` of the preset's neurons at the published rate with the published neurons silenced the
paper's way (outgoing). Reads nothing and runs nothing; the callers (`RunResult.paper`, `ScreenResults.paper`) say
how to get our rate of a neuron. Entry points: `published_for`, `beside_paper`, `PAPER_COLUMNS`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from flyhpc.model import PRESETS, Experiment
from flyhpc.presets import PAPER_REPO, PUBLISHED, READOUTS, Published

PAPER_COLUMNS = ("experiment", "neuron", "flywire_id", "paper_hz", "ours_hz", "paper_source", "note")


def _digest(point: Published) -> str:
    exp = PRESETS[point.preset]
    return Experiment(name="paper", activate=exp.activate, rate_hz=point.rate_hz, silence=point.silence,
                      silence_mode="outgoing").digest()


def published_for(experiment: Experiment) -> list[Published]:
    """The published points `experiment` reproduces (the same neurons, rate and silencing as the paper's run)."""
    digest = experiment.digest()
    return [p for p in PUBLISHED if _digest(p) == digest]


def beside_paper(items: Sequence[tuple[Experiment, str, Callable[[int], float]]], *, synthetic: bool,
                 connectome: str) -> pd.DataFrame:
    """One row per (experiment, published number): (experiment, its label, our rate of a FlyWire id) items in,
    `PAPER_COLUMNS` out; empty when none of the experiments has a published number."""
    note = (f"paper: FlyWire v630, Brian2, 30 x 1 s ({PAPER_REPO}); ours: {connectome}"
            + (" — SYNTHETIC connectome: the comparison means nothing biologically" if synthetic else ""))
    rows = []
    for experiment, label, ours in items:
        for point in published_for(experiment):
            fid = READOUTS[point.neuron]
            rows.append({"experiment": label, "neuron": point.neuron, "flywire_id": fid,
                         "paper_hz": round(point.rate_hz_paper, 4), "ours_hz": ours(fid),
                         "paper_source": point.source, "note": note})
    return pd.DataFrame(rows, columns=list(PAPER_COLUMNS))
