"""Backend registry: key -> "module:Class", imported on demand so `--help` loads no simulator.

The registry is flyhpc's only list of backends; everything else (the capability table, images, report colours
and order, seed-order comparisons, profile resources) asks it. Built-in backends are listed here in the seed's
order (native last); other installed packages add theirs through the entry-point group `flyhpc.backends`
(`name = "package.module:Class"` in their packaging metadata), found when flyhpc starts. A found key must be
lower-case letters and digits (it names result files) and cannot replace a built-in; a bad one is left out and
named by `rejected()`. Entry points: `REGISTRY`, `names`, `get`, `result_options`, `rejected`, `ENTRY_POINT_GROUP`.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points

from flyhpc.errors import BackendUnavailable, UnknownBackendError

ENTRY_POINT_GROUP = "flyhpc.backends"
_KEY = re.compile(r"^[a-z][a-z0-9]*$")
BUILT_IN: dict[str, str] = {
    "brian2cpp": "flyhpc.backends.brian2.cpp:Brian2CppBackend",
    "brian2cuda": "flyhpc.backends.brian2.cuda:Brian2CudaBackend",
    "pytorch": "flyhpc.backends.pytorch:PyTorchBackend",
    "nestgpu": "flyhpc.backends.nestgpu.backend:NestGpuBackend",
    "genn": "flyhpc.backends.genn:GeNNBackend",
    "brian2genn": "flyhpc.backends.brian2.genn:Brian2GeNNBackend",
    "native": "flyhpc.backends.native.backend:NativeBackend",
}
_REJECTED: dict[str, str] = {}


def _found() -> dict[str, str]:
    """Backends other packages declare in the `flyhpc.backends` entry-point group (bad ones in `_REJECTED`)."""
    found = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in BUILT_IN:
            _REJECTED[point.name] = f"{point.value}: the name of a built-in backend"
        elif not _KEY.match(point.name):
            _REJECTED[point.name] = f"{point.value}: a backend key is lower-case letters and digits"
        else:
            found[point.name] = point.value
    return found


REGISTRY: dict[str, str] = {**BUILT_IN, **_found()}


def names() -> list[str]:
    """Every registered backend key, in registry order (built-ins in the seed's order, then found ones)."""
    return list(REGISTRY)


def rejected() -> dict[str, str]:
    """Entry points of the `flyhpc.backends` group that were left out, with the reason."""
    return dict(_REJECTED)


def result_options(name: str, values: dict) -> dict:
    """The options of backend `name` that change results (imports the backend only when options are given)."""
    if not values:
        return {}
    from flyhpc.backends.base import result_options as _filter

    return _filter(get(name), values)


def get(name: str):
    """The backend class registered as `name`."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UnknownBackendError(f"unknown backend {name!r}; known: {', '.join(REGISTRY)}") from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} cannot be imported here: {exc}") from exc
    return getattr(module, class_name)
