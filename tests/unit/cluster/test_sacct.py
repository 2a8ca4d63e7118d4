"""sacct output parsing: array ids, pending ranges, states mapped onto flyhpc's words.
"""

from __future__ import annotations

from pathlib import Path


from flyhpc.cluster import sacct

REPO = Path(__file__).resolve().parents[3]
SEED_TOTALS_S = {  # seed-spec 6.1, totals with spike I/O: (t_run, n_run) -> seconds
    "brian2cpp": {(0.1, 1): 4.542, (100, 1): 293.9, (0.1, 32): 28.09, (100, 32): 4283.7, (10, 32): 451.2},
    "brian2cuda": {(0.1, 1): 31.80, (100, 1): 389.9, (0.1, 32): 327.1, (100, 32): 12298, (10, 32): 1503.1},
    "pytorch": {(0.1, 1): 3.194, (100, 1): 1007.4, (0.1, 32): 19.52, (100, 32): 18539, (10, 32): 1859.6},
    "nestgpu": {(0.1, 1): 5.926, (100, 1): 112.3, (0.1, 32): 187.3, (100, 32): 3830.7, (10, 32): 549.7},
    "genn": {(0.1, 1): 15.55, (100, 1): 70.84, (0.1, 32): 17.49, (100, 32): 2482.5, (10, 32): 262.8},
    "brian2genn": {(0.1, 1): 32.49, (100, 1): 235.5, (0.1, 32): 996.2, (100, 32): 7464.8, (10, 32): 1630.3},
}


def test_sacct_parse_arrays_and_states():
    text = "\n".join([
        "101_0|COMPLETED|0:0|00:00:03|vm|None",
        "101_1|CANCELLED by 0|0:15|00:00:02|vm|None",
        "101_2|TIMEOUT|0:0|00:01:05|vm|None",
        "101_3|OUT_OF_MEMORY|0:125|00:00:01|vm|None",
        "101_4|RUNNING|0:0|00:00:01|vm|None",
        "101_[5-7,9%2]|PENDING|0:0|00:00:00|None assigned|JobArrayTaskLimit",
        "101_4.batch|RUNNING|0:0|00:00:01|vm|",
        "102|FAILED|1:0|00:00:01|vm|NonZeroExitCode",
    ])
    states = sacct.parse(text)
    assert {k: v.category for k, v in states.items()} == {
        "101_0": "done", "101_1": "cancelled", "101_2": "timeout", "101_3": "out-of-memory", "101_4": "running",
        "101_5": "pending", "101_6": "pending", "101_7": "pending", "101_9": "pending", "102": "failed"}
    assert states["101_6"].reason == "JobArrayTaskLimit"
    assert sacct.category("REQUEUED") == "pending" and sacct.category("NODE_FAIL") == "failed"
    assert sacct.category("") == "missing"
