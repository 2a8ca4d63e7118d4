"""Backend registry: key -> "module:Class", imported on demand so `--help` loads no simulator.

Entry points: `REGISTRY`, `names`, `get`, `result_options`. An unknown key raises `UnknownBackendError` listing the
known ones; a backend whose module cannot be imported raises `BackendUnavailable` with the reason.
"""

from __future__ import annotations

import importlib

from flyhpc.errors import BackendUnavailable, UnknownBackendError

REGISTRY: dict[str, str] = {
    "brian2cpp": "flyhpc.backends.brian2.cpp:Brian2CppBackend",
    "pytorch": "flyhpc.backends.pytorch:PyTorchBackend",
    "native": "flyhpc.backends.native.backend:NativeBackend",
    "brian2cuda": "flyhpc.backends.brian2.cuda:Brian2CudaBackend",
    "genn": "flyhpc.backends.genn:GeNNBackend",
    "nestgpu": "flyhpc.backends.nestgpu.backend:NestGpuBackend",
    "brian2genn": "flyhpc.backends.brian2.genn:Brian2GeNNBackend",
}


def names() -> list[str]:
    """Every registered backend key, in registry order."""
    return list(REGISTRY)


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
