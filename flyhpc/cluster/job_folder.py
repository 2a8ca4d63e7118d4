"""submitit's folder of a run label: private to the user, outside the results, checked at submit and in the job.

submitit keeps each job's pickled call (`<jobid>_submitted.pkl`), its sbatch script and its stdout/stderr
in one folder, and a job runs whatever pickle it finds there under its id. A results folder is often
group-writable (umask 002 in a project group), so this folder is never inside it: it is
`<private_dir>/<label>-<hash of the label folder's path>`, private_dir being the profile's key of that
name or `$XDG_CACHE_HOME/flyhpc/submitit` (`~/.cache/flyhpc/submitit`); compute nodes must see it, as
they see home. Folders made here are 0700; the folder is refused unless it is closed to everyone else
(mode 0700: then the modes of submitit's files in it do not matter) and nobody but you or root could
change a folder above it (`files.check_private_tree`). A job starts in `main`
(`python -m flyhpc.cluster.job_folder FOLDER` instead of submitit's `submitit.core._submit`), which
checks the folder and its pickle again before submitit loads it. Entry points: `folder_for`, `check`,
`guarded`, `main`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import stat
import sys
import time
from pathlib import Path
from typing import Any

from flyhpc.cluster.profiles import ClusterProfile
from flyhpc.errors import ConfigError
from flyhpc.files import check_private_tree

WHY = "let jobs load and run the pickles in it"


def default_base() -> Path:
    """Where the label folders go unless the profile says `private_dir`: the user's cache."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "flyhpc" / "submitit"


def folder_for(profile: ClusterProfile, results_root: str | Path, run_label: str) -> Path:
    """The label's submitit folder, made (0700) and checked.

    Raises
    ------
    ConfigError
        `private_dir` is not an absolute path, or someone but you or root could change the folder or a
        folder above it (naming it and the fix).
    """
    base = Path(profile.private_dir).expanduser() if profile.private_dir else default_base()
    if not base.is_absolute():
        raise ConfigError(f"profile {profile.name!r} ({profile.source}): private_dir {profile.private_dir!r} must "
                          "be an absolute path (or start with ~), on storage the compute nodes see")
    label_dir = (Path(results_root) / run_label).resolve()
    folder = base / f"{run_label}-{hashlib.sha256(str(label_dir).encode()).hexdigest()[:12]}"
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):  # made here: 0700 whatever the umask
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
    check(folder)
    return folder


def check(folder: Path) -> None:
    """Refuse a submitit folder that anyone but you could enter, or whose way there others could change.

    Raises
    ------
    ConfigError
        Naming the folder, its mode or owner, and the fix.
    """
    check_private_tree(folder, WHY)
    mode = stat.S_IMODE(os.stat(folder).st_mode)
    if mode & 0o077:
        raise ConfigError(f"refusing {folder}: others may enter it (mode {mode:o}), so they could change the job "
                          f"files in it, and flyhpc would {WHY}; fix with `chmod 700 {folder}`")


def _check_pickle(path: Path) -> None:
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigError(f"refusing {path}: not a plain file of yours (uid {st.st_uid}, mode "
                          f"{stat.S_IMODE(st.st_mode):o}{', a link' if stat.S_ISLNK(st.st_mode) else ''}), "
                          "and flyhpc would load and run it")


@functools.lru_cache(maxsize=None)
def guarded(executor: type) -> type:
    """A submitit executor class whose jobs start in `main` (the folder and pickle checked first)."""
    def command(self: Any) -> str:
        return " ".join([self.python, "-u -m", __name__, shlex.quote(str(self.folder))])

    return type(f"Checked{executor.__name__}", (executor,), {"_submitit_command_str": property(command)})


def _pickle_of(folder: Path) -> Path:
    """This job's pickle, as submitit's job side names it (waiting, as it does, for submit to move it there)."""
    import submitit

    os.environ["SUBMITIT_FOLDER"] = str(folder)  # what submitit's job side reads its paths from
    pickle = submitit.JobEnvironment().paths.submitted_pickle
    deadline = time.monotonic() + 60
    while not os.path.lexists(pickle) and time.monotonic() < deadline:
        time.sleep(1)
    return pickle


def main(argv: list[str] | None = None) -> None:
    """The job side: check the folder and this job's pickle, then let submitit load and run it."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit(f"usage: python -m {__name__} FOLDER")
    folder = Path(args[0])
    pickle = _pickle_of(folder)
    try:
        check(folder)
        _check_pickle(pickle)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"flyhpc: {exc}; this job stops without loading it", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    from submitit.core.submission import process_job

    process_job(folder)


if __name__ == "__main__":
    main()
