"""flyhpc from Python: everything the command line does, with pandas objects back (re-exported by `flyhpc`).

Thin over what the commands use: `run` (`flyhpc run`), `connectome` (the loader every run uses), `open_bundle`
(what `collect`, `verify` and `report` read), `screen` (`flyhpc screen submit --profile local`, then `collect`).
Entry points: `run`, `RunResult`, `connectome`, `ConnectomeInfo`, `open_bundle`, `Bundle`, `ScreenResults`,
`screen`, `known_screens`.
"""

from flyhpc.api.bundles import Bundle, ScreenResults, open_bundle, screen
from flyhpc.api.runs import ConnectomeInfo, RunResult, connectome, run
from flyhpc.screens.spec import known_screens

__all__ = ["Bundle", "ConnectomeInfo", "RunResult", "ScreenResults", "connectome", "known_screens", "open_bundle",
           "run", "screen"]
