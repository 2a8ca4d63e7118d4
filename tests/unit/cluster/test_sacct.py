"""sacct output parsing: array ids, pending ranges, states mapped onto flyhpc's words.
"""

from __future__ import annotations



from flyhpc.cluster import sacct


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
