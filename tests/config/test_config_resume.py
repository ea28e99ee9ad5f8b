"""What a resume may change is a column of the field table: changing any field marked
``resumable`` passes :func:`config_changes`, changing any other field is listed old -> new."""

from __future__ import annotations

import pytest

from jaxhash import config as config_lib
from jaxhash.config import kinds
from jaxhash.config.fields import FIELDS

# A valid value other than the default, for the fields whose kind does not say one.
_OTHER_BY_KIND = {
    kinds.PATH: "/elsewhere",
    kinds.OPTIONAL_INT: 48,
    kinds.OPTIONAL_FLAG: True,
    kinds.RGB: [0.5, 0.5, 0.5],
    kinds.POSITIVE_RGB: [0.25, 0.25, 0.25],
    kinds.CLASS_NAMES: ["apple"],
    kinds.CLASS_SUBSET: ["apple", "bear"],
    kinds.AUGMENT: "none",
}


def _other_value(field):
    default = field.default
    if field.kind in _OTHER_BY_KIND:
        return _OTHER_BY_KIND[field.kind]
    if field.kind is not None:  # an interval or a fraction
        return [0.5, 1.0] if isinstance(default, list) else 0.5
    if field.choices is not None:
        return next(choice for choice in field.choices if choice != default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, float):
        return default / 2 if default else 0.5
    if isinstance(default, int):
        return default + 1
    if isinstance(default, list):
        return [*default, "x"] if not default or isinstance(default[0], str) else default[:1]
    return default + "x"


def _changed(field):
    config = config_lib.default_config()
    node = config
    *blocks, leaf = field.name.split(".")
    for block in blocks:
        node = node[block]
    node[leaf] = _other_value(field)
    return config


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_a_resume_stops_on_exactly_the_fields_not_marked_resumable(field):
    old = config_lib.default_config()
    changes = config_lib.config_changes(old, _changed(field))
    if field.resumable:
        assert changes == {}
    else:
        assert list(changes) == [field.name]


def test_resumable_changes_are_the_marked_fields_and_whole_eval_and_distributed_blocks():
    marked = {field.name for field in FIELDS if field.resumable}
    assert set(config_lib.RESUMABLE_CHANGES) == marked
    for field in FIELDS:
        if field.block in ("train", "eval", "distributed"):
            assert field.resumable, f"{field.name}: a run-length, evaluation or process setting"


def test_former_defaults_come_from_the_table():
    assert config_lib.FORMER_DEFAULTS == {"optim.decay_vectors": True}
    saved = config_lib.default_config().to_dict()
    del saved["optim"]["decay_vectors"]
    assert config_lib.with_former_defaults(saved).optim.decay_vectors is True
