"""`flyhpc report`: one self-contained HTML page, figures and tables from a collected result bundle.

Modules, one job each: `label` reads a collected label (manifest, results CSV, records, submission),
`references` reads what is shown beside it (another label, a seed-schema CSV, the paper's examples),
`scan` streams spike parquets into bounded summaries, `speed`/`parity`/`activity`/`paper` turn those
into tables, `figures` draws them with matplotlib, `page` writes the HTML, `build` runs it all and
writes `results/<label>/report/` atomically. Never re-runs a task. Entry point: `build.build_report`.
"""
