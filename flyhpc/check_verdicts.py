"""The verdicts of `flyhpc check` (issue 18): parity with native, and whether a GPU backend was verified on a GPU.

Parity compares two spike tables of the same seeded drive: spike-identical, or else the first difference named
and a statistical judgement trial by trial (count ratio, active-set Jaccard, rate Pearson r) against the seed's
own GeNN-vs-Brian2 levels, with the share of spikes matched within one step reported. Vectorised throughout (tens
of millions of spikes). Computes and renders; runs no simulator and writes nothing.
Entry points: `parity_metrics`, `first_difference`, `parity_markdown`, `parity_cell`, `gpu_verification`,
`no_gpu_reason`, `unverified_gpus`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from flyhpc.compare.metrics import compare_counts
from flyhpc.results.spikes import SpikeTable

SEED_PARITY = {"jaccard": 0.957, "pearson": 0.9997}  # the seed's GeNN vs Brian2 (seed-spec §5)
COUNT_TOLERANCE = {"total": 0.02, "trial": 0.05}  # |count ratio - 1|: a window read twice or trials mixed up fail
_CHUNK = 1 << 18  # rows compared or looked up at a time (bounded memory, cache-sized searches)


def first_difference(a: SpikeTable, b: SpikeTable) -> int | None:
    """Index of the first row where two sorted tables differ (the shorter one's length when one is a prefix of
    the other); None when they are identical. Compared a chunk at a time, so it stops early and stays small."""
    n = min(len(a), len(b))
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        diff = ((a.trial[lo:hi] != b.trial[lo:hi]) | (a.step[lo:hi] != b.step[lo:hi])
                | (a.neuron[lo:hi] != b.neuron[lo:hi]))
        hits = np.flatnonzero(diff)
        if hits.size:
            return lo + int(hits[0])
    return None if len(a) == len(b) else n


def _row(table: SpikeTable, index: int, dt_ms: float) -> dict | None:
    if index >= len(table):
        return None  # this side has no spike there: the other has more
    step = int(table.step[index])
    return {"trial": int(table.trial[index]), "step": step, "time_ms": round(step * dt_ms, 9),
            "neuron": int(table.neuron[index])}


def _matched_within_one_step(a: SpikeTable, b: SpikeTable, n_neurons: int) -> int:
    """How many spikes of `a` (one trial) have a spike of `b` (same trial) on the same neuron within +-1 step.

    Within a trial a table is sorted by (step, neuron), so (step + 1) * n_neurons + neuron is an already sorted
    key; the three neighbours of each key of `a` are looked up in `b`'s keys by binary search (no sort, no loop
    over spikes)."""
    if len(a) == 0 or len(b) == 0:
        return 0
    key_b = (b.step + 1) * n_neurons + b.neuron
    found = 0
    for lo in range(0, len(a), _CHUNK):
        key_a = (a.step[lo:lo + _CHUNK] + 1) * n_neurons + a.neuron[lo:lo + _CHUNK]
        # only the part of b's keys this chunk can reach: a short binary search that stays in cache
        first, last = np.searchsorted(key_b, [key_a[0] - n_neurons, key_a[-1] + n_neurons], side="left")
        near = key_b[first:last + 1]
        if near.size == 0:
            continue
        hit = np.zeros(key_a.size, bool)
        for shift in (0, -n_neurons, n_neurons):
            query = key_a + shift
            hit |= near[np.minimum(np.searchsorted(near, query), near.size - 1)] == query
        found += int(hit.sum())
    return found


def _ratio_ok(ratio: float | None, n_a: int, n_b: int, tolerance: float) -> bool:
    return n_a == n_b == 0 or (ratio is not None and abs(ratio - 1.0) <= tolerance)


def _trial(k: int, a: SpikeTable, b: SpikeTable, n_neurons: int, t_run_s: float) -> tuple[dict, list[str]]:
    """One trial's row (spikes, count ratio, Jaccard, rate r) and the reasons it fails (none when it passes)."""
    ca = np.bincount(a.neuron, minlength=n_neurons)
    cb = np.bincount(b.neuron, minlength=n_neurons)
    ids_a, ids_b = np.unique(a.neuron), np.unique(b.neuron)  # hashed: faster than a scan of every neuron's count
    m = compare_counts((ids_a, ca[ids_a]), (ids_b, cb[ids_b]), t_run_s, 1)
    silent = m.union == 0
    row = {"trial": k, "spikes_native": m.spikes_a, "spikes": m.spikes_b, "count_ratio": m.ratio,
           "jaccard": None if silent else m.jaccard, "pearson": m.pearson, "rmse_hz": m.rmse_hz}
    why = []
    if not _ratio_ok(m.ratio, m.spikes_a, m.spikes_b, COUNT_TOLERANCE["trial"]):
        why.append(f"trial {k}: {m.spikes_b} spikes vs native {m.spikes_a} (count ratio "
                   f"{'-' if m.ratio is None else f'{m.ratio:.4f}'}, allowed 1 ± {COUNT_TOLERANCE['trial']})")
    if not silent and m.jaccard < SEED_PARITY["jaccard"]:
        why.append(f"trial {k}: active-set Jaccard {m.jaccard:.4f} < {SEED_PARITY['jaccard']}")
    # r is undefined for < 2 shared neurons or equal rates everywhere: then the shared rates must agree exactly
    if not silent and (m.pearson < SEED_PARITY["pearson"] if m.pearson is not None else m.rmse_hz != 0.0):
        why.append(f"trial {k}: rate r {'-' if m.pearson is None else f'{m.pearson:.6f}'} < {SEED_PARITY['pearson']}")
    row["passed"] = not why
    return row, why


def parity_metrics(reference: SpikeTable, other: SpikeTable, t_run_s: float, n_run: int, dt_ms: float) -> dict:
    """`other` against `reference` (native) on the same seeded drive; both sorted by (trial, step, neuron).

    Returns
    -------
    dict
        identical; passed; verdict ("identical", "not identical; within the seed's parity" or "not identical;
        outside the seed's parity"); failures (one line each); first_difference (index and both sides' trial,
        step, time_ms, neuron; None when identical); spikes_native, spikes, count_ratio (total);
        matched_within_one_step (share of native's spikes); jaccard and pearson of the worst trial; trials (one
        row each); limits. It passes when identical, or when the total count ratio is within 1 ± 2 % and every
        trial's within 1 ± 5 %, with Jaccard >= 0.957 and rate r >= 0.9997.
    """
    index = first_difference(reference, other)
    n_neurons = 1 + max([int(t.neuron.max()) for t in (reference, other) if len(t)], default=-1)
    rows, failures, matched = [], [], 0
    for k in range(n_run):
        a, b = reference.of_trial(k), other.of_trial(k)
        row, why = _trial(k, a, b, n_neurons, t_run_s)
        rows.append(row)
        failures += why
        matched += len(a) if index is None else _matched_within_one_step(a, b, n_neurons)
    outside = len(other) - sum(r["spikes"] for r in rows)
    if outside:
        failures.append(f"{outside} spikes in trials outside 0..{n_run - 1}")
    ratio = len(other) / len(reference) if len(reference) else None
    if not _ratio_ok(ratio, len(reference), len(other), COUNT_TOLERANCE["total"]):
        failures.insert(0, f"{len(other)} spikes vs native {len(reference)} (count ratio "
                           f"{'-' if ratio is None else f'{ratio:.4f}'}, allowed 1 ± {COUNT_TOLERANCE['total']})")
    identical = index is None
    passed = identical or not failures
    pearsons = [r["pearson"] for r in rows if r["pearson"] is not None]
    jaccards = [r["jaccard"] for r in rows if r["jaccard"] is not None]
    return {"identical": identical, "passed": passed,
            "verdict": "identical" if identical else
            f"not identical; {'within' if passed else 'outside'} the seed's parity",
            "failures": [] if identical else failures,
            "first_difference": None if identical else {"index": index, "native": _row(reference, index, dt_ms),
                                                        "backend": _row(other, index, dt_ms)},
            "spikes_native": len(reference), "spikes": len(other), "count_ratio": ratio,
            "matched_within_one_step": matched / len(reference) if len(reference) else None,
            "jaccard": min(jaccards, default=None), "pearson": min(pearsons, default=None), "trials": rows,
            "limits": {**SEED_PARITY, "count_ratio_total": COUNT_TOLERANCE["total"],
                       "count_ratio_trial": COUNT_TOLERANCE["trial"]}}


def describe_difference(diff: dict | None) -> str:
    """'spike #i: native trial t, step s (x ms), neuron n; backend ...' (a missing side says 'none')."""
    if diff is None:
        return "none"

    def side(row):
        return "none" if row is None else f"trial {row['trial']}, step {row['step']} ({row['time_ms']:g} ms), " \
                                          f"neuron {row['neuron']}"
    return f"spike #{diff['index']}: native {side(diff['native'])}; backend {side(diff['backend'])}"


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def parity_markdown(part: dict) -> list[str]:
    """The Markdown lines of a report's parity part: one row per run, its first difference and failures, one row
    per trial, and the limits."""
    runs = part.get("runs") or []
    if not runs:
        return []
    lines = ["| n_run | spikes | native | ratio | matched ±1 step | worst J | worst rate r | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n_run']} | {r['spikes']} | {r['spikes_native']} | {_fmt(r['count_ratio'])} | "
              f"{_fmt(r['matched_within_one_step'])} | {_fmt(r['jaccard'])} | {_fmt(r['pearson'], 6)} | "
              f"{r['verdict']} |" for r in runs]
    notes = []
    for r in runs:
        if not r["identical"]:
            notes.append(f"- n_run {r['n_run']}: first difference at {describe_difference(r['first_difference'])}")
        notes += [f"- n_run {r['n_run']}: {why}" for why in r["failures"]]
    lines += ["", *notes, *([""] if notes else []),
              "| n_run | trial | spikes | native | ratio | Jaccard | rate r | ok |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n_run']} | {t['trial']} | {t['spikes']} | {t['spikes_native']} | {_fmt(t['count_ratio'])} | "
              f"{_fmt(t['jaccard'])} | {_fmt(t['pearson'], 6)} | {'yes' if t['passed'] else '**no**'} |"
              for r in runs for t in r["trials"]]
    return lines + ["", f"Passes when identical, or with total count ratio 1 ± {COUNT_TOLERANCE['total']}, each "
                        f"trial's 1 ± {COUNT_TOLERANCE['trial']}, Jaccard >= {SEED_PARITY['jaccard']} and rate r >= "
                        f"{SEED_PARITY['pearson']} in every trial (the seed's GeNN-vs-Brian2 levels).", ""]


def parity_cell(part: dict) -> str:
    """A report's parity in one table cell: 'n_run: verdict, worst J, worst r' per run, or the part's status."""
    return "; ".join(f"{x['n_run']}: {x['verdict']}, {_fmt(x['jaccard'])}, {_fmt(x['pearson'], 6)}"
                     for x in part.get("runs", [])) or part.get("status", "-")


def no_gpu_reason(env: Mapping[str, str] | None = None, root: Path = Path("/")) -> str:
    """Why no GPU is visible here: an Apptainer container started without --nv is named as the reason."""
    env = os.environ if env is None else env
    container = env.get("APPTAINER_CONTAINER") or env.get("SINGULARITY_CONTAINER")
    if container:
        # --nv binds the driver's libraries (libcuda.so ...) into /.singularity.d/libs; /dev is bound either way
        if not any((root / ".singularity.d" / "libs").glob("libcuda.so*")):
            return (f"inside the Apptainer container {container} started without --nv (no NVIDIA driver library "
                    "in /.singularity.d/libs)")
        if not any((root / "dev").glob("nvidia[0-9]*")):
            return f"inside the Apptainer container {container}: no /dev/nvidia* device (no GPU allocated?)"
    return "no GPU visible (nvidia-smi lists none)"


def gpu_verification(report: dict, env: Mapping[str, str] | None = None, root: Path = Path("/")) \
        -> tuple[bool, str | None]:
    """(gpu_verified, why not) of a finished report: true only for a GPU backend whose check passed on a GPU."""
    if report.get("device") == "cpu":
        return False, "a CPU backend"
    if report["status"] == "incomplete":
        return False, "the check has not finished (still running, or stopped by a time limit)"
    if report["status"] == "unavailable":
        return False, f"unavailable here ({report.get('reason')})" + \
            ("" if report.get("gpus") else f"; {no_gpu_reason(env, root)}")
    if report.get("mode") == "gpu":
        return (True, None) if report["status"] == "passed" else (False, "its check failed on the GPU")
    if report.get("gpus"):
        return False, f"{report.get('mode')}: the backend's options select its CPU code path"
    return False, f"{report.get('mode')}: {no_gpu_reason(env, root)}"


def unverified_gpus(reports: list[dict]) -> list[str]:
    """What makes `--require-gpu` fail: each checked GPU backend not verified on a GPU, or no GPU backend checked."""
    gpu = [r for r in reports if r.get("device") != "cpu"]
    if not gpu:
        return ["no GPU backend was checked"]
    return [f"{r['backend']}: not verified on a GPU: {r.get('gpu_reason')}" for r in gpu if not r.get("gpu_verified")]
