"""submitit's folder is private to the user and outside the results, and a job loads only a pickle that
nobody else could have written (flyhpc.cluster.job_folder). The real submitit LocalExecutor runs the job
through the checked entry point; a planted pickle is refused before it is loaded.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import submitit

from flyhpc.cluster import job_folder
from flyhpc.cluster.profiles import profile_from_dict
from flyhpc.errors import ConfigError
from flyhpc.files import check_private_tree


def _profile(private_dir: str):
    return profile_from_dict({"cluster": {"executor": "local", "private_dir": private_dir}}, "t", "t.toml")


@pytest.fixture
def umask_002():
    before = os.umask(0o002)  # a shared project group's umask: new folders are 775
    yield
    os.umask(before)


def test_the_folder_is_made_private_all_the_way_under_umask_002(tmp_path, umask_002):
    results = tmp_path / "results"
    (results / "lab").mkdir(parents=True)
    folder = job_folder.folder_for(_profile(str(tmp_path / "cache" / "flyhpc")), results, "lab")
    assert folder.parent == tmp_path / "cache" / "flyhpc" and folder.name.startswith("lab-")
    for made in (folder, folder.parent, folder.parent.parent):
        assert made.stat().st_mode & 0o777 == 0o700, made
    assert results not in folder.parents
    again = job_folder.folder_for(_profile(str(tmp_path / "cache" / "flyhpc")), results, "lab")
    other = job_folder.folder_for(_profile(str(tmp_path / "cache" / "flyhpc")), tmp_path / "elsewhere", "lab")
    assert again == folder and other != folder  # one folder per label folder, wherever its root is


def test_a_folder_others_could_change_is_refused(tmp_path, umask_002):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o775)
    with pytest.raises(ConfigError, match=r"shared is group/other-writable \(mode 775\).*chmod go-w"):
        job_folder.folder_for(_profile(str(shared / "mine")), tmp_path / "results", "lab")
    mine = job_folder.folder_for(_profile(str(tmp_path / "cache")), tmp_path / "results", "lab")
    mine.chmod(0o750)  # not writable by the group, but it may enter and open the files in it
    with pytest.raises(ConfigError, match=r"others may enter it \(mode 750\).*chmod 700"):
        job_folder.folder_for(_profile(str(tmp_path / "cache")), tmp_path / "results", "lab")
    with pytest.raises(ConfigError, match="must be an absolute path"):
        job_folder.folder_for(_profile("relative/dir"), tmp_path / "results", "lab")
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)  # like /tmp: fine when root owns it, others cannot rename what is yours
    if os.geteuid() == 0:
        check_private_tree(sticky, "test")
        os.chown(sticky, 65534, 65534)  # now someone else's
        with pytest.raises(ConfigError, match="owned by uid 65534"):
            check_private_tree(sticky, "test")
    link = tmp_path / "link"
    link.symlink_to(shared)
    with pytest.raises(ConfigError, match="group/other-writable"):
        check_private_tree(link, "test")  # a link's target is checked too


def _report(path):
    Path(path).write_text("ran\n")
    return "ok"


def test_a_local_job_runs_through_the_checked_entry_point(tmp_path):
    folder = job_folder.folder_for(_profile(str(tmp_path / "private")), tmp_path / "results", "lab")
    ex = job_folder.guarded(submitit.LocalExecutor)(folder=folder)
    assert ex._submitit_command_str.endswith(f"-u -m flyhpc.cluster.job_folder {folder}")
    job = ex.submit(_report, str(tmp_path / "ran"))
    assert job.result() == "ok" and (tmp_path / "ran").read_text() == "ran\n"
    slurm = job_folder.guarded(submitit.SlurmExecutor)(folder=folder, python="py")
    assert slurm._submitit_command_str == f"py -u -m flyhpc.cluster.job_folder {folder}"


class _Planted:
    """What a group member plants: unpickling it runs their code (here: it creates a file)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("swap", ["group-writable folder", "someone else's pickle", "a link"])
def test_the_job_side_refuses_a_swapped_pickle_without_loading_it(tmp_path, swap):
    folder = job_folder.folder_for(_profile(str(tmp_path / "private")), tmp_path / "results", "lab")
    marker = tmp_path / "planted-code-ran"
    pkl = folder / "77_submitted.pkl"
    if swap == "a link":
        (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
        pkl.symlink_to(tmp_path / "evil.pkl")
    else:
        pkl.write_bytes(pickle.dumps(_Planted(str(marker))))
    if swap == "group-writable folder":
        folder.chmod(0o770)
    elif swap == "someone else's pickle":
        if os.geteuid() != 0:
            pytest.skip("making a file someone else's needs root")
        os.chown(pkl, 65534, 65534)
    env = {**os.environ, "SUBMITIT_EXECUTOR": "local", "SUBMITIT_LOCAL_JOB_ID": "77", "SUBMITIT_LOCAL_GLOBALID": "0",
           "SUBMITIT_LOCAL_LOCALID": "0", "SUBMITIT_LOCAL_NTASKS": "1", "SUBMITIT_LOCAL_JOB_NUM_NODES": "1",
           "SUBMITIT_LOCAL_NODEID": "0", "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[3])])}
    out = subprocess.run([sys.executable, "-m", "flyhpc.cluster.job_folder", str(folder)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "this job stops without loading it" in out.stderr and "refusing" in out.stderr, out.stderr
    assert not marker.exists()  # the planted code never ran
