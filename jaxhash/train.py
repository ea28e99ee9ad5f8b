"""Training: the sharded train step and the loop that runs it, checkpoints and evaluates.

Importable and free of flag parsing (``jaxhash.cli`` is the command line):

    from jaxhash import train
    state, report = train.run(config, workdir)      # config: an ml_collections ConfigDict

One mesh over all devices with a "data" axis (``jaxhash.parallel.make_mesh``): batches are
sharded over it, parameters and optimiser state replicated (``jaxhash.state``), the step jitted
with the state donated. The loss is ``jaxhash.losses.hashing_loss`` inside ``jax.shard_map``
over the data axis, so the similarity and kNN-KL terms see the global batch
(``config.loss.knn="per_device"`` estimates the KL per device instead).

The loop never waits on the device between steps: batches arrive on the devices
``config.data.prefetch`` (default 2) steps ahead, and the host reads the step's metrics and its
finite flag only at log, checkpoint and evaluation steps. A step whose loss, a term, the
gradient norm or the updated state is not finite is not applied (on the device); at the next
read the run stops naming the first such step and its terms or trees, before any later
checkpoint is written, and deletes the checkpoint whose model gave the non-finite outputs, so
the newest checkpoint left is a good one. Checkpoints (``jaxhash.checkpoints``, orbax) hold the
state, the config and what encoding an image needs (``jaxhash.run_folder``); rerunning the
same command resumes from the last one and yields the same batches, keys and parameters as an
uninterrupted run (not with another config, unless allowed: :func:`run`; nor while another
training holds the folder). Evaluations (every
``config.eval.every`` steps and at the end) share one ``jaxhash.evaluation.Evaluator``, so the
encoder compiles once per run; each writes ``workdir/eval/step_<N>/report.json``.

Metrics and throughput go to ``workdir/metrics.jsonl`` (and TensorBoard) through the small
:class:`MetricWriter`, not clu's ``metric_writers``/``periodic_actions``: clu's writers (which
``periodic_actions`` imports) need TensorFlow and tensorboard at import time, and the loop does
not otherwise need either (nor does clu write JSON lines).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhash import checkpoints, diagnostics, interruptions, losses
from jaxhash.config import config_changes, validate_config
from jaxhash.evaluation import Evaluator
from jaxhash.parallel import DATA_AXIS, initialize_distributed
from jaxhash.run_folder import RunInputs, restore_run
from jaxhash.semantics import class_text
from jaxhash.state import STATE_TREES, TrainState, finite_trees, learning_rate_schedule
from jaxhash.workdir_lock import run_lock

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A training step produced a NaN or infinite loss term."""


class ConfigChangedError(ValueError):
    """A rerun's config differs from the one its run folder's checkpoint was trained with."""


# ----------------------------------------------------------------------------- the step


def _loss_weights(config) -> losses.LossWeights:
    w = config.loss
    return losses.LossWeights(
        ce=w.w_ce, sim=w.w_sim, kl=w.w_kl, quant=w.w_quant, balance=w.w_balance
    )


def make_loss_fn(
    config, mesh: Mesh, class_distances: np.ndarray | None, num_classes: int | None = None
):
    """``fn(codes, logits, batch, key) -> (loss, metrics)`` over the global batch.

    Runs ``hashing_loss`` under ``jax.shard_map`` over the data axis. Targets: caption
    embeddings when the batch has them, else the class-distance table of the hierarchy. The
    metrics also hold ``diagnostics.code_diagnostics`` of the batch (within/between-class
    Hamming distances when the batch has class labels and ``num_classes`` (or the table) is
    known).
    """
    weights = _loss_weights(config)
    per_device_kl = config.loss.knn == "per_device"
    hashing_weights = weights._replace(kl=0.0) if per_device_kl else weights
    table = None if class_distances is None else jnp.asarray(class_distances, jnp.float32)
    options = dict(
        kl_form=config.loss.kl_form,
        k=int(config.loss.k),
        kl_sigma=float(config.loss.kl_sigma),
        kl_floor=float(config.loss.kl_floor),
        kl_decorrelation=float(config.loss.kl_decorrelation),
        normalize=config.loss.normalize,
        power=float(config.loss.power),
        label_smoothing=float(config.loss.label_smoothing),
        knn_impl=config.loss.knn_impl,
    )
    if num_classes is None and table is not None:
        num_classes = int(table.shape[0])

    def local(codes, logits, labels, mask, embeddings, key):
        if embeddings is not None:
            targets = losses.EmbeddingTargets(embeddings)
        elif table is not None:
            targets = losses.ClassTargets(labels, table)
        else:
            targets = None
        if any(hashing_weights):
            loss, metrics = losses.hashing_loss(
                codes,
                key,
                logits=logits,
                labels=labels,
                targets=targets,
                weights=hashing_weights,
                mask=mask,
                axis_name=DATA_AXIS,
                **options,
            )
        else:  # only the per-device KL term is weighted
            loss, metrics = jnp.zeros((), jnp.float32), {}
        if per_device_kl and weights.kl:
            device_key = jax.random.fold_in(key, jax.lax.axis_index(DATA_AXIS))
            only_kl = losses.LossWeights(ce=0.0, sim=0.0, kl=1.0)
            _, kl = losses.hashing_loss(codes, device_key, weights=only_kl, mask=mask, **options)
            kl = {name: jax.lax.pmean(value, DATA_AXIS) for name, value in kl.items()}
            del kl["loss"]
            metrics.update(kl)
            loss = loss + weights.kl * kl["kl"]
            metrics["loss"] = loss
        with_classes = bool(num_classes) and embeddings is None
        metrics.update(
            diagnostics.code_diagnostics(
                codes,
                labels if with_classes else None,
                mask=mask,
                num_classes=num_classes if with_classes else None,
                axis_name=DATA_AXIS,
            )
        )
        return loss, metrics

    def loss_fn(codes, logits, batch, key):
        labels = batch.get("label")
        if labels is None:  # caption data has no classes (config.loss.w_ce must be 0)
            labels = jnp.zeros(codes.shape[:1], jnp.int32)
        mask = batch.get("mask")
        if mask is None:
            mask = jnp.ones(labels.shape, bool)
        embeddings = batch.get("caption_embedding")
        row = P(DATA_AXIS)
        mapped = jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(
                row,
                None if logits is None else row,
                row,
                row,
                None if embeddings is None else row,
                P(),
            ),
            out_specs=(P(), P()),
        )
        return mapped(codes, logits, labels, mask, embeddings, key)

    return loss_fn


def make_train_step(model, optimizer, loss_fn, mesh: Mesh):
    """Jitted ``step(state, batch, key) -> (state, metrics)`` with the state donated.

    A step whose loss, any term, the gradient norm or any leaf of the updated state is not
    finite leaves the state unchanged (on the device, no host sync); its metrics carry
    ``finite = False`` and ``finite_state`` (per :data:`jaxhash.state.STATE_TREES`) so that the
    loop can stop and say which term or tree.
    """
    replicated = NamedSharding(mesh, P())

    def step(state: TrainState, batch, key):
        def objective(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            out, updated = model.apply(
                variables, batch["image"], train=True, mutable=["batch_stats"]
            )
            loss, metrics = loss_fn(out["z"], out.get("logits"), batch, key)
            return loss, (metrics, updated["batch_stats"])

        (_, (metrics, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in metrics.values()]))
        grad_norm = optax.tree.norm(grads)  # the global L2 norm of the gradient
        finite &= jnp.isfinite(grad_norm)
        new = TrainState(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        finite_state = finite_trees(new)  # an update can overflow from a finite gradient
        finite &= jnp.all(finite_state)
        new = jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, state)
        flags = {"finite": finite, "finite_state": finite_state}
        return new, {**metrics, **flags, "grad_norm": grad_norm}

    return jax.jit(step, out_shardings=(replicated, replicated), donate_argnums=0)


# ----------------------------------------------------------------------------- the loop


class MetricWriter:
    """JSON lines in ``workdir/metrics.jsonl`` (and TensorBoard summaries when available)."""

    def __init__(self, workdir: Path, tensorboard: bool, enabled: bool = True):
        self.path = workdir / "metrics.jsonl"
        self.enabled = enabled  # only the primary process writes
        self._tb = None
        if tensorboard and enabled:
            try:
                import tensorboard  # tf.summary needs it to write scalars
                import tensorflow as tf

                self._tb = tf.summary.create_file_writer(str(workdir / "tensorboard"))
            except ImportError:
                log.info("tensorboard is not installed: metrics go to metrics.jsonl only")

    def write(self, step: int, values: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: _jsonable(v) for k, v in values.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            import tensorflow as tf

            with self._tb.as_default(step=step):
                for name, value in row.items():
                    if isinstance(value, int | float) and name != "step":
                        tf.summary.scalar(name, value)
            self._tb.flush()


def _jsonable(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()


_FLAGS = ("finite", "finite_state")  # the step's own flags among its metrics


def _bad_terms(metrics: Mapping[str, Any]) -> list[str]:
    return [k for k, v in metrics.items() if k not in _FLAGS and not np.all(np.isfinite(v))]


def _check_finite(pending: list, manager) -> None:
    """Raise :class:`NonFiniteLossError` naming the first of ``pending`` ``(step, metrics)``
    whose finite flag is False (one device read for all of them).

    Step ``s`` runs the model of checkpoint ``s`` (``s`` steps applied): when its loss or a
    term is not finite, that checkpoint's model gives non-finite outputs and is deleted, so
    the newest checkpoint left, which the message names, is a good one.
    """
    flags = jax.device_get([metrics["finite"] for _, metrics in pending])
    for (step, metrics), finite in zip(pending, flags, strict=True):
        if finite:
            continue
        metrics = jax.device_get(metrics)
        bad = _bad_terms(metrics)
        finite_state = metrics.get("finite_state", [True] * len(STATE_TREES))
        trees = [name for name, ok in zip(STATE_TREES, finite_state, strict=True) if not ok]
        problems = [f"non-finite {', '.join(bad)}"] if bad else []
        if trees:
            problems.append(f"the update made {', '.join(trees)} non-finite")
        manager.wait_until_finished()
        outputs_bad = [name for name in bad if name != "grad_norm"]
        removed = [s for s in manager.all_steps() if outputs_bad and s >= step]
        for s in removed:
            manager.delete(s)
        last = manager.latest_step()
        where = (
            f"Checkpoint {removed[0]} was deleted (its model gives non-finite outputs). "
            if removed
            else ""
        )
        where += (
            f"The last good checkpoint is step {last}."
            if last is not None
            else "There is no good checkpoint (a rerun starts from step 0)."
        )
        raise NonFiniteLossError(
            f"step {step}: {'; '.join(problems) or 'non-finite gradient'}; the step was not "
            f"applied and training stopped. {where} Lower the learning rate or the weight of "
            "that term and rerun with --allow-config-change to resume, or train into a new "
            "--workdir."
        )


def _class_distances(config, info) -> np.ndarray | None:
    """``[C, C]`` class distances for the similarity loss (None: caption targets or no w_sim)."""
    if not config.loss.w_sim or (info.has_captions and config.data.caption_embeddings):
        return None
    if config.loss.similarity == class_text.TEXT:
        return 1.0 - class_text.class_similarity(info, config.loss.similarity)
    if info.hierarchy is None:
        raise ValueError(
            f"data set {info.name!r} has no class hierarchy for the similarity loss: set "
            "config.loss.w_sim = 0, or use data with a hierarchy (or caption embeddings)."
        )
    return info.hierarchy.distance(config.loss.similarity)


def run(
    config,
    workdir: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    progress: bool = True,
    time_limit_s: float | None = None,
    allow_config_change: bool = False,
) -> tuple[TrainState, dict | None]:
    """Train (resuming from ``workdir``'s last good checkpoint) and evaluate.

    ``time_limit_s``: stop once this much wall time has passed, after saving a checkpoint;
    the run is then unfinished (``state.step`` below the total, no evaluation) and a rerun
    continues it. For schedulers and machines lent for a few minutes at a time.

    SIGTERM or SIGINT during training saves a checkpoint at the step reached and raises
    :class:`jaxhash.interruptions.TrainingInterrupted` (a ``KeyboardInterrupt``); with several
    processes all of them stop at the same step (:mod:`jaxhash.interruptions`).

    A rerun whose config differs from the checkpoint's in more than
    ``jaxhash.config.RESUMABLE_CHANGES`` raises :class:`ConfigChangedError` before training,
    unless ``allow_config_change`` (a model of other shapes cannot resume even then). One
    training at a time holds ``workdir`` (``jaxhash.workdir_lock``).

    Returns the final state and the last evaluation's report (also in
    ``workdir/eval/step_<N>/report.json``), or None when ``config.eval.at_end`` is False or
    the time limit stopped the run.
    """
    config = validate_config(config)
    initialize_distributed(config.distributed)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with run_lock(workdir):
        _check_config_change(config, workdir, allow_config_change)
        return _train(config, workdir, mesh, progress, time_limit_s)


def _check_config_change(config, workdir: Path, allow: bool) -> None:
    """Raise :class:`ConfigChangedError` when ``config`` differs from the config saved with
    ``workdir``'s checkpoint beyond ``RESUMABLE_CHANGES`` (only a warning when ``allow``)."""
    saved = checkpoints.saved_config(workdir)
    changes = {} if saved is None else config_changes(saved, config)
    if not changes:
        return
    listed = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
    if allow:
        log.warning("resuming %s with a changed config: %s", workdir, listed)
        return
    raise ConfigChangedError(
        f"{workdir} holds a run trained with another config ({listed}): train into a new "
        "--workdir, or pass --allow-config-change (train.run(..., allow_config_change=True)) "
        "to resume it with the new one."
    )


def _train(
    config, workdir: Path, mesh: Mesh | None, progress: bool, time_limit_s: float | None
) -> tuple[TrainState, dict | None]:
    """:func:`run` once ``workdir`` is locked and the config checked."""
    from jaxhash import data

    primary = jax.process_index() == 0
    start_time = time.time()
    setup = restore_run(config, workdir, mesh=mesh)
    config, info, mesh, model = setup.config, setup.info, setup.mesh, setup.model
    state, manager, total_steps = setup.state, setup.manager, setup.total_steps
    inputs = RunInputs.of_info(info).to_json()  # saved with each checkpoint
    log.info(
        "model: %s, %d bits, %s parameters; %d %s device(s)",
        config.model.name,
        config.model.bits,
        f"{sum(x.size for x in jax.tree_util.tree_leaves(state.params)):,}",
        mesh.size,
        "/".join(sorted({d.platform for d in mesh.devices.flat})),
    )
    resumed = (
        "fresh run" if setup.restored_step is None else f"resumed at step {setup.restored_step}"
    )
    log.info("checkpoints: %s (%s, %d steps in all)", manager.directory, resumed, total_steps)
    schedule = learning_rate_schedule(config.optim, total_steps)  # for the logs
    num_classes = info.num_classes or None
    loss_fn = make_loss_fn(config, mesh, _class_distances(config, info), num_classes)
    train_step = make_train_step(model, setup.optimizer, loss_fn, mesh)
    evaluator = Evaluator(config, info, model, mesh)
    writer = MetricWriter(workdir, bool(config.train.tensorboard), enabled=primary)
    base_key = jax.random.key(int(config.seed) + 1)
    log_every, eval_every = int(config.train.log_every), int(config.eval.every)

    step = int(state.step)
    batches = data.train_iterator(config, mesh, start_step=step) if step < total_steps else None
    bar = None
    if progress and primary and step < total_steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True, desc="train")
    stopped_by = None  # the signal that stopped training (interruptions.Interruptions)
    try:
        with interruptions.Interruptions(time_limit_s, start_time) as stops:
            pending = []  # (step, metrics) on the device, not read yet
            window_start, window_steps = time.perf_counter(), 0
            while step < total_steps:
                # Device arrays only: caption text rides along as host strings for other uses.
                batch = {k: v for k, v in next(batches).items() if isinstance(v, jax.Array)}
                state, metrics = train_step(state, batch, jax.random.fold_in(base_key, step))
                pending.append((step, metrics))
                step += 1
                window_steps += 1
                last = step == total_steps
                log_now = step % log_every == 0 or last
                scheduled = manager.should_save(step)
                out_of_time = stops.out_of_time(at_sync_point=log_now or scheduled)
                stopped_by = stops.signalled(step)
                early = out_of_time or stopped_by is not None
                save_now = scheduled or early
                eval_now = bool(eval_every) and step % eval_every == 0 and not last and not early
                if log_now or save_now or eval_now:  # the only places the host waits
                    _check_finite(pending, manager)
                    pending = []
                if log_now:
                    values = {k: v for k, v in jax.device_get(metrics).items() if k not in _FLAGS}
                    elapsed = time.perf_counter() - window_start
                    values["images_per_s"] = window_steps * config.batch_size / max(elapsed, 1e-9)
                    values["learning_rate"] = float(schedule(step - 1))
                    writer.write(step, values)
                    if bar is not None:
                        shown = ("loss", "ce", "sim", "kl", "images_per_s")
                        postfix = {k: f"{float(v):.4g}" for k, v in values.items() if k in shown}
                        bar.set_postfix(postfix)
                    window_start, window_steps = time.perf_counter(), 0
                if bar is not None:
                    bar.update(1)
                if save_now:
                    checkpoints.save(manager, step, state, config, inputs=inputs, force=early)
                if stopped_by is not None:
                    break
                if out_of_time and not last:
                    log.info(
                        "time limit %.0f s reached at step %d: rerun to go on", time_limit_s, step
                    )
                    break
                if eval_now:
                    report = evaluator.evaluate(state, workdir)
                    scalars = {
                        k: v for k, v in report["metrics"].items() if isinstance(v, int | float)
                    }
                    writer.write(step, {f"eval/{k}": v for k, v in scalars.items()})
    finally:
        if batches is not None:
            batches.close()  # stop the prefetch thread (and its TF iterator) now
        if bar is not None:
            bar.close()
    manager.wait_until_finished()
    if stopped_by is not None:
        message = interruptions.stop_message(stopped_by, step, str(manager.directory))
        log.warning("%s", message)
        raise interruptions.TrainingInterrupted(message, stopped_by, step)
    report = None
    if config.eval.at_end and step == total_steps:
        log.info("evaluating step %d on %s", step, config.eval.split or info.eval_split)
        report = evaluator.evaluate(state, workdir, wall_time_s=time.time() - start_time)
    return state, report
