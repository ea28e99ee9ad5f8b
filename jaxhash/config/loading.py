"""Configs from the command line: experiment files (``path.py[:arg]``) and ``--set`` overrides.

An experiment file returns ``get_config(arg)`` built on :func:`jaxhash.config.default_config`
(big_vision style). ``--set`` takes ``key.path=value`` items, each key a field of the table
(:mod:`jaxhash.config.fields`), each value a Python literal, else taken as a string; the value
is checked against its field before it is set, so a wrong type is the validator's error, not
ml_collections' TypeError.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path

import ml_collections

from jaxhash.config.fields import BY_NAME, FIELDS, Field, default_config
from jaxhash.config.validation import check_known, check_value


def load_config_file(spec: str):
    """``path.py[:arg]`` -> that file's ``get_config(arg)`` (``get_config()`` without arg)."""
    path, _, arg = spec.partition(":")
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"config file {path!r} does not exist; give a Python file with get_config(), "
            "e.g. --config configs/demo.py or configs/cifar100.py:64."
        )
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(
            f"config file {path!r} has no get_config() function; define one returning "
            "jaxhash.config.default_config() with changes (see configs/demo.py)."
        )
    config = module.get_config(arg) if arg else module.get_config()
    if not isinstance(config, ml_collections.ConfigDict | dict):
        raise ValueError(
            f"get_config() of {path!r} must return an ml_collections.ConfigDict (e.g. "
            f"jaxhash.config.default_config() with changes); it returned {type(config).__name__}."
        )
    return config


def _override_field(key: str, item: str) -> Field:
    """The field ``key`` names, or a ValueError saying what is wrong with the key path."""
    if key in BY_NAME:
        return BY_NAME[key]
    node, prefix = default_config(), ""
    *parents, leaf = key.split(".")
    for name in parents:
        check_known(name, node.keys(), prefix)
        node, prefix = node[name], f"{prefix}{name}."
        if not isinstance(node, ml_collections.ConfigDict):
            raise ValueError(
                f"config key {prefix[:-1]!r} is a value, not a block of keys (override "
                f"{item!r}); check the key path."
            )
    check_known(leaf, node.keys(), prefix)
    example = next(field for field in FIELDS if field.block == key)
    raise ValueError(
        f"config key {key!r} is a block of keys, not a value (override {item!r}); set one of "
        f"its fields, e.g. --set {example.name}={example.default!r}."
    )


def apply_overrides(config, overrides: Iterable[str]) -> None:
    """Apply ``key.path=value`` strings (values parsed as Python literals, else strings) to
    ``config`` in place; a ValueError names an unknown key or a value of the wrong type."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(
                f"override {item!r} must look like key.path=value; e.g. --set model.bits=32."
            )
        field = _override_field(key, item)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        check_value(field, value)
        *blocks, leaf = key.split(".")
        node, prefix = config, ""
        for block in blocks:
            if block not in node:
                node[block] = type(node)()
            node, prefix = node[block], f"{prefix}{block}."
            if not isinstance(node, ml_collections.ConfigDict | Mapping):
                raise ValueError(
                    f"config key {prefix[:-1]!r} is a value, not a block of keys (override "
                    f"{item!r}); check the key path."
                )
        node[leaf] = value
