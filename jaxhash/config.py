"""The experiment config: defaults, and validation that names any unknown key or wrong type.

Experiment files in ``configs/`` return ``get_config()`` built on :func:`default_config` and
override a few fields (big_vision style). :func:`validate_config` checks a config against the
defaults: every key must exist there (a typo is an error naming the key and the closest known
one) and every value must have the default's type. The data block is validated by
``jaxhash.data.config``.
"""

from __future__ import annotations

import difflib

import ml_collections

from jaxhash import methods


def default_config() -> ml_collections.ConfigDict:
    """Defaults of every field; the data block defaults to the embedded synthetic data set."""
    from jaxhash.data.config import default_config as default_data_config

    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 256  # global, over all devices and hosts

    c.model = ml_collections.ConfigDict()
    c.model.name = "small_cnn"  # small_cnn, resnet18, resnet50
    c.model.bits = 64
    c.model.stem = "cifar"  # cifar (32x32) or imagenet (224x224)
    c.model.width = 0  # 0: the backbone's default
    c.model.hash_activation = "linear"  # linear or tanh
    c.model.classifier_input = "codes"  # codes (bottleneck, the paper) or features
    c.model.dtype = "float32"  # float32 or bfloat16 (compute; parameters stay float32)
    c.model.pretrained = ""  # orbax checkpoint with params['backbone'] to start from

    # The paper's loss as jaxhash sets it (jaxhash.methods "paper": CE + 3 x similarity + the
    # KL form and weight that measured best on CIFAR-100, README).
    c.loss = ml_collections.ConfigDict()
    c.loss.w_ce = 1.0
    c.loss.w_sim = methods.SIM_WEIGHT
    c.loss.w_kl = methods.PAPER_KL[1]
    c.loss.w_quant = 0.0
    c.loss.w_balance = 0.0
    c.loss.similarity = "lcs_height"  # class similarity of the hierarchy: lcs_height, wup, path
    c.loss.normalize = "mean"  # mean, row, none
    c.loss.power = 2.0
    c.loss.kl_form = methods.PAPER_KL[0]  # wkv (the paper's literal estimate), sphere, corner,
    # smoothed_prior, marginal: see jaxhash.losses.binary_kl_loss
    c.loss.kl_sigma = 0.5  # smoothed_prior: standard deviation of the prior around each corner
    c.loss.kl_floor = 0.1  # corner: floor on the distance to the nearest corner
    c.loss.kl_decorrelation = 1.0  # marginal: weight of ||Z^T Z / n - I||^2 / K^2
    c.loss.k = 1  # kNN order of the KL estimate
    c.loss.knn = "global"  # global (all-gathered batch) or per_device
    c.loss.label_smoothing = 0.0

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "sgd"  # sgd (with momentum) or adamw
    c.optim.learning_rate = 0.1
    c.optim.momentum = 0.9
    c.optim.nesterov = True
    c.optim.weight_decay = 5e-4
    c.optim.warmup_steps = 100
    c.optim.backbone_lr_scale = 1.0  # < 1: a lower learning rate for the backbone
    c.optim.grad_clip = 0.0  # 0: no clipping

    c.train = ml_collections.ConfigDict()
    c.train.steps = 0  # 0: from epochs
    c.train.epochs = 10.0
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    c.train.keep_checkpoints = 2
    c.train.tensorboard = True

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 0  # steps between evaluations during training (0: only at the end)
    c.eval.at_end = True
    c.eval.split = ""  # "": the data set's evaluation split
    c.eval.protocol = "database_is_query"  # database_is_query, query_database, zero_shot
    c.eval.query_split = ""  # query_database: the queries' split (database: eval.split)
    c.eval.map_k = 250
    c.eval.mahp_k = 250
    c.eval.ties = "stable"
    c.eval.similarity = "lcs_height"  # class similarity for mAHP@k (Barz & Denzler)
    c.eval.rankings = ["hamming", "cosine"]
    c.eval.batch_size = 0  # 0: config.batch_size
    c.eval.baseline = True

    c.distributed = ml_collections.ConfigDict()
    c.distributed.initialize = False  # call jax.distributed.initialize() before training
    c.distributed.coordinator_address = ""  # "": auto-detect (TPU pods, SLURM, ...)
    c.distributed.num_processes = 0  # 0: auto-detect
    c.distributed.process_id = -1  # -1: auto-detect
    c.distributed.cpu_collectives = "gloo"  # collectives between CPU processes

    c.data = default_data_config()
    return c


def demo_config(arg: str = ""):
    """The demo: the embedded synthetic_hierarchy data, a small CNN, 32 bits, the paper's loss
    (``jaxhash.methods`` "paper", the defaults).

    ``arg="quick"`` shrinks it to seconds on two CPU cores (tests use it).
    """
    c = default_config()
    c.batch_size = 128
    c.model.width = 16
    c.model.bits = 32
    c.optim.learning_rate = 0.05
    c.optim.warmup_steps = 50
    c.train.steps = 400
    c.train.checkpoint_every = 200
    if arg == "quick":
        c.batch_size = 32
        c.model.width = 4
        c.model.bits = 16
        c.train.steps = 6
        c.train.log_every = 2
        c.train.checkpoint_every = 3
        c.train.tensorboard = False
        c.optim.warmup_steps = 2
        c.eval.map_k = 50
        c.eval.mahp_k = 50
        c.data.synthetic_train_per_class = 8
        c.data.synthetic_test_per_class = 4
    elif arg:
        raise ValueError(f"demo config argument must be '' or 'quick'; got {arg!r}.")
    return c


def load_config_file(spec: str):
    """``path.py[:arg]`` -> that file's ``get_config(arg)`` (``get_config()`` without arg)."""
    import importlib.util
    from pathlib import Path

    path, _, arg = spec.partition(":")
    if not Path(path).is_file():
        raise ValueError(f"config file {path!r} does not exist.")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} has no get_config() function.")
    config = module.get_config(arg) if arg else module.get_config()
    if not isinstance(config, ml_collections.ConfigDict | dict):
        raise ValueError(
            f"get_config() of {path!r} must return an ml_collections.ConfigDict (e.g. "
            f"jaxhash.config.default_config() with changes); it returned {type(config).__name__}."
        )
    return config


def apply_overrides(config, overrides) -> None:
    """Apply ``key.path=value`` strings (values parsed as Python literals, else strings)."""
    import ast

    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key.path=value.")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        node = config
        *parents, leaf = key.split(".")
        for name in parents:
            if name not in node:
                raise ValueError(f"unknown config key {key!r} in override {item!r}.")
            node = node[name]
        if leaf not in node:
            raise ValueError(f"unknown config key {key!r} in override {item!r}.")
        node[leaf] = value


CHOICES = {
    "model.name": ("small_cnn", "resnet18", "resnet50"),
    "model.stem": ("cifar", "imagenet"),
    "model.hash_activation": ("linear", "tanh"),
    "model.classifier_input": ("codes", "features"),
    "model.dtype": ("float32", "bfloat16"),
    "loss.similarity": ("lcs_height", "wup", "path"),
    "loss.normalize": ("mean", "row", "none"),
    "loss.knn": ("global", "per_device"),
    "loss.kl_form": ("wkv", "sphere", "corner", "smoothed_prior", "marginal"),
    "optim.name": ("sgd", "adamw"),
    "eval.protocol": ("database_is_query", "query_database", "zero_shot"),
    "eval.ties": ("stable", "random", "expected"),
    "eval.similarity": ("lcs_height", "wup", "path"),
}


def _check(config, defaults, prefix: str) -> None:
    for key in config.keys():
        path = f"{prefix}{key}"
        if path == "data":
            continue  # validated by jaxhash.data.config
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults.keys()), n=1)
            hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown config key {path!r}.{hint} Known keys here: {sorted(defaults.keys())}."
            )
        value, default = config[key], defaults[key]
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict | dict):
                raise ValueError(f"config key {path!r} must be a block of keys; got {value!r}.")
            _check(ml_collections.ConfigDict(value), default, f"{path}.")
            continue
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
                f"config key {path!r} must be {type(default).__name__} (like the default "
                f"{default!r}); got {value!r} ({type(value).__name__})."
            )
        if path in CHOICES and value not in CHOICES[path]:
            raise ValueError(f"config key {path!r} must be one of {CHOICES[path]}; got {value!r}.")


# Numeric fields that cannot work outside a range: (lowest, strict), i.e. value > lowest when
# strict, else value >= lowest; every float must also be finite.
RANGES = {
    "batch_size": (1, False),
    "seed": (0, False),
    "model.bits": (1, False),
    "model.width": (0, False),
    "loss.w_ce": (0.0, False),
    "loss.w_sim": (0.0, False),
    "loss.w_kl": (0.0, False),
    "loss.w_quant": (0.0, False),
    "loss.w_balance": (0.0, False),
    "loss.power": (0.0, True),
    "loss.k": (1, False),
    "loss.kl_sigma": (0.0, True),
    "loss.kl_floor": (0.0, True),
    "loss.kl_decorrelation": (0.0, False),
    "loss.label_smoothing": (0.0, False),
    "optim.learning_rate": (0.0, True),
    "optim.momentum": (0.0, False),
    "optim.weight_decay": (0.0, False),
    "optim.warmup_steps": (0, False),
    "optim.backbone_lr_scale": (0.0, False),
    "optim.grad_clip": (0.0, False),
    "train.steps": (0, False),
    "train.epochs": (0.0, True),
    "train.log_every": (1, False),
    "train.checkpoint_every": (1, False),
    "train.keep_checkpoints": (1, False),
    "eval.every": (0, False),
    "eval.map_k": (1, False),
    "eval.mahp_k": (1, False),
    "eval.batch_size": (0, False),
}
BELOW_ONE = ("loss.label_smoothing", "optim.momentum")  # must also be < 1


def _check_ranges(config) -> None:
    import math

    for path, (lowest, strict) in RANGES.items():
        if path == "train.epochs" and config.train.steps > 0:
            continue  # train.steps sets the length
        value = config
        for name in path.split("."):
            value = value[name]
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"config key {path!r} must be finite; got {value}.")
        if (value <= lowest) if strict else (value < lowest):
            bound = f"> {lowest}" if strict else f">= {lowest}"
            raise ValueError(f"config key {path!r} must be {bound}; got {value}.")
        if path in BELOW_ONE and not value < 1:
            raise ValueError(f"config key {path!r} must be < 1; got {value}.")


def validate_config(config) -> ml_collections.ConfigDict:
    """``config`` with every missing key filled from the defaults, after checking its keys.

    Raises ValueError naming an unknown key (with the closest known one), a wrong type or a
    value outside the allowed choices; the data block is checked by jaxhash.data.
    """
    from jaxhash.data.config import data_config

    if isinstance(config, dict):
        config = ml_collections.ConfigDict(config)
    defaults = default_config()
    _check(config, defaults, "")
    merged = default_config()
    merged.update(config)  # nested ConfigDicts update recursively
    for name in ("batch_size", "seed"):
        if merged[name] is None:
            raise ValueError(f"config key {name!r} must be set.")
    _check_ranges(merged)
    data_config(merged)  # raises on a bad data block
    return merged
