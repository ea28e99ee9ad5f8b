"""The experiment schema as one table: every config field with its default, what it accepts and
what it does.

Everything else about the config is derived from :data:`FIELDS`: :func:`default_config` (the
defaults), :func:`jaxhash.config.validate_config` (types, choices and bounds),
:func:`jaxhash.config.apply_overrides` (``--set``), :func:`jaxhash.config.config_changes` (what a
resume may change) and the reference page ``docs/config.md``. A field is a row here or it does not
exist: adding a field means adding its row, and nothing else can forget it.

What a field accepts: the plain type of its default (bool, int, float (an int is accepted), str,
list), narrowed by ``choices`` or by bounds named as in JSON Schema (``minimum``: value >= m,
``exclusive_minimum``: value > m, ``exclusive_maximum``: value < m; floats must also be finite);
or a :class:`~jaxhash.config.kinds.Kind` for values a plain type cannot describe (optional
values, paths, number tuples, class lists). ``resumable`` fields may change when a rerun resumes
a run folder's checkpoint; ``former_default`` is the value runs saved before the field existed
trained with.
"""

from __future__ import annotations

import copy
import dataclasses
import pkgutil
from pathlib import Path
from typing import Any

import ml_collections

from jaxhash import methods
from jaxhash.config import kinds
from jaxhash.losses import KL_FORMS


def _dataset_modules() -> tuple[str, ...]:
    """The data sets of :mod:`jaxhash.data.datasets`, one module each, read from its folder
    without importing it (importing ``jaxhash.data`` would import this package again): adding a
    data set's module adds its name here."""
    folder = Path(__file__).resolve().parents[1] / "data" / "datasets"
    return tuple(sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if not m.ispkg))


DATASETS = _dataset_modules()
SIMILARITIES = ("lcs_height", "wup", "path", "text")


class _Unchanged:
    """The ``former_default`` of a field whose default has not changed since it was added."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field: its dotted ``name`` (``"model.bits"``), ``default``, a one-line ``doc``
    and what it accepts (see the module docstring)."""

    name: str
    default: Any
    doc: str
    kind: kinds.Kind | None = None
    choices: tuple | None = None
    minimum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    resumable: bool = False
    former_default: Any = UNCHANGED

    @property
    def block(self) -> str:
        """The block the field belongs to ("" for top-level fields)."""
        return self.name.rpartition(".")[0]


F = Field
# The blocks, in the reference's order, with what each is for.
BLOCKS = {
    "": "run-wide settings",
    "model": "the network (backbone, hash head, classifier head)",
    "loss": "the loss terms and their weights (jaxhash.losses)",
    "optim": "the optimiser and its schedule",
    "train": "run length, logging and checkpoints (all may change on resume)",
    "eval": "evaluation during and after training (all may change on resume)",
    "distributed": "how processes connect (all may change on resume)",
    "data": "the input pipeline (jaxhash.data); the defaults run the embedded data set offline",
}

FIELDS: tuple[Field, ...] = (
    F("seed", 0, "seed of everything: initialisation, data order, augmentation", minimum=0),
    F("batch_size", 256, "global batch size, over all devices and hosts", minimum=1),
    # model
    F("model.name", "small_cnn", "backbone",
      choices=("small_cnn", "resnet18", "resnet50", "fast_cnn", "fast_resnet")),
    F("model.bits", 64, "code length K", minimum=1),
    F("model.stem", "cifar", "ResNet stem: cifar (32x32 inputs) or imagenet (224x224)",
      choices=("cifar", "imagenet")),
    F("model.width", 0, "backbone width (0: the backbone's default)", minimum=0),
    F("model.widths", [], "fast_cnn / fast_resnet: the three stage widths "
      "([]: 64, 256, 256 / 128, 384, 512)"),
    F("model.whitening", "frozen", "fast_cnn / fast_resnet: the whitening stem, set on a fresh "
      "run from training images and saved with the checkpoints, then frozen (airbench) or "
      "trained", choices=("frozen", "trained")),
    F("model.whitening_images", 5000, "training images, spread over the split, that set the "
      "whitening stem", minimum=1),
    F("model.hash_activation", "linear", "activation of the hash layer's output z",
      choices=("linear", "tanh")),
    F("model.classifier_input", "codes", "what the classifier head reads: the codes (the "
      "bottleneck, as in the paper) or the backbone features", choices=("codes", "features")),
    F("model.dtype", "float32", "compute dtype (parameters stay float32)",
      choices=("float32", "bfloat16")),
    F("model.pretrained", "", "orbax checkpoint with params['backbone'] to start from "
      "(\"\": none)"),
    # loss: the defaults are jaxhash.methods "paper": CE + 3 x similarity + the KL form and
    # weight that measured best on CIFAR-100 (README).
    F("loss.w_ce", 1.0, "weight of the classifier's cross-entropy", minimum=0.0),
    F("loss.w_sim", methods.SIM_WEIGHT, "weight of the similarity (distance-matching) loss",
      minimum=0.0),
    F("loss.w_kl", methods.PAPER_KL[1], "weight of the KL term", minimum=0.0),
    F("loss.w_quant", 0.0, "weight of the quantisation loss (|z| - 1)^2", minimum=0.0),
    F("loss.w_balance", 0.0, "weight of the bit-balance loss", minimum=0.0),
    F("loss.similarity", "lcs_height", "class similarity: of the hierarchy (lcs_height, wup, "
      "path), or text: sentence embeddings of class descriptions (jaxhash.semantics.class_text; "
      "the \"text\" extra)", choices=SIMILARITIES),
    F("loss.normalize", "mean", "normalisation of the similarity loss",
      choices=("mean", "row", "none")),
    F("loss.power", 2.0, "power of the distance mismatch in the similarity loss",
      exclusive_minimum=0.0),
    F("loss.kl_form", methods.PAPER_KL[0], "form of the KL term: wkv is the paper's literal "
      "estimate (jaxhash.losses.binary_kl_loss)", choices=KL_FORMS),
    F("loss.kl_sigma", 0.5, "smoothed_prior: standard deviation of the prior around each corner",
      exclusive_minimum=0.0),
    F("loss.kl_floor", 0.1, "corner: floor on the distance to the nearest corner",
      exclusive_minimum=0.0),
    F("loss.kl_decorrelation", 1.0, "marginal: weight of ||Z^T Z / n - I||^2 / K^2",
      minimum=0.0),
    F("loss.k", 1, "kNN order of the KL estimate", minimum=1),
    F("loss.knn", "global", "kNN over the all-gathered global batch or per device",
      choices=("global", "per_device")),
    F("loss.knn_impl", "auto", "kNN search of the kNN KL forms: auto (the fused Pallas kernel "
      "on GPUs and TPUs, XLA on CPUs), xla or pallas (jaxhash.knn.kth_neighbor_indices)",
      choices=("auto", "xla", "pallas")),
    F("loss.label_smoothing", 0.0, "label smoothing of the cross-entropy", minimum=0.0,
      exclusive_maximum=1),
    # optim
    F("optim.name", "sgd", "optimiser: sgd (with momentum) or adamw", choices=("sgd", "adamw")),
    F("optim.learning_rate", 0.1, "peak learning rate", exclusive_minimum=0.0),
    F("optim.momentum", 0.9, "momentum of sgd", minimum=0.0, exclusive_maximum=1),
    F("optim.nesterov", True, "Nesterov momentum for sgd"),
    F("optim.weight_decay", 5e-4, "weight decay", minimum=0.0),
    F("optim.decay_vectors", False, "decay 1-D parameters (biases, BatchNorm offsets and scales) "
      "too; off as in the Flax ImageNet example and big_vision", former_default=True),
    F("optim.warmup_steps", 100, "steps of linear warm-up", minimum=0),
    F("optim.schedule", "cosine", "after the warm-up: cosine or linear decay to 0",
      choices=("cosine", "linear")),
    F("optim.lookahead_every", 0, "Lookahead (jaxhash.state.lookahead): every N updates the "
      "weights move to slow weights (0: off; airbench: 5)", minimum=0),
    F("optim.lookahead_decay", 0.95**5, "Lookahead: decay of the slow weights, reached as "
      "lookahead_decay * (t / T)^3 (airbench: 0.95^5)", minimum=0.0, exclusive_maximum=1),
    F("optim.backbone_lr_scale", 1.0, "learning-rate factor of the backbone (< 1: lower)",
      minimum=0.0),
    F("optim.grad_clip", 0.0, "global gradient-norm clip (0: none)", minimum=0.0),
    # train
    F("train.steps", 0, "training steps (0: from train.epochs)", minimum=0, resumable=True),
    F("train.epochs", 10.0, "epochs of training when train.steps is 0 (only then checked)",
      exclusive_minimum=0.0, resumable=True),
    F("train.log_every", 50, "steps between log lines", minimum=1, resumable=True),
    F("train.checkpoint_every", 500, "steps between checkpoints", minimum=1, resumable=True),
    F("train.keep_checkpoints", 2, "checkpoints kept", minimum=1, resumable=True),
    F("train.tensorboard", True, "write TensorBoard summaries", resumable=True),
    # eval
    F("eval.every", 0, "steps between evaluations during training (0: only at the end)",
      minimum=0, resumable=True),
    F("eval.at_end", True, "evaluate when training ends", resumable=True),
    F("eval.split", "", "split to evaluate (\"\": the data set's evaluation split)",
      resumable=True),
    F("eval.protocol", "database_is_query", "evaluation protocol",
      choices=("database_is_query", "query_database", "zero_shot"), resumable=True),
    F("eval.query_split", "", "query_database: the queries' split (database: eval.split)",
      resumable=True),
    F("eval.map_k", 250, "k of mAP@k", minimum=1, resumable=True),
    F("eval.mahp_k", 250, "k of mAHP@k", minimum=1, resumable=True),
    F("eval.ties", "stable", "order of equal Hamming distances in the ranking",
      choices=("stable", "random", "expected"), resumable=True),
    F("eval.similarity", "lcs_height", "class similarity for mAHP@k (Barz & Denzler), or text",
      choices=SIMILARITIES, resumable=True),
    F("eval.rankings", ["hamming", "cosine"], "rankings scored", resumable=True),
    F("eval.batch_size", 0, "evaluation batch size (0: batch_size)", minimum=0, resumable=True),
    F("eval.baseline", True, "also score the untrained-model baseline", resumable=True),
    F("eval.tta", "none", "test-time views, codes = sign of the mean z: none, flip (image and "
      "mirror) or flip_translate (and both shifted 1 pixel up-left and down-right, "
      "reflect-padded; airbench's level 2)", choices=("none", "flip", "flip_translate"),
      resumable=True),
    # distributed
    F("distributed.initialize", False, "call jax.distributed.initialize() before training",
      resumable=True),
    F("distributed.coordinator_address", "", "coordinator (\"\": auto-detect: TPU pods, "
      "SLURM, ...)", resumable=True),
    F("distributed.num_processes", 0, "processes (0: auto-detect)", resumable=True),
    F("distributed.process_id", -1, "this process's id (-1: auto-detect)", resumable=True),
    F("distributed.cpu_collectives", "gloo", "collectives between CPU processes",
      resumable=True),
    # data
    F("data.name", "synthetic_hierarchy", "data set", choices=DATASETS),
    F("data.data_dir", None, "TFDS folder of prepared data sets (None: $TFDS_DATA_DIR or "
      "~/tensorflow_datasets)", kind=kinds.PATH, resumable=True),
    F("data.manual_dir", None, "manually downloaded data: for cifar100 the official "
      "cifar-100-binary.tar.gz or cifar-100-python.tar.gz, or an .npz with x_train, "
      "y_train_fine, y_train_coarse, x_test, ...; for imagenet2012 the folder with the two "
      "ILSVRC2012 tars", kind=kinds.PATH, resumable=True),
    F("data.download", False, "allow TFDS to download (cifar100 only; never implied)"),
    F("data.allow_unverified_archive", False, "read a cifar-100-python.tar.gz whose sha256 is "
      "not the official archive's (your own build: its pickles are code)"),
    F("data.folder", None, "image_folder root, laid out root/split/label/*.jpg (e.g. Tiny "
      "ImageNet)", kind=kinds.PATH),
    F("data.image_size", None, "side of the square images (None: 32 for 32x32 data sets, "
      "else 224)", kind=kinds.OPTIONAL_INT, minimum=1),
    F("data.shuffle_buffer", 16_384, "shuffle buffer of streamed data sets (in-memory ones "
      "permute)", minimum=1),
    F("data.augment", "auto", "auto (pad-crop-flip for 32x32 data sets, random-resized-crop-flip "
      "otherwise), none, crop_flip or resized_crop_flip; True / False mean auto / none",
      kind=kinds.AUGMENT),
    F("data.crop_padding", 4, "pixels of padding before the random crop of crop_flip",
      minimum=0),
    F("data.crop_padding_mode", "zeros", "padding of crop_flip: zeros, or reflect (mirror the "
      "border; in-memory 32x32 data)", choices=("zeros", "reflect")),
    F("data.flip", "random", "flips of crop_flip: random (each epoch anew) or alternating (a "
      "random half in even epochs, the other half in odd ones; airbench; in-memory data)",
      choices=("random", "alternating")),
    F("data.crop_scale", [0.08, 1.0], "area-fraction range of resized_crop_flip",
      kind=kinds.interval(at_most=1)),
    F("data.crop_ratio", [3 / 4, 4 / 3], "aspect-ratio range of resized_crop_flip",
      kind=kinds.interval()),
    F("data.eval_crop_fraction", None, "central crop side / shorter image side at evaluation "
      "(None: 1.0 for crop_flip data, 0.875 otherwise, i.e. resize 256 -> crop 224)",
      kind=kinds.fraction(optional=True, closed_low=False)),
    F("data.mean", None, "per-channel normalisation mean in [0, 1] pixel units (None: the data "
      "set's own)", kind=kinds.RGB),
    F("data.std", None, "per-channel normalisation standard deviation (None: the data set's "
      "own)", kind=kinds.POSITIVE_RGB),
    F("data.image_dtype", "float32", "dtype of the images in the batches",
      choices=("float32", "bfloat16")),
    F("data.classes", None, "keep only these classes, relabelled 0..n-1 in this order: class "
      "names, or imagenet100 (the ImageNet-100 hashing subset; wnid-labelled data); None: all",
      kind=kinds.CLASS_SUBSET),
    F("data.holdout_classes", [], "zero-shot: class names left out of training (labels keep "
      "their value; evaluate them with subset=\"holdout\")", kind=kinds.CLASS_NAMES),
    F("data.hierarchy", "wordnet", "class tree of cifar100", choices=("wordnet", "two_level")),
    F("data.wordnet_dir", None, "folder holding corpora/wordnet (None: nltk's search path)",
      kind=kinds.PATH, resumable=True),
    F("data.in_memory", None, "load each split into host memory (None: when the prepared data "
      "set is smaller than memory_limit_mb); otherwise stream it from TFDS",
      kind=kinds.OPTIONAL_FLAG),
    F("data.memory_limit_mb", 4096, "size limit of in_memory=None", minimum=1),
    F("data.reader", "tfds", "tfds (prepared once as a TFDS data set, then read from it) or "
      "numpy (cifar100 only: the .npz in manual_dir read straight into memory, no TensorFlow; "
      "examples in the file's order, so not bit-identical to tfds)", choices=("tfds", "numpy")),
    F("data.prefetch", 2, "global batches prepared ahead on the devices", minimum=0,
      resumable=True),
    F("data.synthetic_seed", 0, "synthetic_hierarchy: seed of its images", minimum=0),
    F("data.synthetic_train_per_class", 256, "synthetic_hierarchy: training images per class",
      minimum=1),
    F("data.synthetic_test_per_class", 64, "synthetic_hierarchy: test images per class",
      minimum=1),
    F("data.captions_tsv", None, "captions: a TSV of caption<TAB>image-file (or "
      "file<TAB>caption) lines; several lines may name the same image", kind=kinds.PATH),
    F("data.images_dir", None, "captions: what the TSV's file names are relative to",
      kind=kinds.PATH),
    F("data.captions_columns", "auto", "captions: the TSV's columns (auto: the column naming an "
      "existing file)", choices=("auto", "caption,file", "file,caption")),
    F("data.captions_test_fraction", 0.1, "captions: share of images (by a hash of the file "
      "name) in test", kind=kinds.fraction(optional=False, closed_low=True)),
    F("data.caption_embeddings", False, "add caption_embedding [B, 384] (all-MiniLM-L6-v2, "
      "computed once and cached; the \"text\" extra)"),
    F("data.caption_target", "mean", "mean (normalised mean of an image's caption embeddings) "
      "or sample (one caption per example and epoch, from the seed)",
      choices=("mean", "sample")),
    F("data.embedding_cache", None, "folder of the embedding cache (None: "
      "<data_dir>/jaxhash_embeddings)", kind=kinds.PATH, resumable=True),
)
BY_NAME: dict[str, Field] = {field.name: field for field in FIELDS}


def default_config() -> ml_collections.ConfigDict:
    """Every field at its default (:data:`FIELDS`); the data block runs the embedded synthetic
    data set offline."""
    config = ml_collections.ConfigDict()
    for field in FIELDS:
        *blocks, leaf = field.name.split(".")
        node = config
        for block in blocks:
            if block not in node:
                node[block] = ml_collections.ConfigDict()
            node = node[block]
        node[leaf] = copy.deepcopy(field.default)
    return config


def data_defaults() -> ml_collections.ConfigDict:
    """The ``data`` block at its defaults: what the input pipeline (``jaxhash.data``) reads."""
    return default_config().data
