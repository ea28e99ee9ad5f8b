"""The one validator of configs, run at the entry points (``jaxhash.train.run``,
``jaxhash.run_folder``, the input pipeline's ``jaxhash.data.data_config``), by the field table.

Every key must be a field of :data:`jaxhash.config.fields.FIELDS` (a typo is an error naming
the key and the closest known one); every value must be of its field's type or kind and among
its choices; then, on the config with the defaults filled in, every number must lie within its
field's bounds (and floats be finite).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxhash.config.fields import BY_NAME, FIELDS, Field, default_config


def check_known(key: str, known, prefix: str = "") -> None:
    """A ValueError for a ``key`` not in ``known``, naming the closest known one."""
    if key in known:
        return
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
    known = sorted(known)
    raise ValueError(f"unknown config key {prefix + key!r}.{hint} Known keys here: {known}.")


def _plain(value):
    """ConfigDict -> dict, FieldReference -> its value; anything else unchanged."""
    if isinstance(value, ml_collections.ConfigDict):
        return value.to_dict()
    if isinstance(value, ml_collections.FieldReference):
        return value.get()
    return value


def check_value(field: Field, value) -> Any:
    """``value`` of ``field`` checked against its type or kind and its choices (not its bounds:
    :func:`check_bounds`); returns it normalised (a kind's tuples, floats and paths)."""
    if field.kind is not None:
        return field.kind.check(field.name, value)
    default = field.default
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list | tuple):
        ok = isinstance(value, list | tuple)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(
            f"config key {field.name!r} must be {type(default).__name__} (like the default "
            f"{default!r}); got {value!r} ({type(value).__name__})."
        )
    if field.choices is not None and value not in field.choices:
        raise ValueError(
            f"config key {field.name!r} must be one of {field.choices}; got {value!r}."
        )
    return float(value) if isinstance(default, float) else value


def check_bounds(field: Field, value) -> None:
    """A ValueError when ``value`` (of the right type) lies outside ``field``'s bounds."""
    if value is None:
        return  # an optional field left unset
    name = field.name
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"config key {name!r} must be finite; got {value}.")
    if field.minimum is not None and value < field.minimum:
        raise ValueError(f"config key {name!r} must be >= {field.minimum}; got {value}.")
    if field.exclusive_minimum is not None and value <= field.exclusive_minimum:
        raise ValueError(f"config key {name!r} must be > {field.exclusive_minimum}; got {value}.")
    if field.exclusive_maximum is not None and not value < field.exclusive_maximum:
        raise ValueError(f"config key {name!r} must be < {field.exclusive_maximum}; got {value}.")


def _check_given(config, defaults, prefix: str) -> None:
    """The keys and values of ``config`` (what a file or caller set) against the schema."""
    for key in config.keys():
        path = f"{prefix}{key}"
        check_known(key, defaults.keys(), prefix)
        value = config[key]
        if isinstance(defaults[key], ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict | Mapping):
                raise ValueError(f"config key {path!r} must be a block of keys; got {value!r}.")
            _check_given(ml_collections.ConfigDict(value), defaults[key], f"{path}.")
            continue
        check_value(BY_NAME[path], _plain(value))


def _field_value(config, name: str) -> Any:
    """The value at the dotted ``name`` of a nested ``config``."""
    for part in name.split("."):
        config = config[part]
    return _plain(config)


def validate_config(config) -> ml_collections.ConfigDict:
    """``config`` with every missing key filled from the defaults, after checking its keys.

    Raises ValueError naming an unknown key (with the closest known one), a wrong type, a
    value outside the allowed choices or outside its bounds, in any block (``data`` included).
    """
    if isinstance(config, Mapping):
        config = ml_collections.ConfigDict(config)
    _check_given(config, default_config(), "")
    merged = default_config()
    merged.update(config)  # nested ConfigDicts update recursively
    for field in FIELDS:
        if field.name == "train.epochs" and merged.train.steps > 0:
            continue  # train.steps sets the length; the epochs are not read
        check_bounds(field, _field_value(merged, field.name))
    return merged


def data_values(data) -> dict:
    """The ``data`` block's values checked and normalised (lists as tuples, plain paths);
    ``data`` holds every field (a block of a config from :func:`validate_config`)."""
    values = {}
    for field in FIELDS:
        if field.block == "data":
            name = field.name.removeprefix("data.")
            values[name] = check_value(field, _plain(data[name]))
    return values
