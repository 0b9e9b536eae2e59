"""The files drivestack ships (configs/ and models/), found wherever the package is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SHIPPED = ("configs", "models")


def shipped_dir(name: str) -> Path:
    """The installed folder of ``configs`` or ``models``."""
    if name not in SHIPPED:
        raise ValueError(f"shipped_dir: name must be one of {SHIPPED}, got {name!r}")
    spec = importlib.util.find_spec(f"drivestack.{name}")
    return Path(next(iter(spec.submodule_search_locations)))


CONFIG_DIR = shipped_dir("configs")
MODEL_DIR = shipped_dir("models")


def resolve(path: str | Path) -> Path:
    """``path`` as given when it exists (or is absolute); else, for a relative ``configs/...`` or
    ``models/...`` path, the copy drivestack ships, so that the defaults work from any folder."""
    path = Path(path)
    if path.exists() or path.is_absolute() or not path.parts or path.parts[0] not in SHIPPED:
        return path
    shipped = shipped_dir(path.parts[0]).joinpath(*path.parts[1:])
    return shipped if shipped.exists() else path
