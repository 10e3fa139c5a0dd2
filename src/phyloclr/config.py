"""Frozen dataclass configs: validated on construction, loaded from YAML, saved as JSON."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml

from phyloclr.errors import ConfigError

C = TypeVar("C")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) dataclass config."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = config_to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


def config_to_json(cfg: Any) -> str:
    """Compact, key-sorted JSON of a config."""
    return json.dumps(config_to_dict(cfg), sort_keys=True, separators=(",", ":"))


def _coerce(name: str, tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping")
        return config_from_dict(tp, value, prefix=f"{name}.")
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{name}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, arg, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors) or f"{name}: invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list")
        inner = get_args(tp)[0] if get_args(tp) else Any
        return tuple(_coerce(name, inner, v) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads '1e-5' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    return value


_LITERALS: dict[type, tuple[tuple[str, tuple[Any, ...]], ...]] = {}


def _literal_fields(cls: type) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if cls in _LITERALS:
        return _LITERALS[cls]
    out = []
    for name, tp in typing.get_type_hints(cls).items():
        args = [tp] if get_origin(tp) is typing.Literal else list(get_args(tp))
        allowed = [v for a in args if get_origin(a) is typing.Literal for v in get_args(a)]
        if allowed:
            out.append((name, tuple(allowed) + ((None,) if type(None) in args else ())))
    _LITERALS[cls] = tuple(out)
    return _LITERALS[cls]


def check_literals(cfg: Any) -> None:
    """Raise ConfigError if a ``Literal`` field of the dataclass ``cfg`` holds another value
    (YAML is checked on reading; this checks configs built in Python, at construction)."""
    for name, allowed in _literal_fields(type(cfg)):
        value = getattr(cfg, name)
        if value not in allowed:
            shown = [a for a in allowed if a is not None]
            raise ConfigError(f"{type(cfg).__name__}.{name}: {value!r} is not one of {shown}")


def config_from_dict(cls: type[C], data: dict[str, Any], prefix: str = "") -> C:
    """Build a config dataclass from a dict, rejecting unknown keys (named in full, e.g.
    ``model.dimm``) and values of the wrong type."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        names = ", ".join(repr(prefix + k) for k in unknown)
        raise ConfigError(f"unknown config key {names} (known: {', '.join(sorted(known))})")
    kwargs = {k: _coerce(f"{prefix}{k}", hints[k], v) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {exc}") from exc


def read_config_mapping(path: str | Path, section: str | None = None) -> dict[str, Any]:
    """The mapping a YAML config file holds (optionally one top-level section of it); a file
    that cannot be read or is not a mapping is a ConfigError naming it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if section is not None and isinstance(data, dict):
        data = data.get(section, {}) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping")
    return data


def load_config(cls: type[C], path: str | Path, section: str | None = None) -> C:
    """Load a YAML file (optionally one top-level section of it) into a config dataclass."""
    data = read_config_mapping(path, section)
    try:
        return config_from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
