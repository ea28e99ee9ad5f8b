"""jaxhash.config: values that cannot work are rejected at load time, naming the key."""

import pytest

from jaxhash import config as config_lib


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
