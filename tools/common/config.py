"""Typed YAML configs: dataclasses filled from YAML files and ``key=value`` overrides, validated on load.

Every config in the project is a dataclass. :func:`load_config` reads a YAML file, applies dotted
overrides (``traffic.vehicles=30``) and builds the dataclass tree, checking every key and type. A bad
key or value raises :class:`ConfigError` naming the file, the dotted key and, for a typo, the nearest
valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from drivestack.common.errors import InputError
from drivestack.common.paths import resolve

T = TypeVar("T")


class ConfigError(InputError):
    """A config file or override that does not match its schema."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against type ``tp`` and convert it (dicts become dataclasses)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{source}: '{key}' = {value!r} matches none of {tp}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, source, prefix=key)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{source}: '{key}' must have {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        _, vt = typing.get_args(tp) or (Any, Any)
        return {k: _convert(v, vt, f"{key}.{k}", source) for k, v in value.items()}
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{source}: '{key}' must be one of {list(choices)}, got {value!r}")
        return value
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    if not isinstance(value, tp):
        raise ConfigError(f"{source}: '{key}' must be {_type_name(tp)}, got {value!r}")
    return value


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _on_top_of(base: Any, data: dict) -> dict:
    """``data`` over the init fields of dataclass instance ``base``, nested mappings merged the same way: a
    section that sets some keys keeps the enclosing config's defaults for the others (``policy.train`` keeps
    the policy's learning rate, not the generic trainer's)."""
    merged = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init}
    for key, value in data.items():
        current = merged.get(key)
        merged[key] = _on_top_of(current, value) if isinstance(value, dict) and dataclasses.is_dataclass(current) else value
    return merged


def _build(cls: type[T], data: dict, source: str, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{(prefix + '.') if prefix else ''}{near[0]}'?" if near else ""
            raise ConfigError(f"{source}: unknown key '{dotted}'{hint} (valid: {', '.join(fields)})")
        default = _default(fields[key])
        if isinstance(value, dict) and dataclasses.is_dataclass(default):
            value = _on_top_of(default, value)
        kwargs[key] = _convert(value, hints[key], dotted, source)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {prefix or cls.__name__}: {e}") from e
    return obj


def _parse_scalar(text: str) -> Any:
    """Parse an override value the way YAML would (``3`` -> int, ``true`` -> bool, ``[1,2]`` -> list)."""
    return yaml.safe_load(text) if text != "" else ""


def apply_overrides(data: dict, overrides: list[str] | dict[str, Any], source: str = "command line") -> dict:
    """Return a copy of ``data`` with dotted ``key=value`` overrides applied."""
    data = _deep_copy(data)
    items = overrides.items() if isinstance(overrides, dict) else (_split_override(o, source) for o in overrides)
    for dotted, value in items:
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def _split_override(text: str, source: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"{source}: override '{text}' must look like key=value")
    key, value = text.split("=", 1)
    return key.strip(), _parse_scalar(value.strip())


def _deep_copy(data: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with errors that name the file."""
    path = resolve(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | dict | None = None) -> T:
    """Build config ``cls`` from the YAML file at ``path`` (or defaults) plus dotted overrides."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else cls.__name__
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + overrides"
    return _build(cls, data, source)


def config_from_dict(cls: type[T], data: dict, source: str = "dict") -> T:
    """Build config ``cls`` from a plain mapping (e.g. one stored in a manifest or checkpoint)."""
    return _build(cls, data, source)


def to_dict(config: Any) -> dict:
    """Plain-data form of a config, for YAML/JSON manifests and checkpoints."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
