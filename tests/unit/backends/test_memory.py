"""The host memory a job may still fill (flyhpc/backends/memory.py), read from a made-up cgroup tree, Slurm's
variables and meminfo: the job's limit wins over the node's free memory."""

from __future__ import annotations

from flyhpc.backends import memory

GIB = 1 << 30


def _files(tmp_path, cgroup_lines: str, meminfo_gib: int = 200, rss_gib: int = 1):
    (tmp_path / "cgroup").write_text(cgroup_lines)
    (tmp_path / "meminfo").write_text(f"MemTotal: {512 << 20} kB\nMemAvailable:   {meminfo_gib << 20} kB\n")
    (tmp_path / "status").write_text(f"Name: python\nVmRSS:\t{rss_gib << 20} kB\n")
    return dict(root=tmp_path / "fs", proc_cgroup=tmp_path / "cgroup", meminfo=tmp_path / "meminfo",
                proc_status=tmp_path / "status")


def _level(path, **values):
    path.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (path / name.replace("_", ".", 1)).write_text(f"{value}\n")


def test_cgroup_v2_limit_is_the_tightest_level_less_its_usage(tmp_path):
    paths = _files(tmp_path, "0::/system.slice/slurmstepd.scope/job_7/step_0\n")
    job = tmp_path / "fs" / "system.slice" / "slurmstepd.scope" / "job_7"
    _level(job, memory_max=16 * GIB, memory_current=10 * GIB)  # the job: 6 GiB left
    _level(job / "step_0", memory_max="max", memory_current=9 * GIB)  # the step: no limit of its own
    _level(tmp_path / "fs" / "system.slice", memory_max=100 * GIB, memory_current=50 * GIB)
    assert memory.host_budget_bytes({}, **paths) == 6 * GIB  # not the node's 200 GiB
    _level(job, memory_max="max", memory_current=10 * GIB)
    assert memory.host_budget_bytes({}, **paths) == 50 * GIB


def test_cgroup_v1_and_a_container_that_sees_only_its_own_part(tmp_path):
    # /proc/self/cgroup names the host's path, the container's mount holds only its own cgroup as the root
    paths = _files(tmp_path, "4:memory:/slurm/uid_1/job_9/step_0\n3:cpuset:/\n")
    _level(tmp_path / "fs" / "memory", memory_limit_in_bytes=8 * GIB, memory_usage_in_bytes=3 * GIB)
    assert memory.host_budget_bytes({}, **paths) == 5 * GIB
    _level(tmp_path / "fs" / "memory", memory_limit_in_bytes=9223372036854771712, memory_usage_in_bytes=3 * GIB)
    assert memory.host_budget_bytes({}, **paths) == 200 * GIB  # unlimited: the node's MemAvailable bounds it


def test_slurm_allocation_where_no_cgroup_limit_is_visible(tmp_path):
    paths = _files(tmp_path, "0::/\n", rss_gib=1)
    assert memory.host_budget_bytes({"SLURM_MEM_PER_NODE": "4096"}, **paths) == 3 * GIB  # 4 GiB less 1 GiB resident
    env = {"SLURM_MEM_PER_CPU": "2048", "SLURM_CPUS_ON_NODE": "8"}  # MB per CPU x CPUs here
    assert memory.host_budget_bytes(env, **paths) == 15 * GIB
    assert memory.host_budget_bytes({"SLURM_MEM_PER_NODE": "0"}, **paths) == 200 * GIB  # --mem=0: the whole node
    assert memory.host_budget_bytes({"SLURM_MEM_PER_NODE": "lots"}, **paths) == 200 * GIB


def test_nothing_readable_is_none(tmp_path):
    assert memory.host_budget_bytes({}, root=tmp_path, proc_cgroup=tmp_path / "x", meminfo=tmp_path / "y",
                                    proc_status=tmp_path / "z") is None
