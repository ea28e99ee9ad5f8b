"""What a rerun may change when it resumes a run folder's checkpoint, and the fields of runs
saved before a field existed.

``jaxhash.train.run`` compares the rerun's config with the checkpoint's
(:func:`config_changes`): any difference outside :data:`RESUMABLE_CHANGES` (how long it runs,
what it logs, how it checkpoints and evaluates, where it finds its data and how its processes
connect: the fields marked ``resumable`` in the table) stops the rerun unless it is allowed
explicitly (``--allow-config-change``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxhash.config.fields import FIELDS, UNCHANGED
from jaxhash.config.validation import validate_config

RESUMABLE_CHANGES: tuple[str, ...] = tuple(field.name for field in FIELDS if field.resumable)

# Fields added with a default that differs from what runs saved before them did: the value
# those runs trained with, filled in when a saved config lacks the field (with_former_defaults).
FORMER_DEFAULTS: dict[str, Any] = {
    field.name: field.former_default for field in FIELDS if field.former_default is not UNCHANGED
}


def with_former_defaults(saved: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``saved`` (a run's stored config) with each missing field of :data:`FORMER_DEFAULTS`
    set to the behaviour it was trained with, so a resume or evaluation keeps it."""
    saved = ml_collections.ConfigDict(saved)
    for path, value in FORMER_DEFAULTS.items():
        *blocks, name = path.split(".")
        node = saved
        for block in blocks:
            if block not in node:
                node[block] = ml_collections.ConfigDict()
            node = node[block]
        if name not in node:
            node[name] = value
    return saved


def _flat(config) -> dict[str, Any]:
    """``{dotted key: value}`` of ``config`` validated, values as JSON would store them."""
    rows: dict[str, Any] = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(value, f"{prefix}{key}.")
            else:
                rows[prefix + key] = value

    walk(json.loads(validate_config(config).to_json_best_effort()), "")
    return rows


def config_changes(old, new) -> dict[str, tuple[Any, Any]]:
    """``{key: (old value, new value)}`` of the fields where ``new`` differs from ``old``,
    both validated, except :data:`RESUMABLE_CHANGES`; values compared as JSON."""
    before, after = _flat(old), _flat(new)
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key) and key not in RESUMABLE_CHANGES
    }
