"""Planning arrays without a cluster: backend options travel with planned tasks, and an array's sbatch
parameters pass submitit's own check and render the expected lines.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from flyhpc.errors import ConfigError
from flyhpc.cluster.profiles import load_profile, profile_from_dict


def test_backend_options_are_checked_and_travel_with_planned_tasks(tmp_path):
    from flyhpc import kinds
    from flyhpc.cluster import slurm
    from flyhpc.tasks import BenchmarkTask

    prof = profile_from_dict({"backends": {"genn": {"cpus": 2, "options": {"genn_backend": "single_threaded_cpu"}}}},
                             "t", "t.toml")
    assert prof.resources("genn").cpus == 2 and prof.backend_options("genn") == {"genn_backend": "single_threaded_cpu"}
    assert prof.backend_options("pytorch") == {}
    for table, message in ((["cuda"], "must be a table"), ({"genn_backend": "opencl"}, "genn_backend"),
                           ({"backend": "cuda"}, "no option 'backend'; its options: device_id, genn_backend")):
        with pytest.raises(ConfigError, match=r"t.toml \[backends.genn.options\]:? .*" + message):
            profile_from_dict({"backends": {"genn": {"options": table}}}, "t", "t.toml")
    with pytest.raises(ConfigError, match="unknown backend 'gen'"):
        profile_from_dict({"backends": {"gen": {"options": {}}}}, "t", "t.toml")

    tasks = [BenchmarkTask("opt", 1, b, "sugar", 0.1, 1, 0, "synthetic", "", str(tmp_path)) for b in ("genn", "pytorch")]
    planned = {t.backend: t for a in slurm.plan(tasks, prof).arrays for t in a.tasks}
    assert planned["genn"].backend_options == (("genn_backend", "single_threaded_cpu"),)
    assert planned["pytorch"].backend_options == ()
    again = kinds.task_from_dict(json.loads(json.dumps(dataclasses.asdict(planned["genn"]))))
    assert again == planned["genn"] and again.name == tasks[0].name
    assert again.key != tasks[0].key  # genn_backend changes results: part of the key


def test_slurm_parameters_render_through_submitit(tmp_path):
    """The parameters of an array pass submitit's own check and produce the expected sbatch lines."""
    from submitit.slurm.slurm import _make_sbatch_string

    from flyhpc.cluster import executors, slurm
    from flyhpc.tasks import BenchmarkTask

    prof = load_profile("example-site")
    task = BenchmarkTask("lab", 1, "genn", "sugar", 0.1, 1, 0, "synthetic", "", str(tmp_path))
    arr = slurm.ArrayPlan("genn", prof.resources("genn"), 60, prof.image_path("genn"), (task,))
    params = executors.slurm_parameters(prof, arr, "demo")
    assert params["job_name"] == "flyhpc.demo.genn"  # cancel matches the label's job names
    python = executors.python_command(prof, arr, ["/results"])
    assert python.startswith("apptainer exec --nv --cleanenv --bind /project/flybrain,/scratch,/results ")
    assert python.endswith("/project/flybrain/images/flyhpc-genn.sif python")
    script = _make_sbatch_string(command=f"{python} -u -m flyhpc.cluster.job_folder {tmp_path}", folder=tmp_path,
                                 map_count=1200, **params)
    for line in ("#SBATCH --gres=gpu:1", "#SBATCH --time=60", "#SBATCH --partition=gpu", "#SBATCH --account=flybrain",
                 "#SBATCH --qos=normal", "#SBATCH --array=0-1199%20", "#SBATCH --constraint='a100|h100'",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=65536MB", "module load apptainer/1.3"):
        assert line in script, line
