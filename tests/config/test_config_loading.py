"""``--set key.path=value``: every field can be set from the command line, and a bad key or a
value of the wrong type is the validator's ValueError naming the key (not ml_collections'
TypeError)."""

from __future__ import annotations

import pytest

from jaxhash import config as config_lib
from jaxhash.config.fields import FIELDS


@pytest.mark.parametrize("field", FIELDS, ids=[f.name for f in FIELDS])
def test_every_field_round_trips_through_set(field):
    config = config_lib.default_config()
    config_lib.apply_overrides(config, [f"{field.name}={field.default!r}"])
    validated = config_lib.validate_config(config)
    value = validated
    for part in field.name.split("."):
        value = value[part]
    assert value == field.default and type(value) is type(field.default)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("model.bits=abc", r"'model.bits' must be int \(like the default 64\); got 'abc'"),
        ("model.bits=3.0", r"'model.bits' must be int"),
        ("train.tensorboard=1", r"'train.tensorboard' must be bool"),
        ("data.image_size=big", r"'data.image_size' must be an int or None"),
        ("loss.kl_form=kde", r"'loss.kl_form' must be one of"),
        ("model=3", r"config key 'model' is a block of keys.*e.g. --set model.name="),
        ("model.bits.x=3", r"config key 'model.bits' is a value, not a block of keys"),
        ("model.bitz=3", r"unknown config key 'model.bitz'. Did you mean 'model.bits'"),
        ("modle.bits=3", r"unknown config key 'modle'. Did you mean 'model'"),
        ("model.bits", r"must look like key\.path=value"),
    ],
)
def test_bad_overrides_are_value_errors_naming_the_key(item, message):
    config = config_lib.demo_config("quick")
    before = config.to_json_best_effort()
    with pytest.raises(ValueError, match=message):
        config_lib.apply_overrides(config, [item])
    assert config.to_json_best_effort() == before  # nothing set


def test_overrides_fill_a_block_a_plain_dict_config_lacks():
    config = {"batch_size": 8}
    config_lib.apply_overrides(config, ["model.bits=32", "optim.learning_rate=1"])
    assert config == {"batch_size": 8, "model": {"bits": 32}, "optim": {"learning_rate": 1}}
    assert config_lib.validate_config(config).optim.learning_rate == 1.0


def test_later_overrides_win():
    config = config_lib.demo_config("quick")
    config_lib.apply_overrides(config, ["model.bits=32", "model.bits=8"])
    assert config.model.bits == 8
