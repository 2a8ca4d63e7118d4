"""Everything about running tasks on a scheduler: the only package that imports submitit.

Modules: `profiles` (cluster profiles), `submission` (a label's submission.json: planned tasks and
identity), `slurm` (plan, submit, resubmit, cancel, wait), `executors` (submitit executors and the
job side), `sacct` (scheduler states), `status` (the one decision about a task's state),
`job_signals` (what Slurm's signals mean to a running task). Imports no simulator.
"""
