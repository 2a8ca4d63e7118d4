"""`flyhpc report`: one self-contained HTML page, figures and tables from a collected result bundle.

Modules, one job each: `label` reads a collected label (manifest, results CSV, records, submission),
`references` what is shown beside it (another label, a seed-schema CSV, the paper's examples), `scan`
streams spike parquets into bounded summaries, `speed`/`parity`/`activity`/`paper` turn those into
numbers, `tables` formats them, `figures` draws them (matplotlib), `sections` words them, `page`
writes the HTML, and `build` runs it all into `results/<label>/report/`. Never re-runs a task.
Entry point: `build.build_report`.
"""
