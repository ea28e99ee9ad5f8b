"""Checkpoints of a run folder (orbax), each holding the train state and the config beside it.

``workdir/checkpoints/<step>/`` is one composite orbax item: ``state`` (the
:class:`jaxhash.state.TrainState` as a dict of arrays) and ``config`` (the run's validated
config as JSON), so a checkpoint always carries the config it was trained with, and a rerun
with other settings does not overwrite an earlier one's. orbax decides when to save
(``save_interval_steps = config.train.checkpoint_every``, the last step through
``save_on_steps``, and the first step of a fresh run by its initial-save policy) and keeps
``config.train.keep_checkpoints`` of them. :func:`restore_run` rebuilds a run folder's model
and newest state: training resumes from it, ``jaxhash evaluate``/``encode`` evaluate it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import ml_collections
import optax
from jax.sharding import Mesh

from jaxhash import models
from jaxhash.config import validate_config
from jaxhash.parallel import make_mesh
from jaxhash.state import TrainState, build_model, create_state, make_optimizer, total_steps


def checkpoint_manager(workdir: str | os.PathLike, config, last_step: int | None = None):
    """The orbax ``CheckpointManager`` of ``workdir/checkpoints``.

    Saves when ``manager.should_save(step)``: every ``config.train.checkpoint_every`` steps, at
    ``last_step`` and at the first step of a fresh run.
    """
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=int(config.train.keep_checkpoints),
        save_interval_steps=int(config.train.checkpoint_every),
        save_on_steps=frozenset() if last_step is None else frozenset({int(last_step)}),
        create=True,
    )
    return ocp.CheckpointManager(Path(workdir).absolute() / "checkpoints", options=options)


def save(manager, step: int, state: TrainState, config, *, force: bool = False) -> None:
    """Save ``state`` and ``config`` as checkpoint ``step`` (asynchronously; orbax waits on
    the previous save first). ``force``: also off the save schedule (e.g. a time limit)."""
    import orbax.checkpoint as ocp

    manager.save(
        int(step),
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state.as_dict()),
            config=ocp.args.JsonSave(json.loads(config.to_json_best_effort())),
        ),
        force=force,
    )


def restore_latest(manager, state: TrainState) -> TrainState | None:
    """The newest checkpoint restored onto ``state``'s structure and shardings, or None."""
    import orbax.checkpoint as ocp

    step = manager.latest_step()
    if step is None:
        return None
    _check_layout(manager, step)
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state.as_dict()
    )
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    )
    return TrainState(**restored.state)


def saved_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict | None:
    """The config saved with ``workdir``'s newest checkpoint (None: no checkpoint yet)."""
    import orbax.checkpoint as ocp

    directory = Path(workdir).absolute() / "checkpoints"
    if not directory.is_dir():
        return None
    manager = ocp.CheckpointManager(directory)
    step = manager.latest_step()
    if step is None:
        return None
    _check_layout(manager, step)
    restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return ml_collections.ConfigDict(restored.config)


def _check_layout(manager, step: int) -> None:
    """A ValueError for a checkpoint without the ``state`` and ``config`` items."""
    path = Path(manager.directory) / str(step)
    if not (path / "state").is_dir() or not (path / "config").is_dir():
        raise ValueError(
            f"checkpoint {path} has no 'state' and 'config' items: it was written by an earlier "
            "jaxhash, before checkpoints held the config beside the state. Train into a new "
            "--workdir."
        )


class RunSetup(NamedTuple):
    """A run folder's pieces, shared by training it and evaluating it (:func:`restore_run`)."""

    config: Any  # the validated ml_collections.ConfigDict
    info: Any  # jaxhash.data.DatasetInfo
    mesh: Mesh
    model: models.HashingModel
    optimizer: optax.GradientTransformation
    total_steps: int
    manager: Any  # orbax CheckpointManager of workdir/checkpoints
    state: TrainState  # replicated over mesh: the newest checkpoint's, else the initial one
    restored_step: int | None  # the checkpoint's step; None when workdir has none yet


def restore_run(config, workdir: str | os.PathLike, *, mesh: Mesh | None = None) -> RunSetup:
    """Data info, model, optimiser, checkpoint manager and newest state of a run folder.

    ``jaxhash.train.run`` trains from it; ``jaxhash evaluate`` and ``jaxhash encode`` evaluate
    it. The state is built replicated over ``mesh`` (default: all devices) and the last
    checkpoint in ``workdir/checkpoints`` restored onto it (``restored_step`` None: none yet,
    the initial state). With several processes call
    :func:`jaxhash.parallel.initialize_distributed` first (``run`` does).
    """
    from jaxhash import data

    config = validate_config(config)
    mesh = mesh or make_mesh()
    info = data.get_dataset_info(config)
    steps = total_steps(config, info)
    model = build_model(config, len(info.class_names))
    optimizer = make_optimizer(config.optim, steps)
    state = create_state(config, model, optimizer, info.image_shape, mesh)
    manager = checkpoint_manager(workdir, config, last_step=steps)
    restored = restore_latest(manager, state)
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
