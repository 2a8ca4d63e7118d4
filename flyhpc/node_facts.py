"""The facts of the GPU node the offline kit (`scripts/gpu-proof.sh`) is planned for, checked on the node itself.

The target (issue 20): one NVIDIA H100 (80 GB), 16 cores, 128 GB RAM, Linux x86_64, no network; Python 3.12 with
torch 2.11 (CUDA 13) and `NODE_PACKAGES` preinstalled; nvcc 13.0, cmake, ninja (and what our builds need: g++, make,
pkg-config with libffi, the CUDA driver stub and cuRAND). This module only looks (stdlib only, nothing imported from
flyhpc or a simulator) so that it runs before anything is installed: `python -m flyhpc.node_facts`. A fact either
stops the kit (it changes what the kit can do or its time estimate) or is a note (the kit does not depend on it).
Entry points: `check_facts`, `Fact`, `NODE_PACKAGES`, `main`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

# What the node's Python has (distribution name -> version prefix or "" for any); the wheelhouse leaves these out.
NODE_PACKAGES: dict[str, str] = {
    "torch": "2.11", "numba": "", "numba-cuda": "", "cupy": "", "numpy": "", "pandas": "", "pyarrow": "",
    "click": "", "rich": "", "matplotlib": "", "scipy": "", "sympy": "", "cython": "", "jinja2": "", "pytest": ""}
# What the node lacks and the kit brings or builds (informational when present: the kit's venvs pin their own).
NODE_MISSING = ("brian2", "brian2cuda", "brian2genn", "pygenn", "nestgpu")  # (+ the Slurm client: setup.cfg)
PYTHON = (3, 12)
N_CORES = 16
MIN_RAM_GIB = 110.0  # "128 GB": MemTotal of such a node is ~125 GiB; well below means another machine
MIN_GPU_GIB = 75.0  # an H100 80 GB shows ~79.6 GiB
MIN_FREE_DISK_GIB = 8.0  # venvs, PyGeNN and NEST GPU builds, the build roots of the checks
COMMAND_LIMIT_S = 600
WHEELHOUSE_LIMIT_MIB = 50.0


@dataclass(frozen=True)
class Fact:
    """One fact: what the plan assumes, what was found, and whether a difference stops the kit."""

    name: str
    target: str
    found: str
    ok: bool
    stops: bool = True


def _run(cmd: list[str], timeout: float = 20) -> str:
    """stdout (+stderr) of `cmd`, or "" when it is missing or fails."""
    if not shutil.which(cmd[0]):
        return ""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout + out.stderr) if out.returncode == 0 else ""


def installed() -> dict[str, str]:
    """{normalized distribution name: version} of this Python, in one pass over its path (a lookup per name rescans it)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name:
            found.setdefault(name, dist.version)
    return found


def _dist_version(name: str, dists: dict[str, str]) -> str | None:
    if name == "cupy":  # cupy comes as cupy-cuda13x (or -cuda12x): any of them
        cupy = sorted(n for n in dists if n.startswith("cupy"))
        return f"{cupy[0]} {dists[cupy[0]]}" if cupy else None
    return dists.get(name)


def gpu_facts(smi: Callable[[], str]) -> list[Fact]:
    """The GPU: exactly one, an H100 with >= 75 GiB, compute capability 9.0 (`nvidia-smi`)."""
    rows = [r.split(", ") for r in smi().strip().splitlines() if r.strip()]
    if not rows:
        return [Fact("GPU", "1 NVIDIA H100 80 GB (sm_90)", "none visible (no nvidia-smi, no driver or no device)", False)]
    found = "; ".join(f"{r[0]} {r[1] if len(r) > 1 else '?'} MiB sm_{r[2].replace('.', '') if len(r) > 2 else '?'}"
                      for r in rows)
    ok = len(rows) == 1 and "H100" in rows[0][0] and len(rows[0]) > 2 and \
        float(rows[0][1] or 0) / 1024 >= MIN_GPU_GIB and rows[0][2].strip() == "9.0"
    return [Fact("GPU", "1 NVIDIA H100 80 GB (sm_90)", found, ok)]


def _nvidia_smi() -> str:
    return _run(["nvidia-smi", "--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader,nounits"])


def machine_facts(meminfo: Path = Path("/proc/meminfo")) -> list[Fact]:
    """OS, cores, memory, and the network (a note: the kit never uses it)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    match = re.search(r"MemTotal:\s+(\d+) kB", meminfo.read_text()) if meminfo.is_file() else None
    ram_gib = int(match.group(1)) / 2**20 if match else 0.0
    # /proc/net/dev belongs to this process's network namespace (/sys/class/net is the host's under `unshare -n`)
    dev = Path("/proc/net/dev")
    links = [line.split(":")[0].strip() for line in (dev.read_text().splitlines()[2:] if dev.is_file() else [])]
    links = [name for name in links if name != "lo"]
    return [Fact("OS", "Linux x86_64", f"{platform.system()} {platform.machine()}",
                 platform.system() == "Linux" and platform.machine() == "x86_64"),
            Fact("CPU cores", f">= {N_CORES} (the build estimate assumes {N_CORES})", str(cores), cores >= N_CORES),
            Fact("memory", f">= {MIN_RAM_GIB:g} GiB (128 GB)", f"{ram_gib:.1f} GiB", ram_gib >= MIN_RAM_GIB),
            Fact("network", "none", "none (only lo)" if not links else "interfaces: " + ", ".join(sorted(links)),
                 not links, stops=False)]


def python_facts() -> list[Fact]:
    """This Python: 3.12, the preinstalled packages (torch 2.11 built for CUDA 13) and the missing ones."""
    facts = [Fact("Python", "3.12", platform.python_version(), sys.version_info[:2] == PYTHON)]
    dists = installed()
    for name, prefix in NODE_PACKAGES.items():
        version = _dist_version(name, dists)
        facts.append(Fact(f"package {name}", f"installed{' ' + prefix + '.x' if prefix else ''}", version or "missing",
                          version is not None and version.startswith(prefix)))
    torch_cuda = "missing"
    spec = importlib.util.find_spec("torch")  # finds the package without running it (importing torch takes seconds)
    if spec is not None and spec.origin:  # torch/version.py holds `cuda = '13.0'` (or None: a CPU build)
        version_py = Path(spec.origin).parent / "version.py"
        found = re.search(r"^cuda(?:: [^=]+)? = ['\"]?([0-9.]+|None)", version_py.read_text() if version_py.is_file()
                          else "", re.M)
        torch_cuda = found.group(1) if found else "unknown"
    facts.append(Fact("torch CUDA", "13.x", torch_cuda, torch_cuda.startswith("13")))
    for name in NODE_MISSING:
        version = _dist_version(name, dists)
        facts.append(Fact(f"package {name}", "absent (the kit installs or builds its own)",
                          version or "absent", version is None, stops=False))
    return facts


def tool_facts(cuda_path: str | None = None) -> list[Fact]:
    """nvcc 13.0, cmake, ninja, and what the builds need: g++, make, pkg-config + libffi, the driver stub, cuRAND."""
    nvcc = _run(["nvcc", "--version"])
    release = re.search(r"release ([0-9.]+)", nvcc)
    facts = [Fact("nvcc", "13.0", release.group(1) if release else "missing", bool(release)
                  and release.group(1) == "13.0")]
    for tool in ("cmake", "ninja", "g++", "make", "pkg-config"):
        where = shutil.which(tool)
        facts.append(Fact(tool, "on PATH", where or "missing", bool(where), stops=tool != "ninja"))
    ffi = bool(shutil.which("pkg-config")) and subprocess.run(["pkg-config", "--exists", "libffi"]).returncode == 0
    facts.append(Fact("libffi (pkg-config)", "found (PyGeNN's build reads it)", "found" if ffi else "missing", ffi))
    root = Path(cuda_path or os.environ.get("CUDA_PATH") or
                (Path(shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc").resolve().parent.parent))
    stub = next((p for p in (root / "lib64/stubs/libcuda.so", root / "lib/stubs/libcuda.so") if p.is_file()), None)
    facts.append(Fact("CUDA driver stub", "<toolkit>/lib64/stubs/libcuda.so (NEST GPU and GeNN link -lcuda)",
                      str(stub) if stub else f"none under {root} (scripts/cuda-overlay.sh makes a stand-in)",
                      stub is not None, stops=False))
    curand = (root / "include" / "curand.h").is_file() or bool(_pip_curand())
    facts.append(Fact("cuRAND", "in the toolkit or pip's nvidia-curand", "found" if curand else "missing", curand))
    return facts


def _pip_curand() -> list[Path]:
    """curand.h of pip's NVIDIA wheels on this Python's path (torch's CUDA build brings nvidia-curand)."""
    found: list[Path] = []
    for entry in map(Path, sys.path):
        found += sorted((entry / "nvidia").glob("*/include/curand.h")) if (entry / "nvidia").is_dir() else []
    return found


def disk_and_wheelhouse_facts(work: Path, wheelhouse: Path | None) -> list[Fact]:
    """Free disk where the kit builds; the wheelhouse: made for this target, complete, within ~50 MiB."""
    work.mkdir(parents=True, exist_ok=True)
    free_gib = shutil.disk_usage(work).free / 2**30
    facts = [Fact("free disk", f">= {MIN_FREE_DISK_GIB:g} GiB in {work}", f"{free_gib:.1f} GiB",
                  free_gib >= MIN_FREE_DISK_GIB)]
    if wheelhouse is None:
        return facts
    manifest = wheelhouse / "wheelhouse.json"
    if not manifest.is_file():
        return facts + [Fact("wheelhouse", f"{manifest} (flyhpc wheelhouse DIR --for gpu-node)", "missing", False)]
    data = json.loads(manifest.read_text())
    missing = [name for name in data.get("files", {}) if not (wheelhouse / name).is_file()]
    size_mib = sum(f["bytes"] for f in data.get("files", {}).values()) / 2**20
    facts += [Fact("wheelhouse target", "gpu-node, Python 3.12", f"{data.get('target')}, Python {data.get('python')}",
                   data.get("target") == "gpu-node" and data.get("python") == "3.12"),
              Fact("wheelhouse files", "all listed files present", "missing: " + ", ".join(missing) if missing
                   else f"{len(data.get('files', {}))} present", not missing),
              Fact("wheelhouse size", f"<= {WHEELHOUSE_LIMIT_MIB:g} MiB", f"{size_mib:.1f} MiB",
                   size_mib <= WHEELHOUSE_LIMIT_MIB, stops=False)]
    return facts


def plan_fact(step_limits_s: list[float], command_s: float) -> Fact:
    """The kit's own budget per command fits the node's 10-minute limit, every step fits into one command, and how
    many commands the steps' limits need at most (the kit starts no step that cannot finish: run it again)."""
    n_commands, used = 1, 0.0
    for limit in step_limits_s:
        if used + limit > command_s:
            n_commands, used = n_commands + 1, 0.0
        used += limit
    return Fact("step limits", f"budget <= {COMMAND_LIMIT_S} s per command, each step within it",
                f"budget {command_s:g} s; steps {sum(step_limits_s):g} s in all, longest {max(step_limits_s, default=0):g} s:"
                f" at most {n_commands} command(s)",
                command_s <= COMMAND_LIMIT_S and all(x <= command_s for x in step_limits_s))


def check_facts(work: Path, wheelhouse: Path | None, step_limits_s: list[float] | None = None,
                command_s: float = COMMAND_LIMIT_S, smi: Callable[[], str] = _nvidia_smi) -> list[Fact]:
    """Every fact of the target node, as found here."""
    facts = machine_facts() + gpu_facts(smi) + python_facts() + tool_facts() + \
        disk_and_wheelhouse_facts(work, wheelhouse)
    return facts + ([plan_fact(step_limits_s, command_s)] if step_limits_s else [])


def render(facts: list[Fact], rehearsal: bool) -> str:
    """One line per fact; a difference says whether it stops the kit (or, rehearsing, that the kit goes on)."""
    lines = []
    for f in facts:
        state = "ok" if f.ok else ("note" if not f.stops else "DIFFERS (rehearsal: going on)" if rehearsal
                                   else "DIFFERS: stop")
        lines.append(f"{state:<29} {f.name:<22} target: {f.target:<44} found: {f.found}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m flyhpc.node_facts --work DIR [--wheelhouse DIR] [--limits S,..] [--command-s S] [--rehearsal]
    [--json FILE]`:
    exit 0 when every stopping fact holds (always when rehearsing), 2 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m flyhpc.node_facts", description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="where the kit builds (free disk is checked there)")
    parser.add_argument("--wheelhouse", type=Path, default=None)
    parser.add_argument("--limits", default="", help="the step time limits of the kit, s (comma-separated, in order)")
    parser.add_argument("--command-s", type=float, default=COMMAND_LIMIT_S, help="the kit's own budget per command, s")
    parser.add_argument("--rehearsal", action="store_true", help="report differences and exit 0")
    parser.add_argument("--json", type=Path, default=None, help="also write the facts here")
    args = parser.parse_args(argv)
    limits = [float(x) for x in args.limits.split(",") if x.strip()]
    facts = check_facts(args.work, args.wheelhouse, limits, args.command_s)
    print(render(facts, args.rehearsal))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rehearsal": args.rehearsal, "facts": [asdict(f) for f in facts]}, indent=1))
    stopping = [f for f in facts if f.stops and not f.ok]
    if stopping and not args.rehearsal:
        print(f"node facts: {len(stopping)} fact(s) differ from the node the kit is planned for "
              f"({', '.join(f.name for f in stopping)}): stopping. Rehearse with --rehearsal.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
