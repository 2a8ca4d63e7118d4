"""The bundle's file formats and their readers, in one package: what a result file holds and how it is read.

`states` (task states and record statuses, declared once), `records` (the task record: its fields, reading it,
judging a task from its files), `parquet` (the one parquet writer and opener), `spikes` (the spike table, its
parquet schema, writer and rates), `spike_stream` (a spike parquet written while the trials run), `spike_files`
(reading spike parquets in batches and per trial), `screen_tables` (a screen's chunk and merged tables), `tables`
(reading and upserting CSV files, effects.csv), `manifest` (the rows and columns of benchmark-results.csv and manifest.csv). Writes nothing but what a caller hands it;
imports no backend, no Slurm and no task kind, so every layer above (the run pipeline, the worker, status,
collect, verify, report, compare) reads results through it.
"""
