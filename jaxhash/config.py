"""The experiment config: one schema (defaults), and the one validator of every field.

Experiment files in ``configs/`` return ``get_config()`` built on :func:`default_config` and
override a few fields (big_vision style). :func:`validate_config` checks a config against the
defaults at the entry points (``jaxhash.train.run``, ``jaxhash.run_folder``, the
input pipeline's ``jaxhash.data.data_config``): every key must exist there (a typo is an error
naming the key and the closest known one), every value must have the default's type (the
``data`` block's fields, many of them optional, by the rules in ``_DATA_RULES``) and lie among
its allowed choices. Each setting has one name: the global batch size is ``batch_size``, the
evaluation batch size ``eval.batch_size``, the seed of everything ``seed``.

On the command line (``jaxhash train``), ``--set`` takes ``key.path=value`` items, each value a
Python literal, else taken as a string (repeated ``--set`` flags add up)::

    jaxhash train --config configs/demo.py:quick --workdir runs/q \\
        --set model.bits=32 data.image_size=64 data.mean="(0.5, 0.5, 0.5)" data.manual_dir=/data
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from jaxhash import methods

DATASETS = ("synthetic_hierarchy", "cifar100", "imagenet2012", "image_folder", "captions")
AUGMENT_STYLES = ("auto", "none", "crop_flip", "resized_crop_flip")


def default_config() -> ml_collections.ConfigDict:
    """Defaults of every field; the data block defaults to the embedded synthetic data set."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.batch_size = 256  # global, over all devices and hosts

    c.model = ml_collections.ConfigDict()
    c.model.name = "small_cnn"  # small_cnn, resnet18, resnet50, fast_cnn, fast_resnet
    c.model.bits = 64
    c.model.stem = "cifar"  # cifar (32x32) or imagenet (224x224)
    c.model.width = 0  # 0: the backbone's default
    # fast_cnn / fast_resnet: the three stage widths ([]: 64, 256, 256 / 128, 384, 512).
    c.model.widths = []
    # fast_cnn / fast_resnet: the whitening stem, set on a fresh run from whitening_images
    # training images spread over the split and saved with the checkpoints: "frozen" (as
    # airbench) or "trained".
    c.model.whitening = "frozen"
    c.model.whitening_images = 5000
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
    # Class similarity: of the hierarchy (lcs_height, wup, path) or "text", the sentence
    # embeddings of class descriptions (jaxhash.semantics.class_text; the "text" extra).
    c.loss.similarity = "lcs_height"
    c.loss.normalize = "mean"  # mean, row, none
    c.loss.power = 2.0
    c.loss.kl_form = methods.PAPER_KL[0]  # wkv (the paper's literal estimate), sphere, corner,
    # smoothed_prior, marginal: see jaxhash.losses.binary_kl_loss
    c.loss.kl_sigma = 0.5  # smoothed_prior: standard deviation of the prior around each corner
    c.loss.kl_floor = 0.1  # corner: floor on the distance to the nearest corner
    c.loss.kl_decorrelation = 1.0  # marginal: weight of ||Z^T Z / n - I||^2 / K^2
    c.loss.k = 1  # kNN order of the KL estimate
    c.loss.knn = "global"  # global (all-gathered batch) or per_device
    # The kNN search of the kNN KL forms: auto (the fused Pallas kernel on GPUs and TPUs, XLA
    # on CPUs), xla or pallas (jaxhash.knn.kth_neighbor_indices).
    c.loss.knn_impl = "auto"
    c.loss.label_smoothing = 0.0

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "sgd"  # sgd (with momentum) or adamw
    c.optim.learning_rate = 0.1
    c.optim.momentum = 0.9
    c.optim.nesterov = True
    c.optim.weight_decay = 5e-4
    # Decay 1-D parameters (biases, BatchNorm offsets and scales) too; off as in the Flax
    # ImageNet example and big_vision, where only kernels are decayed.
    c.optim.decay_vectors = False
    c.optim.warmup_steps = 100
    c.optim.schedule = "cosine"  # after the warm-up: cosine or linear decay to 0
    # Lookahead (jaxhash.state.lookahead): every N updates the weights move to slow weights
    # averaged with decay growing as lookahead_decay * (t / T)^3 (0: off; airbench: 5, 0.95^5).
    c.optim.lookahead_every = 0
    c.optim.lookahead_decay = 0.95**5
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
    c.eval.similarity = "lcs_height"  # class similarity for mAHP@k (Barz & Denzler), or text
    c.eval.rankings = ["hamming", "cosine"]
    c.eval.batch_size = 0  # 0: config.batch_size
    c.eval.baseline = True
    # Test-time augmentation: codes are sign of the mean z over the views: "none", "flip"
    # (image and mirror) or "flip_translate" (and both shifted by 1 pixel up-left and
    # down-right, reflect-padded; airbench's level 2).
    c.eval.tta = "none"

    c.distributed = ml_collections.ConfigDict()
    c.distributed.initialize = False  # call jax.distributed.initialize() before training
    c.distributed.coordinator_address = ""  # "": auto-detect (TPU pods, SLURM, ...)
    c.distributed.num_processes = 0  # 0: auto-detect
    c.distributed.process_id = -1  # -1: auto-detect
    c.distributed.cpu_collectives = "gloo"  # collectives between CPU processes

    c.data = data_defaults()
    return c


def data_defaults() -> ml_collections.ConfigDict:
    """The ``data`` block: what the input pipeline (``jaxhash.data``) reads; its defaults run
    the embedded data set offline. Fields documented "None: ..." are optional."""
    d = ml_collections.ConfigDict()
    d.name = "synthetic_hierarchy"  # one of DATASETS
    # TFDS data folder of prepared data sets (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    d.data_dir = None
    # Manually downloaded data: for cifar100 the official cifar-100-binary.tar.gz or
    # cifar-100-python.tar.gz or an .npz with x_train, y_train_fine, y_train_coarse, x_test, ...;
    # for imagenet2012 the folder with the two ILSVRC2012 tars.
    d.manual_dir = None
    d.download = False  # allow TFDS to download (cifar100 only; never implied)
    # Read a cifar-100-python.tar.gz in manual_dir whose sha256 is not the official archive's:
    # your own build of the archive. Its pickles are code: only for archives you made.
    d.allow_unverified_archive = False
    d.folder = None  # image_folder root, laid out root/split/label/*.jpg (e.g. Tiny ImageNet)
    d.image_size = None  # side of the square images (None: 32 for 32x32 data sets, else 224)
    d.shuffle_buffer = 16_384  # shuffle buffer of streamed data sets (in-memory ones permute)
    # "auto" (pad-crop-flip for the 32x32 data sets, random-resized-crop-flip otherwise),
    # "none", "crop_flip" or "resized_crop_flip"; True / False mean "auto" / "none".
    d.augment = "auto"
    d.crop_padding = 4  # pixels of padding before the random crop of "crop_flip"
    # "zeros" or "reflect" (mirror the border; in-memory 32x32 data, e.g. the fast recipe).
    d.crop_padding_mode = "zeros"
    # Flips of "crop_flip": "random" (each epoch anew) or "alternating" (a random half in
    # even epochs, the other half in odd ones: every image seen both ways every two epochs;
    # airbench); "alternating" needs in-memory data.
    d.flip = "random"
    d.crop_scale = [0.08, 1.0]  # area fraction range of "resized_crop_flip"
    d.crop_ratio = [3 / 4, 4 / 3]  # aspect-ratio range of "resized_crop_flip"
    # Central crop side / shorter image side at evaluation (None: 1.0 for "crop_flip" data,
    # 0.875 otherwise, i.e. resize 256 -> crop 224).
    d.eval_crop_fraction = None
    d.mean = None  # per-channel normalisation in [0, 1] pixel units (None: the data set's own)
    d.std = None
    d.image_dtype = "float32"  # float32 or bfloat16 images in the batches
    # Keep only these classes, relabelled 0..n-1 in this order: a list of class names, or
    # "imagenet100" (the ImageNet-100 hashing subset; for wnid-labelled data). None: all.
    d.classes = None
    # Zero-shot: class names left out of training (labels keep their value; evaluate them with
    # subset="holdout").
    d.holdout_classes = []
    d.hierarchy = "wordnet"  # class tree of cifar100: wordnet or two_level
    d.wordnet_dir = None  # folder holding corpora/wordnet (None: nltk's search path)
    # Load each split into host memory (None: when the prepared data set is smaller than
    # memory_limit_mb); otherwise stream it from TFDS.
    d.in_memory = None
    d.memory_limit_mb = 4096
    # How the data is read: "tfds" (prepared once as a TFDS data set, then read from it) or
    # "numpy" (cifar100 only: the .npz in manual_dir read straight into memory, no TensorFlow
    # needed, e.g. on an accelerator image without it; rows in the file's order, so the
    # examples come in another order than with "tfds" and runs are not bit-identical to its).
    d.reader = "tfds"
    d.prefetch = 2  # global batches prepared ahead on the devices
    # The synthetic_hierarchy data set (its images are a function of these).
    d.synthetic_seed = 0
    d.synthetic_train_per_class = 256
    d.synthetic_test_per_class = 64
    # Captions: a TSV of caption<TAB>image-file (or file<TAB>caption) lines, several lines may
    # name the same image; images_dir is what its file names are relative to.
    d.captions_tsv = None
    d.images_dir = None
    d.captions_columns = "auto"  # auto (the column naming an existing file), caption,file, ...
    d.captions_test_fraction = 0.1  # share of images (by a hash of the file name) in "test"
    # Add caption_embedding [B, 384] (all-MiniLM-L6-v2, computed once and cached; needs the
    # optional "text" extra).
    d.caption_embeddings = False
    # "mean" (normalised mean of an image's caption embeddings) or "sample" (one caption per
    # example and epoch, from the seed).
    d.caption_target = "mean"
    d.embedding_cache = None  # folder of the embedding cache (None: <data_dir>/jaxhash_embeddings)
    return d


def demo_config(arg: str = ""):
    """The demo: the embedded synthetic_hierarchy data, a small CNN, 32 bits, the paper's loss
    (``jaxhash.methods`` "paper", the defaults).

    ``arg="quick"`` shrinks it to seconds on a CPU (tests use it).
    """
    c = default_config()
    # 1,200 steps of 64 without augmentation: on this data crops and flips cost more than they
    # give at a few-minute budget (measured with the KL weight at 1: mAHP@250 0.617 vs 0.511
    # with crop_flip at 1,000 steps; 400 steps of 128, the earlier setting, gave 0.417;
    # benchmarks/RESULTS.md, "Demo").
    c.batch_size = 64
    c.model.width = 16
    c.model.bits = 32
    c.optim.learning_rate = 0.05
    c.optim.warmup_steps = 100
    # Weight decay on every parameter, as before optim.decay_vectors existed: over seeds 0-2
    # the demo's Hamming mAP@250 / mAHP@250 averaged 0.754 / 0.691 with it and 0.747 / 0.673
    # with kernels only (benchmarks/RESULTS.md, "Demo"): no better, so the demo is unchanged.
    c.optim.decay_vectors = True
    c.train.steps = 1200
    c.train.checkpoint_every = 400
    c.data.augment = "none"
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
        c.data.augment = "auto"  # the tests' runs go through the augmentation path too
    elif arg:
        raise ValueError(f"demo config argument must be '' or 'quick'; got {arg!r}.")
    return c


def load_config_file(spec: str):
    """``path.py[:arg]`` -> that file's ``get_config(arg)`` (``get_config()`` without arg)."""
    import importlib.util
    from pathlib import Path

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


def apply_overrides(config, overrides) -> None:
    """Apply ``key.path=value`` strings (values parsed as Python literals, else strings)."""
    import ast

    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(
                f"override {item!r} must look like key.path=value; e.g. --set model.bits=32."
            )
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        node, prefix = config, ""
        *parents, leaf = key.split(".")
        for name in parents:
            check_known(name, node.keys(), prefix)
            node, prefix = node[name], f"{prefix}{name}."
            if not isinstance(node, ml_collections.ConfigDict | Mapping):
                raise ValueError(
                    f"config key {prefix[:-1]!r} is a value, not a block of keys (override "
                    f"{item!r}); check the key path."
                )
        check_known(leaf, node.keys(), prefix)
        node[leaf] = value


CHOICES = {
    "model.name": ("small_cnn", "resnet18", "resnet50", "fast_cnn", "fast_resnet"),
    "model.whitening": ("frozen", "trained"),
    "optim.schedule": ("cosine", "linear"),
    "eval.tta": ("none", "flip", "flip_translate"),
    "data.crop_padding_mode": ("zeros", "reflect"),
    "data.flip": ("random", "alternating"),
    "model.stem": ("cifar", "imagenet"),
    "model.hash_activation": ("linear", "tanh"),
    "model.classifier_input": ("codes", "features"),
    "model.dtype": ("float32", "bfloat16"),
    "loss.similarity": ("lcs_height", "wup", "path", "text"),
    "loss.normalize": ("mean", "row", "none"),
    "loss.knn": ("global", "per_device"),
    "loss.knn_impl": ("auto", "xla", "pallas"),
    "loss.kl_form": ("wkv", "sphere", "corner", "smoothed_prior", "marginal"),
    "optim.name": ("sgd", "adamw"),
    "eval.protocol": ("database_is_query", "query_database", "zero_shot"),
    "eval.ties": ("stable", "random", "expected"),
    "eval.similarity": ("lcs_height", "wup", "path", "text"),
    "data.name": DATASETS,
    "data.image_dtype": ("float32", "bfloat16"),
    "data.hierarchy": ("wordnet", "two_level"),
    "data.reader": ("tfds", "numpy"),
    "data.captions_columns": ("auto", "caption,file", "file,caption"),
    "data.caption_target": ("mean", "sample"),
}


def _fail(key: str, expected: str, value) -> None:
    raise ValueError(
        f"config key {key!r} must be {expected}; got {value!r} ({type(value).__name__})."
    )


def _int(key, value, minimum=None, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, "an int" + (" or None" if optional else ""), value)
    if minimum is not None and value < minimum:
        _fail(key, f"an int >= {minimum}", value)
    return int(value)


def _path(key, value):
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not str(value):
        _fail(key, "a non-empty string or None", value)
    return os.fspath(value)


def _number(key, value, low, high, *, optional=False, closed_low=False):
    """A float in ``(low, high]`` (``[low, high)`` with ``closed_low``)."""
    if value is None and optional:
        return None
    inside = isinstance(value, int | float) and not isinstance(value, bool)
    if inside:
        inside = low <= value < high if closed_low else low < value <= high
    if not inside:
        bounds = f"[{low}, {high})" if closed_low else f"({low}, {high}]"
        _fail(key, f"a number in {bounds}" + (" or None" if optional else ""), value)
    return float(value)


def _floats(key, value, length, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != length:
        _fail(key, f"a sequence of {length} numbers" + (" or None" if optional else ""), value)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        _fail(key, f"a sequence of {length} numbers", value)
    return tuple(float(v) for v in value)


def _range(key, value):
    low, high = _floats(key, value, 2)
    if not 0 < low <= high or (key == "data.crop_scale" and high > 1):
        bound = " <= 1" if key == "data.crop_scale" else ""
        _fail(key, f"(low, high) with 0 < low <= high{bound}", value)
    return low, high


def _names(key, value):
    if isinstance(value, str) or not isinstance(value, Sequence):
        _fail(key, "a list of class names", value)
    names = tuple(str(v) for v in value)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"config key {key!r} lists classes more than once: {repeated}.")
    return names


def _classes(key, value):
    if value is None or value == "imagenet100":
        return value
    names = _names(key, value)
    if not names:
        _fail(key, "None, 'imagenet100' or a non-empty list of class names", value)
    return names


def _flag(key, value, optional=False):
    if not isinstance(value, bool) and not (optional and value is None):
        _fail(key, "True, False or None (automatic)" if optional else "True or False", value)
    return value


def _augment(key, value):
    if not isinstance(value, bool) and value not in AUGMENT_STYLES:
        _fail(key, f"True, False or one of {AUGMENT_STYLES}", value)
    return value


def _std(key, value):
    value = _floats(key, value, 3, optional=True)
    if value is not None and min(value) <= 0:
        _fail(key, "three positive numbers", value)
    return value


def _choice(key, value):
    if value not in CHOICES[key]:
        _fail(key, f"one of {CHOICES[key]}", value)
    return value


# The data block's fields take None (optional) or several types, so each has its own rule:
# rule(key, value) -> the value normalised (tuples, floats, plain paths) or a ValueError.
_DATA_RULES = {
    "name": _choice,
    "data_dir": _path,
    "manual_dir": _path,
    "download": _flag,
    "allow_unverified_archive": _flag,
    "folder": _path,
    "image_size": lambda k, v: _int(k, v, minimum=1, optional=True),
    "shuffle_buffer": lambda k, v: _int(k, v, minimum=1),
    "augment": _augment,
    "crop_padding": lambda k, v: _int(k, v, minimum=0),
    "crop_padding_mode": _choice,
    "flip": _choice,
    "crop_scale": _range,
    "crop_ratio": _range,
    "eval_crop_fraction": lambda k, v: _number(k, v, 0, 1, optional=True),
    "mean": lambda k, v: _floats(k, v, 3, optional=True),
    "std": _std,
    "image_dtype": _choice,
    "classes": _classes,
    "holdout_classes": lambda k, v: _names(k, v or ()),
    "hierarchy": _choice,
    "wordnet_dir": _path,
    "in_memory": lambda k, v: _flag(k, v, optional=True),
    "memory_limit_mb": lambda k, v: _int(k, v, minimum=1),
    "reader": _choice,
    "prefetch": lambda k, v: _int(k, v, minimum=0),
    "synthetic_seed": lambda k, v: _int(k, v, minimum=0),
    "synthetic_train_per_class": lambda k, v: _int(k, v, minimum=1),
    "synthetic_test_per_class": lambda k, v: _int(k, v, minimum=1),
    "captions_tsv": _path,
    "images_dir": _path,
    "captions_columns": _choice,
    "captions_test_fraction": lambda k, v: _number(k, v, 0, 1, closed_low=True),
    "caption_embeddings": _flag,
    "caption_target": _choice,
    "embedding_cache": _path,
}


def data_values(data) -> dict:
    """The ``data`` block's values checked and normalised (lists as tuples, plain paths);
    ``data`` holds every field (a block of a config from :func:`validate_config`)."""
    return {key: rule(f"data.{key}", _plain(data[key])) for key, rule in _DATA_RULES.items()}


def _plain(value):
    """ConfigDict -> dict, FieldReference -> its value; anything else unchanged."""
    if isinstance(value, ml_collections.ConfigDict):
        return value.to_dict()
    if isinstance(value, ml_collections.FieldReference):
        return value.get()
    return value


def check_known(key: str, known, prefix: str = "") -> None:
    """A ValueError for a ``key`` not in ``known``, naming the closest known one."""
    if key in known:
        return
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
    known = sorted(known)
    raise ValueError(f"unknown config key {prefix + key!r}.{hint} Known keys here: {known}.")


def _check(config, defaults, prefix: str) -> None:
    for key in config.keys():
        path = f"{prefix}{key}"
        check_known(key, defaults.keys(), prefix)
        value, default = config[key], defaults[key]
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict | Mapping):
                raise ValueError(f"config key {path!r} must be a block of keys; got {value!r}.")
            _check(ml_collections.ConfigDict(value), default, f"{path}.")
            continue
        if prefix == "data.":
            _DATA_RULES[key](path, _plain(value))
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
    "model.whitening_images": (1, False),
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
    "optim.lookahead_every": (0, False),
    "optim.lookahead_decay": (0.0, False),
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
BELOW_ONE = ("loss.label_smoothing", "optim.momentum", "optim.lookahead_decay")  # must also be < 1


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
    value outside the allowed choices, in any block (``data`` included).
    """
    if isinstance(config, Mapping):
        config = ml_collections.ConfigDict(config)
    defaults = default_config()
    _check(config, defaults, "")
    merged = default_config()
    merged.update(config)  # nested ConfigDicts update recursively
    for name in ("batch_size", "seed"):
        if merged[name] is None:
            raise ValueError(f"config key {name!r} must be set.")
    _check_ranges(merged)
    return merged


# What a rerun may change and still resume a run folder's checkpoint (``jaxhash.train.run``):
# how long it runs, what it logs, how it checkpoints and evaluates, where it finds its data and
# how its processes connect. A key ending in "." covers its block. Any other difference stops
# the rerun unless it is allowed explicitly (``--allow-config-change``).
RESUMABLE_CHANGES = (
    "train.steps",
    "train.epochs",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.tensorboard",
    "eval.",
    "data.data_dir",
    "data.manual_dir",
    "data.wordnet_dir",
    "data.embedding_cache",
    "data.prefetch",
    "distributed.",
)


# Fields added with a default that differs from what runs saved before them did: the value
# those runs trained with, filled in when a saved config lacks the field (saved_config).
FORMER_DEFAULTS = {"optim.decay_vectors": True}


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


def config_changes(old, new) -> dict[str, tuple[Any, Any]]:
    """``{key: (old value, new value)}`` of the fields where ``new`` differs from ``old``,
    both validated, except :data:`RESUMABLE_CHANGES`; values compared as JSON."""

    def flat(config) -> dict[str, Any]:
        rows: dict[str, Any] = {}

        def walk(node, prefix):
            for key, value in node.items():
                if isinstance(value, Mapping):
                    walk(value, f"{prefix}{key}.")
                else:
                    rows[prefix + key] = value

        walk(json.loads(validate_config(config).to_json_best_effort()), "")
        return rows

    before, after = flat(old), flat(new)
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
        and not any(
            key == kept or (kept.endswith(".") and key.startswith(kept))
            for kept in RESUMABLE_CHANGES
        )
    }
