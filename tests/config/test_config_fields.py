"""The field table is the schema: every field of every built config has a row, every row is a
field, every default obeys its own row, and the validator enforces every row."""

from __future__ import annotations

import math

import pytest

from jaxhash import config as config_lib
from jaxhash import data
from jaxhash.config import fields, kinds
from jaxhash.config.validation import check_bounds, check_value

FIELDS = fields.FIELDS
NAMES = [field.name for field in FIELDS]


def _leaves(config, prefix: str = "") -> set[str]:
    names = set()
    for key, value in config.items():
        if isinstance(value, dict):
            names |= _leaves(value, f"{prefix}{key}.")
        else:
            names.add(prefix + key)
    return names


def _nested(name: str, value) -> dict:
    *blocks, leaf = name.split(".")
    tree = {leaf: value}
    for block in reversed(blocks):
        tree = {block: tree}
    return tree


@pytest.mark.parametrize("arg", ["", "quick"])
def test_every_field_of_a_built_config_has_one_row_and_every_row_is_a_field(arg):
    assert len(set(NAMES)) == len(NAMES), "a field has two rows"
    for config in (config_lib.default_config(), config_lib.demo_config(arg)):
        leaves = _leaves(config.to_dict())
        assert leaves - set(NAMES) == set(), "fields without a row in jaxhash/config/fields.py"
        assert set(NAMES) - leaves == set(), "rows that name no field of the config"


def test_the_data_view_carries_every_data_field():
    """What the input pipeline reads is the data block's rows, none dropped, none added."""
    view = data.data_config(config_lib.default_config())
    data_rows = {field.name.removeprefix("data.") for field in FIELDS if field.block == "data"}
    assert set(view.keys()) == data_rows | {"global_batch_size", "eval_batch_size", "seed"}


@pytest.mark.parametrize("field", FIELDS, ids=NAMES)
def test_each_row_is_consistent_and_its_default_obeys_it(field):
    assert field.block in fields.BLOCKS
    assert field.doc and "\n" not in field.doc and field.doc == field.doc.strip()
    assert field.kind is None or field.choices is None, "a kind or choices, not both"
    if field.choices is not None:
        assert field.default in field.choices
    bounds = (field.minimum, field.exclusive_minimum, field.exclusive_maximum)
    if any(b is not None for b in bounds):
        assert isinstance(field.default, int | float) or field.default is None
    check_value(field, field.default)
    check_bounds(field, field.default)


def _outside_bounds(field) -> list:
    """Values of the right type just outside ``field``'s bounds (and non-finite floats)."""
    as_float = isinstance(field.default, float)
    values = []
    if field.minimum is not None:
        values.append(field.minimum - (0.5 if as_float else 1))
    if field.exclusive_minimum is not None:
        values.append(field.exclusive_minimum)
    if field.exclusive_maximum is not None:
        values.append(field.exclusive_maximum)
    if as_float:
        values += [math.inf, math.nan]
    return [float(v) if as_float else v for v in values]


BOUNDED = [f for f in FIELDS if _outside_bounds(f) and f.name != "train.epochs"]


@pytest.mark.parametrize("field", BOUNDED, ids=[f.name for f in BOUNDED])
def test_the_validator_enforces_every_bound(field):
    for value in _outside_bounds(field):
        with pytest.raises(ValueError, match=rf"config key '{field.name}' must be"):
            config_lib.validate_config(_nested(field.name, value))


PLAIN = [f for f in FIELDS if f.kind is None]


@pytest.mark.parametrize("field", PLAIN, ids=[f.name for f in PLAIN])
def test_the_validator_enforces_every_type_and_choice(field):
    wrong_type = "text" if not isinstance(field.default, str) else 3
    with pytest.raises(ValueError, match=rf"config key '{field.name}' must be"):
        config_lib.validate_config(_nested(field.name, wrong_type))
    if field.choices is not None:
        with pytest.raises(ValueError, match=rf"'{field.name}' must be one of"):
            config_lib.validate_config(_nested(field.name, "not-a-choice"))


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (kinds.PATH, "/data", ""),
        (kinds.OPTIONAL_INT, 7, 7.0),
        (kinds.OPTIONAL_FLAG, None, 1),
        (kinds.RGB, [0.5, 0.5, 0.5], [0.5, 0.5]),
        (kinds.POSITIVE_RGB, (0.2, 0.2, 0.2), (0.2, 0.0, 0.2)),
        (kinds.CLASS_NAMES, ["cat", "dog"], "cat"),
        (kinds.CLASS_SUBSET, "imagenet100", []),
        (kinds.AUGMENT, True, "flip"),
        (kinds.interval(at_most=1), [0.5, 1.0], [0.5, 1.5]),
        (kinds.fraction(optional=False, closed_low=True), 0.0, 1.0),
    ],
)
def test_kinds_accept_and_reject_naming_the_key(kind, good, bad):
    kind.check("data.x", good)
    with pytest.raises(ValueError, match=r"config key 'data.x'"):
        kind.check("data.x", bad)


def test_epochs_are_bounded_only_when_they_set_the_length():
    config = config_lib.demo_config()  # train.steps > 0
    config.train.epochs = -1.0
    config_lib.validate_config(config)
    config.train.steps = 0
    with pytest.raises(ValueError, match=r"'train.epochs' must be > 0"):
        config_lib.validate_config(config)
