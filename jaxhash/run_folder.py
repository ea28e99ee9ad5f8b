"""A run folder, opened: to encode and evaluate with (:func:`open_run`) or to train on
(:func:`restore_run`).

    workdir/checkpoints/<step>/state    the train state (:mod:`jaxhash.checkpoints`, orbax)
                              /config   the config it was trained with
                              /inputs   what encoding an image needs (:class:`RunInputs`)
    workdir/eval/step_<N>/              evaluation reports (:mod:`jaxhash.evaluation`)
    workdir/metrics.jsonl               training metrics

:func:`open_run` is the one way to open a trained run for inference (``jaxhash evaluate``,
``encode``, ``index``, ``query``, ``serve`` and the notebook), as big_vision and the flax
examples restore for evaluation: the config and inputs saved with the newest checkpoint, the
model, the mesh, the newest good checkpoint's parameters and batch statistics (never its
optimiser state, which is for training: ``checkpoints.restore_variables``) and the encode
function ``z(variables, images)``. It opens no data set: the inputs say how an image is
cropped, resized and normalised and how many classes the model has, so a folder of photos is
encoded without the training data. The data set is opened when a split is encoded or
evaluated (:attr:`TrainedRun.info`). Checkpoints written before they held ``inputs`` open
through their data set's description instead (``jaxhash.data.get_dataset_info``), as before.

:func:`restore_run` sets a run up for training: data info, model, optimiser, checkpoint
manager and the newest whole state (or the initial one, its whitening stem set from training
images).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhash import checkpoints, models, test_time_augmentation
from jaxhash.config import validate_config
from jaxhash.parallel import make_mesh
from jaxhash.state import TrainState, build_model, create_state, make_optimizer, total_steps

log = logging.getLogger(__name__)

INPUTS_FORMAT = 1  # the version of RunInputs.to_json's fields


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What encoding an image with a run needs, saved with each of its checkpoints.

    An image is cropped to its central square of side ``crop_fraction * min(H, W)``, resized
    (bilinear) to ``image_size`` square (``jaxhash.data.views.file_view``), normalised as
    ``(x / 255 - mean) / std`` per channel and cast to ``image_dtype``, as the run's evaluation
    pipeline does; the model has ``len(class_names)`` classes (none for caption data).
    """

    image_size: int
    crop_fraction: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_dtype: str  # "float32" or "bfloat16"
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    @classmethod
    def of_info(cls, info) -> RunInputs:
        """The inputs of a data set's description (``jaxhash.data.DatasetInfo``)."""
        source = info.source
        return cls(
            image_size=int(source.image_size),
            crop_fraction=float(source.eval_crop_fraction),
            mean=tuple(float(v) for v in source.mean),
            std=tuple(float(v) for v in source.std),
            image_dtype=str(source.config.image_dtype),
            class_names=tuple(str(name) for name in source.class_names),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields, with ``format`` (:data:`INPUTS_FORMAT`)."""
        fields = dataclasses.asdict(self)
        return {
            "format": INPUTS_FORMAT,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()},
        }

    @classmethod
    def from_json(cls, fields: Mapping[str, Any]) -> RunInputs:
        """The inputs written by :meth:`to_json` (ValueError: another format)."""
        if fields.get("format") != INPUTS_FORMAT:
            raise ValueError(
                f"the checkpoint's inputs are of format {fields.get('format')!r}; this jaxhash "
                f"reads format {INPUTS_FORMAT}: use the jaxhash version that trained the run."
            )
        return cls(
            image_size=int(fields["image_size"]),
            crop_fraction=float(fields["crop_fraction"]),
            mean=tuple(float(v) for v in fields["mean"]),
            std=tuple(float(v) for v in fields["std"]),
            image_dtype=str(fields["image_dtype"]),
            class_names=tuple(str(name) for name in fields["class_names"]),
        )


@dataclasses.dataclass(eq=False)
class TrainedRun:
    """A trained run opened for inference (:func:`open_run`).

    ``variables``: ``{"params", "batch_stats"}`` of checkpoint ``step``, replicated over
    ``mesh``; ``encode_fn``: ``z(variables, images [B, S, S, 3]) -> float32 [B, K]`` in
    evaluation mode, averaged over the ``config.eval.tta`` views; ``fingerprint``: SHA-256 (16
    hex digits) of the saved config, which names the model in index files.
    """

    workdir: Path
    config: ml_collections.ConfigDict
    inputs: RunInputs
    model: models.HashingModel
    mesh: Mesh
    variables: dict
    step: int
    encode_fn: Callable[[dict, jax.Array], jax.Array]
    fingerprint: str
    _info: Any = dataclasses.field(default=None, repr=False)  # opened on first use

    @property
    def info(self):
        """The data set's description (``jaxhash.data.DatasetInfo``), opened on first use: the
        data set must be where the config says (splits, labels; not for encoding files)."""
        if self._info is None:
            from jaxhash import data

            self._info = data.get_dataset_info(self.config)
        return self._info

    @functools.cached_property
    def evaluator(self):
        """The run's :class:`jaxhash.evaluation.Evaluator` (opens the data set)."""
        from jaxhash.evaluation import Evaluator

        return Evaluator(self.config, self.info, self.model, self.mesh)

    def encode_split(self, split: str | None = None, subset: str = "all"):
        """z ``[N, K]``, labels, example ids and caption embeddings of ``split`` (default: the
        data set's evaluation split; :meth:`jaxhash.evaluation.Evaluator.encode`)."""
        return self.evaluator.encode(self.variables, split or self.info.eval_split, subset)

    def evaluate(self, workdir: str | os.PathLike | None = None) -> dict:
        """The evaluation report of this checkpoint, written under ``workdir`` (default: the
        run folder's ``eval/step_<N>``; :meth:`jaxhash.evaluation.Evaluator.evaluate`)."""
        return self.evaluator.evaluate(self, self.workdir if workdir is None else workdir)


def _no_checkpoint(workdir: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"run folder {workdir} has no checkpoint; train into it first (jaxhash train --workdir "
        f"{workdir} ...) or give the --workdir of a trained run."
    )


def _abstract_variables(model, image_shape, mesh: Mesh) -> dict:
    """``{"step", "params", "batch_stats"}`` of ``model`` as shapes, replicated over ``mesh``
    (traced, not computed)."""
    images = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
    init = functools.partial(model.init, train=False)
    shapes = jax.eval_shape(init, jax.random.key(0), images)
    tree = {
        "step": jax.ShapeDtypeStruct((), jnp.int32),
        "params": shapes["params"],
        "batch_stats": shapes.get("batch_stats", {}),
    }
    replicated = NamedSharding(mesh, P())
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), tree
    )


def open_run(
    workdir: str | os.PathLike,
    *,
    config: ml_collections.ConfigDict | None = None,
    mesh: Mesh | None = None,
) -> TrainedRun:
    """The newest good checkpoint of run folder ``workdir``, opened for inference.

    ``config``: evaluate with this config instead of the saved one (e.g. another
    ``eval.similarity``; the model must be the same). ``mesh``: default all devices. Raises
    FileNotFoundError (one line) when ``workdir`` holds no checkpoint, and the errors of
    ``jaxhash.checkpoints.restore_variables`` when none is usable.
    """
    workdir = Path(workdir)
    saved = checkpoints.saved_config(workdir)
    if saved is None:
        raise _no_checkpoint(workdir)
    config = validate_config(saved if config is None else config)
    mesh = mesh or make_mesh()
    fields, info = checkpoints.saved_inputs(workdir), None
    if fields is None:  # checkpoints of an earlier jaxhash: the data set says
        from jaxhash import data

        log.info("%s has no saved inputs (an earlier jaxhash): reading its data set", workdir)
        info = data.get_dataset_info(config)
        inputs = RunInputs.of_info(info)
    else:
        inputs = RunInputs.from_json(fields)
    model = build_model(config, inputs.num_classes)
    manager = checkpoints.checkpoint_manager(workdir, config)
    restored = checkpoints.restore_variables(
        manager, _abstract_variables(model, inputs.image_shape, mesh)
    )
    if restored is None:
        raise _no_checkpoint(workdir)
    fingerprint = hashlib.sha256(
        json.dumps(saved.to_dict(), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    return TrainedRun(
        workdir=workdir,
        config=config,
        inputs=inputs,
        model=model,
        mesh=mesh,
        variables={"params": restored["params"], "batch_stats": restored["batch_stats"]},
        step=int(restored["step"]),
        encode_fn=test_time_augmentation.encoder(model, config.eval.tta),
        fingerprint=fingerprint,
        _info=info,
    )


# ----------------------------------------------------------------------------- training


class RunSetup(NamedTuple):
    """A run folder's pieces for training it (:func:`restore_run`)."""

    config: Any  # the validated ml_collections.ConfigDict
    info: Any  # jaxhash.data.DatasetInfo
    mesh: Mesh
    model: models.HashingModel
    optimizer: optax.GradientTransformation
    total_steps: int
    manager: Any  # orbax CheckpointManager of workdir/checkpoints
    state: TrainState  # replicated over mesh: the newest checkpoint's, else the initial one
    restored_step: int | None  # the checkpoint's step; None when workdir has none yet


def with_whitening(config, state: TrainState, optimizer) -> TrainState:
    """``state`` with the whitening stem set from ``config.model.whitening_images`` training
    images (``jaxhash.data.first_train_images``, ``jaxhash.models.whitening_kernel``) and the
    optimiser state made anew from those parameters; checkpoints then hold the kernel."""
    from jaxhash import data

    images = data.first_train_images(
        config, int(config.model.whitening_images), "config.model.whitening_images"
    )
    kernel = models.whitening_kernel(images)
    sharding = jax.tree_util.tree_leaves(state.params)[0].sharding  # replicated
    local = jax.tree_util.tree_map(lambda x: np.asarray(x.addressable_data(0)), state.params)
    params = jax.device_put(models.set_whitening({"params": local}, kernel)["params"], sharding)
    opt_state = jax.device_put(optimizer.init(params), sharding)
    return state.replace(params=params, opt_state=opt_state)


def restore_run(config, workdir: str | os.PathLike, *, mesh: Mesh | None = None) -> RunSetup:
    """Data info, model, optimiser, checkpoint manager and newest state of a run folder.

    ``jaxhash.train.run`` trains from it. The state is built replicated over ``mesh``
    (default: all devices) and the last checkpoint in ``workdir/checkpoints`` restored onto it
    (``restored_step`` None: none yet, the initial state). With several processes call
    :func:`jaxhash.parallel.initialize_distributed` first (``run`` does). To encode or
    evaluate, :func:`open_run` reads less (no optimiser state, no data set).
    """
    from jaxhash import data

    config = validate_config(config)
    mesh = mesh or make_mesh()
    info = data.get_dataset_info(config)
    steps = total_steps(config, info)
    model = build_model(config, len(info.class_names))
    whitened = models.needs_whitening(model)
    frozen = ("whiten/kernel",) if whitened and config.model.whitening == "frozen" else ()
    optimizer = make_optimizer(config.optim, steps, frozen)
    state = create_state(config, model, optimizer, info.image_shape, mesh)
    manager = checkpoints.checkpoint_manager(workdir, config, last_step=steps)
    restored = checkpoints.restore_latest(manager, state)
    if restored is None and whitened:  # a fresh run: the stem from the training images
        state = with_whitening(config, state, optimizer)
    return RunSetup(
        config=config,
        info=info,
        mesh=mesh,
        model=model,
        optimizer=optimizer,
        total_steps=steps,
        manager=manager,
        state=state if restored is None else restored,
        restored_step=None if restored is None else int(restored.step),
    )


__all__ = [
    "INPUTS_FORMAT",
    "RunInputs",
    "RunSetup",
    "TrainedRun",
    "open_run",
    "restore_run",
    "with_whitening",
]
