"""The shipped configs/ files load and validate; a bad key, choice or type is one clear error."""

from __future__ import annotations

import pytest

from jaxhash import config as config_lib


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model.bitz", 3, "unknown config key 'model.bitz'. Did you mean 'model.bits'"),
        ("loss.normalize", "rows", "must be one of"),
        ("optim.learning_rate", "fast", "must be float"),
    ],
)
def test_config_errors(key, value, message):
    import ml_collections

    raw = ml_collections.ConfigDict()
    node = raw
    *parents, leaf = key.split(".")
    for name in parents:
        node[name] = ml_collections.ConfigDict()
        node = node[name]
    node[leaf] = value
    with pytest.raises(ValueError, match=message):
        config_lib.validate_config(raw)
    with pytest.raises(ValueError, match="unknown config key"):
        config_lib.apply_overrides(config_lib.default_config(), ["model.bitz=3"])


@pytest.mark.parametrize(
    "spec",
    [
        "default.py",
        "demo.py",
        "demo.py:quick",
        "cifar100.py:16",
        "cifar100.py:32",
        "cifar100.py:64",
        "cifar100_zeroshot.py",
        "cifar100_fast.py:paper,64,0",
        "cifar100_fast.py:ce_sim,16,2,zeroshot",
        "cifar100_fast.py:ce,32,1,gpu",
        "imagenet100.py:64",
        "captions.py",
    ],
)
def test_every_config_file_validates(spec):
    """Each configs/ file loads and passes validation (keys, types, choices, data block)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / spec
    config = config_lib.validate_config(config_lib.load_config_file(str(path)))
    assert config.model.bits in (16, 32, 64)
