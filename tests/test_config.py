"""jaxhash.config: one schema with one validator (data block included), the data view, and
values that cannot work rejected at load time, naming the key."""

from __future__ import annotations

import functools

import ml_collections
import pytest

from jaxhash import config as config_lib
from jaxhash import data


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"image_size": "32"}, r"'data.image_size' must be an int or None"),
        ({"name": "cifar10"}, r"'data.name' must be one of"),
        ({"augment": "flip"}, r"'data.augment' must be True, False or one of"),
        ({"crop_scale": (0.5, 2.0)}, r"'data.crop_scale' must be \(low, high\)"),
        ({"holdout_classes": ["a", "a"]}, r"'data.holdout_classes' lists classes more than once"),
        ({"eval_crop_fraction": 1.5}, r"'data.eval_crop_fraction' must be a number in \(0, 1\]"),
        ({"bogus": 1}, r"unknown config key 'data.bogus'"),
        ({"imagesize": 32}, r"unknown config key 'data.imagesize'. Did you mean 'data.image_size'"),
    ],
)
def test_data_block_errors_name_the_key(block, message):
    """The data block is checked by the same validator as every other block."""
    with pytest.raises(ValueError, match=message):
        config_lib.validate_config({"data": block})
    with pytest.raises(ValueError, match=message):  # and so through the pipeline's entry
        data.data_config({"data": block, "batch_size": 8})


@pytest.mark.parametrize("key", ["global_batch_size", "eval_batch_size", "seed"])
def test_one_spelling_of_batch_size_and_seed(key):
    """The batch sizes and the seed live outside the data block only."""
    with pytest.raises(ValueError, match=f"unknown config key 'data.{key}'"):
        config_lib.validate_config({"data": {key: 8}})


def test_data_view_of_a_whole_experiment_config():
    config = config_lib.default_config()
    config.batch_size, config.seed, config.eval.batch_size = 64, 5, 16
    config.data.name = "cifar100"
    config.data.augment = "none"
    config.data.crop_scale = [0.5, 1.0]
    view = data.data_config(config)
    assert (view.name, view.augment_style, view.crop_scale) == ("cifar100", "none", (0.5, 1.0))
    assert (view.global_batch_size, view.eval_batch_size, view.seed) == (64, 16, 5)
    assert data.data_config(config_lib.default_config()).eval_batch_size is None  # 0: unset
    assert view.replace(image_size=64).image_size == 64 and view.image_size is None
    assert data.data_config(view) is view
    cached = functools.lru_cache(lambda c: c.name)  # hashable: the sources cache by it
    assert cached(view) == cached(data.data_config(config)) == "cifar100"


def test_data_view_of_its_own_fields():
    """The pipeline called directly: the view's fields, everything else from the defaults."""
    view = data.data_config({"name": "cifar100", "global_batch_size": 8, "seed": 7})
    assert (view.name, view.global_batch_size, view.seed) == ("cifar100", 8, 7)
    assert view == data.data_config({"data": {"name": "cifar100"}, "batch_size": 8, "seed": 7})
    with pytest.raises(ValueError, match=r"'globl_batch_size'. Did you mean 'global_batch_size'"):
        data.data_config({"name": "cifar100", "globl_batch_size": 8})
    with pytest.raises(ValueError, match=r"'batch_size' must be >= 1"):
        data.data_config({"global_batch_size": 0})


def test_override_syntax_as_documented():
    """`--set key.path=value`: Python literals, else strings (the module docstring's example)."""
    config = config_lib.demo_config("quick")
    config_lib.apply_overrides(
        config,
        [
            "model.bits=32",
            "data.image_size=64",
            "data.mean=(0.5, 0.5, 0.5)",
            "data.manual_dir=/x",
        ],
    )
    config = config_lib.validate_config(config)
    assert (config.model.bits, config.data.image_size) == (32, 64)
    assert tuple(config.data.mean) == (0.5, 0.5, 0.5) and config.data.manual_dir == "/x"
    assert config_lib.__doc__ and "data.image_size=64" in config_lib.__doc__
    with pytest.raises(ValueError, match=r"must look like key\.path=value"):
        config_lib.apply_overrides(config, ["--config.data.image_size"])
    assert isinstance(config.data, ml_collections.ConfigDict)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.log_every", 0, "'train.log_every' must be >= 1"),
        ("train.checkpoint_every", 0, "'train.checkpoint_every' must be >= 1"),
        ("train.keep_checkpoints", 0, "'train.keep_checkpoints' must be >= 1"),
        ("train.steps", -5, "'train.steps' must be >= 0"),
        ("optim.learning_rate", -0.1, "'optim.learning_rate' must be > 0"),
        ("optim.momentum", 1.0, "'optim.momentum' must be < 1"),
        ("model.width", -1, "'model.width' must be >= 0"),
        ("model.bits", 0, "'model.bits' must be >= 1"),
        ("loss.w_kl", -1.0, "'loss.w_kl' must be >= 0"),
        ("loss.w_sim", float("inf"), "'loss.w_sim' must be finite"),
        ("loss.kl_sigma", 0.0, "'loss.kl_sigma' must be > 0"),
        ("loss.kl_floor", -0.5, "'loss.kl_floor' must be > 0"),
        ("loss.kl_form", "kde", "must be one of .*'marginal'"),
        ("loss.k", 0, "'loss.k' must be >= 1"),
        ("eval.map_k", 0, "'eval.map_k' must be >= 1"),
    ],
)
def test_values_that_cannot_work(key, value, message):
    config = config_lib.demo_config()
    block, name = key.split(".")
    config[block][name] = value
    with pytest.raises(ValueError, match=message):
        config_lib.validate_config(config)


def test_epochs_only_matter_without_steps():
    config = config_lib.demo_config()  # 400 steps
    config.train.epochs = 0.0
    config_lib.validate_config(config)
    config.train.steps = 0
    with pytest.raises(ValueError, match=r"'train.epochs' must be > 0"):
        config_lib.validate_config(config)


def test_get_config_must_return_a_config(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def get_config():\n    return None\n")
    with pytest.raises(ValueError, match=r"must return an ml_collections.ConfigDict.*NoneType"):
        config_lib.load_config_file(str(path))


def test_config_changes_list_what_a_resume_cannot_ignore():
    """Run length, logging, checkpointing, evaluation and data locations may change on a
    rerun; any other field is listed old -> new; values equal as JSON are no change."""
    old = config_lib.demo_config("quick")
    new = config_lib.demo_config("quick")
    new.train.steps, new.train.log_every, new.train.checkpoint_every = 60, 7, 9
    new.eval.map_k, new.data.data_dir, new.data.prefetch = 5, "/elsewhere", 4
    new.data.crop_scale = tuple(old.data.crop_scale)  # a tuple, saved as a JSON list
    assert config_lib.config_changes(old, new) == {}
    new.loss.w_sim, new.model.bits, new.data.name = 1.0, 8, "cifar100"
    assert config_lib.config_changes(old, new) == {
        "data.name": ("synthetic_hierarchy", "cifar100"),
        "loss.w_sim": (old.loss.w_sim, 1.0),
        "model.bits": (16, 8),
    }
