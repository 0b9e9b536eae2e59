"""The one resume check: a folder of results holds the work of one set of settings, so resuming it with
other settings (another model under the same file name, another simulator config) would mix two runs.
The recorder (its manifest) and the route runner (``driver.json``) refuse such a resume, naming the keys."""

from __future__ import annotations

from typing import Any


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def changed_settings(recorded: dict, wanted: dict, free: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ, apart from those under the top-level keys ``free`` (settings a
    resumed run may change, such as the number of workers)."""
    old, new = flatten(recorded), flatten(wanted)
    keys = {k for k in old.keys() | new.keys() if k.split(".")[0] not in free}
    return sorted(k for k in keys if old.get(k) != new.get(k))
