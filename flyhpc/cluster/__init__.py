"""Everything about running tasks on a scheduler: the only package that imports submitit.

Modules: `profiles` (cluster profiles), `submission` (a label's submission.json: planned tasks and
identity), `slurm` (plan, submit, resubmit, cancel, wait), `scheduler` (the interface: submit arrays,
job states, cancel) with `slurm_scheduler` and `local_scheduler`, chosen in `schedulers`, `executors`
(the job side and the sbatch parameters), `job_folder` (submitit's private folder), `sacct` (Slurm's
states), `status` (the one decision about a task's state), `job_signals` (what Slurm's signals mean to
a running task). Imports no simulator.
"""
