"""Pack the FlyWire v783 root ids into flyhpc/resources/flywire_783_root_ids.gz (how that file was made).

Usage: .venv/bin/python scripts/pack-flywire-ids.py PATH/TO/Completeness_783.csv [OUT]

Reads the ids with `flyhpc.data.connectome.read_completeness` (first column, file order = neuron index) and
writes them delta-encoded: little-endian int64 values (the first id, then each id minus the one
before), gzip-compressed with no file name and mtime 0 so the same CSV always gives the same bytes.
Prints the file's size and sha256: paste the sha256 into `flyhpc.data.synthetic.PACKAGED_IDS_SHA256`.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

from flyhpc.data.connectome import read_completeness
from flyhpc.files import atomic_path, sha256_file

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "flyhpc" / "resources" / "flywire_783_root_ids.gz"


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    ids = read_completeness(Path(argv[0]))
    out = Path(argv[1]) if len(argv) == 2 else DEFAULT_OUT
    deltas = np.diff(ids, prepend=np.int64(0)).astype("<i8")
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw,
                                                   mtime=0) as fh:
            fh.write(deltas.tobytes())
    print(f"{out}: {ids.size} ids, {out.stat().st_size} bytes, sha256 {sha256_file(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
