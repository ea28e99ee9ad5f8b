"""Checkpoints of a run folder (orbax): the train state, with its config and inputs beside it.

``workdir/checkpoints/<step>/`` is one composite orbax item: ``state`` (the
:class:`jaxhash.state.TrainState` as a dict of arrays), ``config`` (the run's validated
config as JSON) and ``inputs`` (JSON: what encoding an image needs, input size, crop,
normalisation, classes; :class:`jaxhash.run_folder.RunInputs`), so a checkpoint always carries
the config it was trained with, a rerun with other settings does not overwrite an earlier
one's, and new images are encoded without the training data. Checkpoints of an earlier
jaxhash have no ``inputs`` (:func:`saved_inputs` is None then). orbax decides when to save
(``save_interval_steps = config.train.checkpoint_every``, the last step through
``save_on_steps``, and the first step of a fresh run by its initial-save policy) and keeps
``config.train.keep_checkpoints`` of them. Training restores the whole state
(:func:`restore_latest`); evaluation and encoding restore only the step, parameters and batch
statistics (:func:`restore_variables`: orbax reads that part of the saved tree, never the
optimiser state). :mod:`jaxhash.run_folder` builds runs on these.

Only good checkpoints: :func:`save` refuses a state with a NaN or infinite leaf, and
:func:`restore_latest` (and :func:`restore_variables`) restores the newest checkpoint that
reads without error, matches the model's arrays (shapes, dtypes) and is finite, warning about
each newer one it skips. Saves are synchronous: a failed write (permissions, full disk) raises
:class:`CheckpointWriteError` at once, where orbax's asynchronous save would report it only at
the next save and leave a thread waiting minutes at interpreter exit. Each save also writes
``checksums.json`` beside the items (sha256 of every file): a file changed on disk afterwards
(a flipped bit that still decodes to finite numbers) is caught before restoring, and the
checkpoint is skipped like an unreadable one. Checkpoints without it (written by an earlier
jaxhash, or by orbax directly) are restored unchecked.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import ml_collections

from jaxhash import config as config_lib
from jaxhash.console import muted
from jaxhash.file_digest import file_digest
from jaxhash.state import STATE_TREES, TrainState, finite_trees

log = logging.getLogger(__name__)
_finite_trees = jax.jit(finite_trees, static_argnames="names")


CHECKSUMS = "checksums.json"
_ITEMS = ("state", "config", "inputs")
VARIABLE_TREES = ("step", "params", "batch_stats")  # what :func:`restore_variables` reads


class NonFiniteStateError(ValueError):
    """A state with a NaN or infinite leaf was to be saved."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (permissions, disk space)."""


class CheckpointReadError(OSError):
    """A checkpoint that is not damaged in a way jaxhash can name could not be restored."""


class NoGoodCheckpointError(ValueError):
    """No checkpoint of a run folder can be restored."""


class IncompatibleCheckpointError(NoGoodCheckpointError):
    """The checkpoints hold arrays of other shapes or dtypes than the config's model."""


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
        enable_async_checkpointing=False,  # a failed write raises in save (module docstring)
    )
    return ocp.CheckpointManager(Path(workdir).absolute() / "checkpoints", options=options)


def nonfinite_trees(state: TrainState | Mapping[str, Any]) -> list[str]:
    """The names of ``state``'s trees (those of :data:`STATE_TREES` it has) with a NaN or
    infinite leaf."""
    trees = state if isinstance(state, Mapping) else state.as_dict()
    names = tuple(name for name in STATE_TREES if name in trees)
    flags = jax.device_get(_finite_trees(trees, names=names))
    return [name for name, finite in zip(names, flags, strict=True) if not finite]


def save(
    manager,
    step: int,
    state: TrainState,
    config,
    *,
    inputs: Mapping[str, Any] | None = None,
    force: bool = False,
) -> None:
    """Save ``state``, ``config`` and ``inputs`` (JSON-ready, e.g.
    ``jaxhash.run_folder.RunInputs.to_json()``; None: not saved) as checkpoint ``step``.
    ``force``: also off the save schedule (e.g. a time limit).

    Raises :class:`NonFiniteStateError` (nothing written) for a state with a non-finite leaf
    and :class:`CheckpointWriteError` when the write fails.
    """
    import orbax.checkpoint as ocp

    bad = nonfinite_trees(state)
    if bad:
        raise NonFiniteStateError(
            f"checkpoint step {step} not written: its {', '.join(bad)} hold NaN or infinite "
            "values. Lower the learning rate or the loss weights, then rerun."
        )
    items = dict(
        state=ocp.args.StandardSave(state.as_dict()),
        config=ocp.args.JsonSave(json.loads(config.to_json_best_effort())),
    )
    if inputs is not None:
        items["inputs"] = ocp.args.JsonSave(dict(inputs))
    try:
        manager.save(int(step), args=ocp.args.Composite(**items), force=force)
        if jax.process_index() == 0 and int(step) in manager.all_steps():
            _write_checksums(Path(manager.directory) / str(int(step)))
    except Exception as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise CheckpointWriteError(
            f"could not write checkpoint step {step} to {Path(manager.directory) / str(step)}: "
            f"{reason}; fix permissions/disk space or choose another --workdir"
        ) from error


def restore_latest(manager, state: TrainState) -> TrainState | None:
    """The newest good checkpoint restored onto ``state``'s structure and shardings, or None
    when there is no checkpoint.

    A checkpoint is good when its files match their recorded checksums, its arrays have the
    shapes and dtypes of ``state``'s and every leaf is finite; each newer one that is not is
    skipped with a warning naming it and why. Raises :class:`IncompatibleCheckpointError` when
    every checkpoint's arrays differ from ``state``'s (another model), else
    :class:`NoGoodCheckpointError` when none is good, and :class:`CheckpointReadError` at once
    when a checkpoint fails to restore for another reason (``_restore_if_good``).
    """
    restored = _restore_newest(manager, state.as_dict())
    return None if restored is None else TrainState(**restored)


def restore_variables(manager, variables: Mapping[str, Any]) -> dict | None:
    """The newest good checkpoint's ``step``, ``params`` and ``batch_stats`` (no optimiser
    state: orbax restores only this part of the saved tree), or None when there is none.

    ``variables``: ``{"step", "params", "batch_stats"}`` of the model, arrays or
    ``jax.ShapeDtypeStruct`` with shardings (e.g. ``jax.eval_shape`` of its initialiser); the
    checkpoint is restored onto them. Good, skipped and errors as in :func:`restore_latest`,
    judged on these trees only.
    """
    if set(variables) != set(VARIABLE_TREES):
        raise ValueError(f"variables must hold {VARIABLE_TREES}; got {sorted(variables)}.")
    return _restore_newest(manager, variables)


def _restore_newest(manager, target: Mapping[str, Any]) -> dict | None:
    """:func:`restore_latest` onto the trees of ``target`` (all of the state, or a part)."""
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), dict(target)
    )
    directory = Path(manager.directory)
    skipped, differences = [], []
    for step in steps:
        _check_layout(manager, step)
        reason = _restore_if_good(manager, step, abstract, differences)
        if isinstance(reason, dict):
            return reason
        log.warning(
            "skipping checkpoint step %d in %s: %s; trying the next older one",
            step,
            directory,
            reason,
        )
        skipped.append(f"step {step}: {reason}")
    if len(differences) == len(steps):
        raise IncompatibleCheckpointError(
            f"the checkpoints in {directory} hold another model's arrays than this config's "
            f"({differences[0]}): a model change (e.g. model.bits) cannot resume them; train "
            "into a new --workdir."
        )
    raise NoGoodCheckpointError(
        f"no usable checkpoint in {directory} ({'; '.join(skipped)}): delete the damaged "
        "ones to start over, or train into a new --workdir."
    )


def _restore_if_good(manager, step: int, abstract: dict, differences: list[str]):
    """Checkpoint ``step`` restored onto ``abstract`` (a dict of trees: the whole saved state,
    or a part of it), or the damage that makes it unusable (a str): files that differ from
    their recorded checksums, arrays of other shapes or dtypes (also appended to
    ``differences``), non-finite values.

    Any other failure (a read error on intact files, memory, a device count the arrays cannot
    be placed on) is not damage: it raises :class:`CheckpointReadError` rather than falling
    back to an older checkpoint and losing the steps in between.
    """
    import orbax.checkpoint as ocp

    step_dir = Path(manager.directory) / str(step)
    changed = _changed_file(step_dir)
    if changed:
        return changed
    try:
        different = _differing_arrays(step_dir / "state", abstract)
        if different:
            differences.append(different)
            return f"its arrays differ from the model's ({different})"
        if set(abstract) == {"step", *STATE_TREES}:
            args = ocp.args.StandardRestore(abstract)
        else:  # a part of the saved tree: only its arrays are read
            restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
            args = ocp.args.PyTreeRestore(
                abstract, restore_args=restore_args, partial_restore=True
            )
        restored = dict(manager.restore(step, args=ocp.args.Composite(state=args)).state)
    except Exception as error:
        verified = (step_dir / CHECKSUMS).is_file()
        cause = (
            "its files match their checksums, so the cause is not damage to it"
            if verified
            else "it has no checksums to tell damage from another fault; if it is damaged, "
            f"delete {step_dir} to resume from the checkpoint before it"
        )
        raise CheckpointReadError(
            f"checkpoint step {step} in {step_dir.parent} could not be restored "
            f"({_first_line(error)}); {cause}. Fix the cause and rerun."
        ) from error
    bad = nonfinite_trees(restored)
    return f"its {', '.join(bad)} hold NaN or infinite values" if bad else restored


def _file_digests(step_dir: Path) -> dict[str, str]:
    """sha256 of every file of the checkpoint's items, by path relative to ``step_dir``."""
    return {
        path.relative_to(step_dir).as_posix(): file_digest(path, 64)
        for item in _ITEMS
        for path in sorted((step_dir / item).rglob("*"))
        if path.is_file()
    }


def _write_checksums(step_dir: Path) -> None:
    """Record the digests of a checkpoint just written (``CHECKSUMS``, written atomically)."""
    text = json.dumps({"algorithm": "sha256", "files": _file_digests(step_dir)}, indent=1)
    partial = step_dir / (CHECKSUMS + ".partial")
    partial.write_text(text + "\n")
    os.replace(partial, step_dir / CHECKSUMS)


def _changed_file(step_dir: Path) -> str:
    """Why the checkpoint at ``step_dir`` differs from its recorded checksums; "" when it
    matches them or has none."""
    try:
        recorded = json.loads((step_dir / CHECKSUMS).read_text())["files"]
    except FileNotFoundError:
        return ""
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its {CHECKSUMS} cannot be read ({_first_line(error)})"
    found = _file_digests(step_dir)
    for name, digest in recorded.items():
        if name not in found:
            return f"its file {name} is missing"
        if found[name] != digest:
            return f"its file {name} changed on disk after it was written (checksum mismatch)"
    return ""


def _differing_arrays(path: Path, abstract: dict) -> str:
    """The arrays whose presence, shape or dtype differ between the saved state at ``path``
    (its metadata; only its trees that ``abstract`` has) and ``abstract`` (up to 3, as
    ``name: saved -> now``); "" when none."""
    import orbax.checkpoint as ocp

    # The step-level metadata file sits one folder up; orbax warns that the item has none.
    with muted("Metadata file does not exist"), ocp.StandardCheckpointer() as checkpointer:
        saved = checkpointer.metadata(path).item_metadata
    saved = {n: t for n, t in _array_types(saved).items() if n.split("/")[0] in abstract}
    wanted = _array_types(abstract)
    names = sorted(n for n in saved.keys() | wanted.keys() if saved.get(n) != wanted.get(n))
    shown = [f"{n}: {saved.get(n, 'absent')} -> {wanted.get(n, 'absent')}" for n in names[:3]]
    return "; ".join(shown) + (f"; {len(names) - 3} more" if len(names) > 3 else "")


def _array_types(tree) -> dict[str, str]:
    """``{"params/hash/kernel": "float32[16, 16]", ...}`` of a tree of arrays or metadata."""

    def name(path) -> str:
        keys = (getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))) for k in path)
        return "/".join(str(key) for key in keys)

    return {
        name(path): f"{jax.numpy.dtype(leaf.dtype).name}{list(leaf.shape)}"
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def _first_line(error: BaseException) -> str:
    text = str(error).strip().split(" See full TensorStore details")[0].splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


def saved_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict | None:
    """The config saved with ``workdir``'s newest checkpoint whose config reads (None: no
    checkpoint yet)."""
    manager, steps = _saved_steps(workdir)
    if not steps:
        return None
    saved = _newest_json(manager, steps, "config")
    if saved is None:
        raise NoGoodCheckpointError(
            f"no checkpoint in {manager.directory} has a readable config: train into a new "
            "--workdir."
        )
    return config_lib.with_former_defaults(ml_collections.ConfigDict(saved))


def saved_inputs(workdir: str | os.PathLike) -> dict | None:
    """The ``inputs`` saved with ``workdir``'s newest checkpoint that has readable ones (None:
    no checkpoint has them, e.g. all were written by an earlier jaxhash)."""
    manager, steps = _saved_steps(workdir)
    return _newest_json(manager, steps, "inputs") if steps else None


def _saved_steps(workdir: str | os.PathLike) -> tuple[Any, list[int]]:
    """A reading ``CheckpointManager`` of ``workdir/checkpoints`` (None: no such folder) and
    its steps, newest first."""
    import orbax.checkpoint as ocp

    directory = Path(workdir).absolute() / "checkpoints"
    if not directory.is_dir():
        return None, []
    manager = ocp.CheckpointManager(directory)
    return manager, sorted(manager.all_steps(), reverse=True)


def _newest_json(manager, steps: list[int], item: str) -> dict | None:
    """The JSON item ``item`` of the newest of ``steps`` where it reads; each newer checkpoint
    where it does not read is skipped with a warning, one without it silently."""
    import orbax.checkpoint as ocp

    directory = Path(manager.directory)
    for step in steps:
        _check_layout(manager, step)
        if not (directory / str(step) / item).is_dir():
            continue
        try:
            restored = manager.restore(
                step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()})
            )
        except Exception as error:
            log.warning(
                "skipping the %s of checkpoint step %d in %s: %s",
                item,
                step,
                directory,
                _first_line(error),
            )
            continue
        return dict(restored[item])
    return None


def _check_layout(manager, step: int) -> None:
    """A ValueError for a checkpoint without the ``state`` and ``config`` items."""
    path = Path(manager.directory) / str(step)
    if not (path / "state").is_dir() or not (path / "config").is_dir():
        raise ValueError(
            f"checkpoint {path} has no 'state' and 'config' items: it was written by an earlier "
            "jaxhash, before checkpoints held the config beside the state. Train into a new "
            "--workdir."
        )


def __getattr__(name: str):
    # The run's set-up moved to jaxhash.run_folder (which imports this module); kept here.
    if name in ("RunSetup", "restore_run", "with_whitening"):
        from jaxhash import run_folder

        return getattr(run_folder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
