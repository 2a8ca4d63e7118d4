"""`flyhpc wheelhouse DIR`: everything an offline node needs from outside, so that `pip install --no-index
--find-links DIR` and the kit's builds (`scripts/gpu-proof.sh`) run there without a network.

For a target (`gpu-node`: the node of `flyhpc.node_facts`), per Python environment of the kit: the wheels of what the
node lacks (flyhpc's own requirements for the target Python, less `node_facts.NODE_PACKAGES`, plus what PyGeNN's build
and the Brian2CUDA environment need), fetched for the target's Python and platform with `pip download --no-deps`
(the lists are complete, so nothing is resolved against this machine's Python), and the source archives that must be
built there (`git archive` of GeNN 5.4.0 and NEST GPU d3be46f, from a local clone or a fresh one). Writes
`requirements-<env>.txt` per environment and `wheelhouse.json` (sizes, sha256, sources' commits). Never imports a
simulator. Entry points: `TARGETS`, `plan`, `build`, `verify`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

from flyhpc.errors import ConfigError, FlyhpcError
from flyhpc.files import sha256_file, write_json_atomic, write_text_atomic
from flyhpc.node_facts import NODE_PACKAGES

SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


@dataclass(frozen=True)
class Source:
    """A source tree that is built on the node: `git archive` of `ref` as <key>-<ref>.tar.gz (prefix <key>-<ref>/)."""

    key: str
    url: str
    ref: str

    @property
    def name(self) -> str:
        return f"{self.key}-{self.ref}"


@dataclass(frozen=True)
class Target:
    """What a kind of node gets: pip requirements per environment, and the sources built there."""

    name: str
    envs: Mapping[str, tuple[str, ...]]
    sources: tuple[Source, ...]
    note: str = ""


# PyGeNN 5.4's pyproject: setuptools>=61, pybind11, psutil, pkgconfig (build), numpy, psutil, setuptools (run).
PYGENN_BUILD = ("setuptools>=68", "wheel", "pybind11", "psutil", "pkgconfig")
# Brian2's and the Slurm client's own requirements that the node's list does not cover (small, pure Python).
SMALL_DEPS = ("cloudpickle", "typing_extensions", "pyparsing", "packaging")
# Brian2CUDA 1.0a7 needs Brian2 == 2.8.0, which needs NumPy < 2.4 (ndarray.ptp): its own venv
# (as scripts/bootstrap-sim-env.sh brian2cuda).
BRIAN2CUDA_ENV = ("brian2==2.8.0", "brian2cuda==1.0a7", "numpy<2.4", "setuptools>=68", "wheel")

TARGETS: dict[str, Target] = {
    "gpu-node": Target(
        name="gpu-node",
        envs={"main": (), "brian2cuda": BRIAN2CUDA_ENV},  # main: flyhpc's requirements, computed in `plan`
        sources=(Source("genn", "https://github.com/genn-team/genn.git", "5.4.0"),
                 Source("nest-gpu", "https://github.com/nest/nest-gpu.git", "d3be46f")),
        note="Brian2GeNN is left out: it needs Brian2 < 2.6 (no Python 3.12 wheel) and the NumPy 1 stack "
             "(numpy 1.26, pyarrow < 19, pandas 2: ~70 MB of wheels, over the ~50 MiB a node's trip allows)"),
}


def _markers(python: str) -> dict[str, str]:
    """Environment markers of the target: CPython `python` on Linux x86_64, no extra."""
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}


def flyhpc_requirements(python: str, setup_cfg: Path = SETUP_CFG) -> list[str]:
    """flyhpc's install_requires (the checkout's setup.cfg: what the node installs) whose markers hold for `python`."""
    import configparser

    from packaging.requirements import Requirement

    if not setup_cfg.is_file():
        raise ConfigError(f"wheelhouse: no {setup_cfg}: run it from a flyhpc checkout (the kit installs that checkout)")
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    env = _markers(python)
    out = []
    for raw in parser["options"]["install_requires"].splitlines():
        req = Requirement(raw) if raw.strip() else None
        if req is not None and (req.marker is None or req.marker.evaluate(env)):
            out.append(f"{req.name}{req.specifier}")
    return out


@dataclass(frozen=True)
class Plan:
    """The requirements of each environment and the sources, for one target and Python."""

    target: str
    python: str
    envs: dict[str, list[str]] = field(default_factory=dict)
    sources: tuple[Source, ...] = ()


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower().replace("_", "-")


def plan(target: str = "gpu-node", python: str = "3.12") -> Plan:
    """The wheelhouse of `target`: main = flyhpc's requirements the node lacks + PyGeNN's build + small deps."""
    if target not in TARGETS:
        raise ConfigError(f"wheelhouse: unknown target {target!r}; known: {', '.join(TARGETS)}")
    if python != "3.12":
        raise ConfigError(f"wheelhouse: target {target!r} is planned for Python 3.12 (node_facts), got --python {python}")
    spec = TARGETS[target]
    preinstalled = {n.lower() for n in NODE_PACKAGES}
    main = [r for r in flyhpc_requirements(python) if _name(r) not in preinstalled]
    main += [r for r in (*PYGENN_BUILD, *SMALL_DEPS) if _name(r) not in {_name(m) for m in main}]
    envs = {env: (main if env == "main" else list(reqs)) for env, reqs in spec.envs.items()}
    return Plan(target, python, envs, spec.sources)


class FetchFailed(FlyhpcError):
    """pip download or git could not get a file (network, index, a ref that does not exist): exit 4."""

    exit_code = 4


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if out.returncode:
        raise FetchFailed(f"wheelhouse: {' '.join(cmd)} exited {out.returncode}: {out.stderr.strip()[-800:]}")
    return out.stdout


def download_wheels(requirements: list[str], dest: Path, python: str) -> None:
    """`pip download` each requirement's wheel for `python` on manylinux x86_64, without resolving dependencies."""
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
          "--python-version", python, "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)],
          "--dest", str(dest), *requirements])


def bounded_node_deps(wheels: list[Path], python: str) -> list[str]:
    """Requirements of `wheels` on packages the node has (`NODE_PACKAGES`) with an upper bound or a pin: the node's
    version may fall outside it, so the wheelhouse carries a wheel that satisfies it (pip takes the node's if it
    does). Lower bounds alone are left to the node (its packages are recent)."""
    from packaging.requirements import Requirement

    node = {n.lower() for n in NODE_PACKAGES}
    out: dict[str, str] = {}
    for wheel in wheels:
        if wheel.suffix != ".whl":
            continue
        with zipfile.ZipFile(wheel) as whl:
            meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
            lines = whl.read(meta).decode("utf-8", "replace").splitlines()
        for line in lines:
            if not line.startswith("Requires-Dist:"):
                continue
            req = Requirement(line.split(":", 1)[1].strip())
            bounded = any(spec.operator in ("<", "<=", "==", "~=", "===") for spec in req.specifier)
            if req.name.lower() in node and bounded and (req.marker is None or req.marker.evaluate(_markers(python))):
                out[req.name.lower()] = f"{req.name.lower()}{req.specifier}"
    return sorted(out.values())


def archive_source(source: Source, dest: Path, git_dir: Path | None) -> dict:
    """<dest>/<name>.tar.gz from `git_dir` (a clone or bare mirror holding `ref`) or a fresh clone of the URL."""
    with tempfile.TemporaryDirectory(prefix="flyhpc-src-") as tmp:
        repo = git_dir
        if repo is None:
            repo = Path(tmp) / "repo.git"
            _run(["git", "clone", "--quiet", "--bare", "--filter=blob:none", source.url, str(repo)])
        commit = _run(["git", "-C", str(repo), "rev-parse", "--verify", f"{source.ref}^{{commit}}"]).strip()
        out = dest / f"{source.name}.tar.gz"
        _run(["git", "-C", str(repo), "archive", "--format=tar.gz", f"--prefix={source.name}/", "-o", str(out), commit])
    return {"url": source.url, "ref": source.ref, "commit": commit, "file": out.name}


def build(out_dir: Path, the_plan: Plan, git_dirs: Mapping[str, Path] | None = None,
          log: Callable[[str], None] = print) -> dict:
    """Fill `out_dir` (downloads into a temporary folder beside it, then moves the files in) and write its
    requirements files and wheelhouse.json; returns the manifest. A rerun replaces the files it lists."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    git_dirs = dict(git_dirs or {})
    unknown = set(git_dirs) - {s.key for s in the_plan.sources}
    if unknown:
        raise ConfigError(f"wheelhouse: --source names {', '.join(sorted(unknown))}; sources: "
                          f"{', '.join(s.key for s in the_plan.sources)}")
    files: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix=".wheelhouse-", dir=out_dir) as tmp:
        for env, reqs in the_plan.envs.items():
            log(f"wheelhouse: {env}: pip download {' '.join(reqs)}")
            before = set(Path(tmp).iterdir())
            download_wheels(reqs, Path(tmp), the_plan.python)
            bounded = bounded_node_deps(sorted(set(Path(tmp).iterdir()) - before), the_plan.python)
            if bounded:  # e.g. Brian2 2.10's cython < 3.1.4: the node's own cython may be newer
                log(f"wheelhouse: {env}: the node's packages, in the versions these wheels accept: {' '.join(bounded)}")
                download_wheels(bounded, Path(tmp), the_plan.python)
            for path in sorted(set(Path(tmp).iterdir()) - before):
                files[path.name] = {"kind": "wheel", "env": env}
            write_text_atomic(out_dir / f"requirements-{env}.txt", "\n".join(reqs) + "\n")
        sources = {}
        for source in the_plan.sources:
            git_dir = git_dirs.get(source.key)
            log(f"wheelhouse: {source.name}: git archive {source.ref} from {git_dir or source.url}")
            sources[source.key] = archive_source(source, Path(tmp), git_dir)
            files[sources[source.key]["file"]] = {"kind": "source", "env": "build"}
        for name, entry in files.items():
            src = Path(tmp) / name
            entry.update(bytes=src.stat().st_size, sha256=sha256_file(src))
            shutil.move(str(src), out_dir / name)
    manifest = {"target": the_plan.target, "python": the_plan.python, "platforms": list(PLATFORMS),
                "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "envs": the_plan.envs, "sources": sources, "files": files,
                "total_bytes": sum(f["bytes"] for f in files.values()),
                "note": TARGETS[the_plan.target].note}
    write_json_atomic(out_dir / "wheelhouse.json", manifest)
    return manifest


def verify(folder: Path) -> list[str]:
    """What is wrong with a wheelhouse folder: files listed in wheelhouse.json that are missing or differ."""
    manifest = json.loads((Path(folder) / "wheelhouse.json").read_text())
    problems = []
    for name, entry in manifest["files"].items():
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: differs from wheelhouse.json (sha256)")
    return problems
