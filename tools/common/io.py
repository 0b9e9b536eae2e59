"""Files written so that a kill leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from drivestack.common.errors import InputError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends without an
    error, deleted when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_writable(folder: str | Path) -> Path:
    """Make ``folder`` (and its parents) and check that a file can be written in it, before a job starts
    its work; an :class:`InputError` naming the folder otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"{folder}: cannot write there ({e.strerror or e})") from None
    return folder


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented strict JSON (no NaN) to ``path`` atomically."""
    write_atomic(path, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode())


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def software_version() -> str:
    """The installed drivestack version ("0.0.0" when it runs from a source tree that is not installed)."""
    try:
        return importlib.metadata.version("drivestack")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"
