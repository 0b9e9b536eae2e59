"""drivestack: a camera-to-control driving stack. The Python API in a few names::

    import drivestack

    model = drivestack.load()                       # the shipped driving model (or a .pt / .onnx path)
    results = model.predict(rgb, speed=5.0)         # boxes, segmentation, path, target_speed; .plot()
    scores = drivestack.drive(model, routes=["r00_mixed_t2000"])   # leaderboard metrics per route
    with drivestack.make_simulator() as sim: ...    # the embedded simulator (or CARLA: SimConfig(backend="carla"))

The command line (``drivestack <verb> key=value``) runs the same functions. Names are imported on first
use, so ``import drivestack`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from drivestack.common.io import software_version

__version__ = software_version()

_API = {
    "load": "drivestack.planning.predict",
    "Model": "drivestack.planning.predict",
    "Results": "drivestack.planning.predict",
    "drive": "drivestack.planning.evaluation.drive",
    "SuiteResults": "drivestack.planning.evaluation.drive",
    "make_simulator": "drivestack.sim",
    "SimConfig": "drivestack.sim.settings",
    "Agent": "drivestack.sim.agent",
    "ExpertAgent": "drivestack.planning.agents.expert",
    "load_config": "drivestack.common.config",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'drivestack' has no attribute '{name}'")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
