"""flyhpc: the whole-brain LIF model of the adult fruit fly (Shiu et al. 2024) on six simulators and on Slurm.

From Python, everything the command line does, with pandas objects back::

    import flyhpc
    r = flyhpc.run(experiment="sugar", n_run=4)             # spikes, rates, record; nothing written
    r.rates.head(); r.rate_of(flyhpc.MN9); r.save("results/runs")
    b = flyhpc.screen("sugar-necessity")                      # a screen here, collected: a Bundle
    b.screen.effects.head(); flyhpc.open_bundle("demo").benchmark

`run`, `connectome`, `open_bundle`, `screen` and their result classes live in `flyhpc.api` and are imported on
first use (PEP 562), so `import flyhpc` loads no simulator, no pandas and none of the package's higher layers;
`PRESETS` (the paper's neuron sets by name, `flyhpc.presets`), `MN9` and `errors` are here too. The package's
layers, lowest first, are drawn in docs/DESIGN.md §4 (scripts/import_layers.py).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it; loaded by __getattr__ on first use (scripts/import_layers.py LAZY_REEXPORTS).
_LAZY = {
    **{name: "flyhpc.api" for name in ("run", "RunResult", "connectome", "ConnectomeInfo", "open_bundle", "Bundle",
                                       "ScreenResults", "screen", "known_screens")},
    "PRESETS": "flyhpc.model", "MN9": "flyhpc.presets", "NEURON_SETS": "flyhpc.presets", "errors": "flyhpc.errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'flyhpc' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if name == "errors" else getattr(module, name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
