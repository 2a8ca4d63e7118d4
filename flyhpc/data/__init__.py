"""The connectome data: FlyWire files and where they come from, the synthetic generator, loading into CSR.

Modules: `connectome` (load, CSR, cache), `sources` (which files a run uses), `synthetic` (the
calibrated generator), `fetch` (download and verify the upstream files).
"""
