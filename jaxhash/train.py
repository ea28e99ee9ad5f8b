"""Training: the train state, the sharded train step, checkpoints, and the loop.

Importable and free of flag parsing (``jaxhash.cli`` is the command line):

    from jaxhash import diagnostics, train
    state, report = train.run(config, workdir)      # config: an ml_collections ConfigDict

One mesh over all devices with a "data" axis: batches are sharded over it, parameters and
optimiser state replicated, the step jitted with the state donated. The loss is
``jaxhash.losses.hashing_loss`` inside ``jax.shard_map`` over the data axis, so the similarity
and kNN-KL terms see the global batch (``config.loss.knn="per_device"`` estimates the KL per
device instead). Checkpoints are orbax, every ``config.train.checkpoint_every`` steps and at
the end; rerunning the same command resumes from the last one and yields the same batches,
keys and parameters as an uninterrupted run. A step whose loss is not finite is not applied:
the run stops naming the step and the term, and the last checkpoint stays the last good one.
``restore_run`` rebuilds a run folder's model and newest state (``run`` and the command line's
``evaluate``/``encode`` share it). With several processes (``config.distributed``) each host
encodes its share of the evaluation data and every host scores the gathered codes
(:func:`evaluate_state`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhash import diagnostics, losses, models
from jaxhash.config import validate_config

log = logging.getLogger(__name__)
DATA_AXIS = "data"


class NonFiniteLossError(FloatingPointError):
    """A training step produced a NaN or infinite loss term."""


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any

    def as_dict(self) -> dict:
        return {
            "step": self.step,
            "params": self.params,
            "batch_stats": self.batch_stats,
            "opt_state": self.opt_state,
        }


def initialize_distributed(dist) -> None:
    """``jax.distributed.initialize`` from ``config.distributed`` (once per process).

    Empty or default fields are left for JAX to detect (TPU pods, SLURM, ...). Processes on
    CPUs exchange collectives through ``dist.cpu_collectives`` (gloo).
    """
    if not dist.initialize or jax.distributed.is_initialized():
        return
    if dist.cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", dist.cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=dist.coordinator_address or None,
        num_processes=dist.num_processes or None,
        process_id=None if dist.process_id < 0 else dist.process_id,
    )


def make_mesh(devices=None) -> Mesh:
    """A one-axis ("data") mesh over ``devices`` (default: all)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), (DATA_AXIS,))


# ----------------------------------------------------------------------------- optimiser


def learning_rate_schedule(optim, total_steps: int) -> optax.Schedule:
    """Linear warm-up to ``optim.learning_rate``, then cosine decay to 0 at ``total_steps``."""
    warmup = min(int(optim.warmup_steps), max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=float(optim.learning_rate),
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=0.0,
    )


def make_optimizer(optim, total_steps: int) -> optax.GradientTransformation:
    """SGD with momentum or AdamW, warm-up + cosine, optionally a lower backbone rate."""
    schedule = learning_rate_schedule(optim, total_steps)

    def base(scale: float) -> optax.GradientTransformation:
        lr = (lambda step: scale * schedule(step)) if scale != 1.0 else schedule
        if optim.name == "sgd":
            return optax.chain(
                optax.add_decayed_weights(float(optim.weight_decay)),
                optax.sgd(lr, momentum=float(optim.momentum), nesterov=bool(optim.nesterov)),
            )
        return optax.adamw(lr, weight_decay=float(optim.weight_decay))

    chain = [optax.clip_by_global_norm(float(optim.grad_clip))] if optim.grad_clip else []
    if float(optim.backbone_lr_scale) == 1.0:
        return optax.chain(*chain, base(1.0))

    def labels(params):
        return {name: ("backbone" if name == "backbone" else "heads") for name in params}

    return optax.chain(
        *chain,
        optax.multi_transform(
            {"backbone": base(float(optim.backbone_lr_scale)), "heads": base(1.0)}, labels
        ),
    )


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
    kl_options = dict(
        form=config.loss.kl_form,
        k=int(config.loss.k),
        sigma=float(config.loss.kl_sigma),
        floor=float(config.loss.kl_floor),
        decorrelation=float(config.loss.kl_decorrelation),
    )
    options = dict(
        kl_form=kl_options["form"],
        k=kl_options["k"],
        kl_sigma=kl_options["sigma"],
        kl_floor=kl_options["floor"],
        kl_decorrelation=kl_options["decorrelation"],
        normalize=config.loss.normalize,
        power=float(config.loss.power),
        label_smoothing=float(config.loss.label_smoothing),
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
            kl = losses.binary_kl_terms(codes, device_key, mask=mask, **kl_options)
            kl = jax.tree_util.tree_map(lambda x: jax.lax.pmean(x, DATA_AXIS), kl)
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


def _global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree)))


def make_train_step(model, optimizer, loss_fn, mesh: Mesh):
    """Jitted ``step(state, batch, key) -> (state, metrics)`` with the state donated.

    A step whose loss or any term is not finite leaves the state unchanged; its metrics carry
    ``finite = False`` so that the loop can stop and say which term.
    """
    replicated = NamedSharding(mesh, P())

    def step(state: TrainState, batch, key):
        def objective(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            out, updated = model.apply(
                variables, batch["image"], train=True, mutable=["batch_stats"]
            )
            loss, metrics = loss_fn(out["codes"], out.get("logits"), batch, key)
            return loss, (metrics, updated["batch_stats"])

        (_, (metrics, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in metrics.values()]))
        grad_norm = _global_norm(grads)
        finite &= jnp.isfinite(grad_norm)
        new = TrainState(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        new = jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, state)
        return new, {**metrics, "finite": finite, "grad_norm": grad_norm}

    return jax.jit(step, out_shardings=(replicated, replicated), donate_argnums=0)


# ----------------------------------------------------------------------------- state


def create_state(config, model, optimizer, image_shape, mesh: Mesh) -> TrainState:
    """Initial, replicated train state (pretrained backbone loaded if configured)."""
    key = jax.random.key(int(config.seed))
    variables = dict(models.init_variables(model, key, image_shape))
    if config.model.pretrained:
        variables = models.load_backbone(variables, config.model.pretrained)
    params = variables["params"]
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
    )
    return jax.device_put(state, NamedSharding(mesh, P()))


def checkpoint_manager(workdir: str | os.PathLike, config):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=int(config.train.keep_checkpoints), create=True
    )
    return ocp.CheckpointManager(Path(workdir).absolute() / "checkpoints", options=options)


def restore_latest(manager, state: TrainState) -> TrainState | None:
    """The newest checkpoint restored onto ``state``'s structure and shardings, or None."""
    import orbax.checkpoint as ocp

    step = manager.latest_step()
    if step is None:
        return None
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state.as_dict()
    )
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return TrainState(**restored)


def save(manager, state: TrainState) -> None:
    import orbax.checkpoint as ocp

    manager.save(int(state.step), args=ocp.args.StandardSave(state.as_dict()), force=True)


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

    :func:`run` trains from it; ``jaxhash evaluate`` and ``jaxhash encode`` evaluate it. The
    state is built replicated over ``mesh`` (default: all devices) and the last checkpoint in
    ``workdir/checkpoints`` restored onto it (``restored_step`` None: none yet, the initial
    state). With several processes call :func:`initialize_distributed` first (``run`` does).
    """
    from jaxhash import data

    config = validate_config(config)
    mesh = mesh or make_mesh()
    info = data.get_dataset_info(config)
    total_steps = _total_steps(config, info)
    model = build_model(config, len(info.class_names))
    optimizer = make_optimizer(config.optim, total_steps)
    state = create_state(config, model, optimizer, info.image_shape, mesh)
    manager = checkpoint_manager(workdir, config)
    restored = restore_latest(manager, state)
    return RunSetup(
        config=config,
        info=info,
        mesh=mesh,
        model=model,
        optimizer=optimizer,
        total_steps=total_steps,
        manager=manager,
        state=state if restored is None else restored,
        restored_step=None if restored is None else int(restored.step),
    )


# ----------------------------------------------------------------------------- the loop


def build_model(config, num_classes: int) -> models.HashingModel:
    """The model of ``config.model`` with a classifier over ``num_classes``."""
    return models.create_model(
        config.model.name,
        int(config.model.bits),
        num_classes,
        stem=config.model.stem,
        width=config.model.width or None,
        hash_activation=config.model.hash_activation,
        classifier_input=config.model.classifier_input,
        dtype=jnp.bfloat16 if config.model.dtype == "bfloat16" else jnp.float32,
    )


def _total_steps(config, info) -> int:
    if config.train.steps:
        return int(config.train.steps)
    if not info.num_train:
        raise ValueError(
            "config.train.steps is 0 and the number of training examples is unknown: set "
            "config.train.steps."
        )
    return max(1, math.ceil(config.train.epochs * info.num_train / config.batch_size))


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


def _bad_terms(metrics: Mapping[str, Any]) -> list[str]:
    return [k for k, v in metrics.items() if k != "finite" and not np.all(np.isfinite(v))]


def run(
    config,
    workdir: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    progress: bool = True,
    time_limit_s: float | None = None,
) -> tuple[TrainState, dict | None]:
    """Train (resuming from ``workdir``'s last checkpoint) and evaluate.

    ``time_limit_s``: stop once this much wall time has passed, after saving a checkpoint;
    the run is then unfinished (``state.step`` below the total, no evaluation) and a rerun
    continues it. For schedulers and machines lent for a few minutes at a time.

    Returns the final state and the evaluation report (also in ``workdir/report.json``), or
    None when ``config.eval.at_end`` is False or the time limit stopped the run.
    """
    from jaxhash import data

    config = validate_config(config)
    initialize_distributed(config.distributed)
    primary = jax.process_index() == 0
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    start_time = time.time()
    setup = restore_run(config, workdir, mesh=mesh)
    config, info, mesh, model = setup.config, setup.info, setup.mesh, setup.model
    state, manager, total_steps = setup.state, setup.manager, setup.total_steps
    if setup.restored_step is not None:
        log.info("resumed from step %d", setup.restored_step)
    schedule = learning_rate_schedule(config.optim, total_steps)  # for the logs
    class_distances = None
    if config.loss.w_sim and not (info.has_captions and config.data.caption_embeddings):
        if info.hierarchy is None:
            raise ValueError(
                f"data set {info.name!r} has no class hierarchy for the similarity loss: set "
                "config.loss.w_sim = 0, or use data with a hierarchy (or caption embeddings)."
            )
        class_distances = info.hierarchy.distance(config.loss.similarity)
    loss_fn = make_loss_fn(config, mesh, class_distances, info.num_classes or None)
    train_step = make_train_step(model, setup.optimizer, loss_fn, mesh)

    if primary:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    writer = MetricWriter(workdir, bool(config.train.tensorboard), enabled=primary)
    base_key = jax.random.key(int(config.seed) + 1)

    step = int(state.step)
    batches = data.train_iterator(config, mesh, start_step=step) if step < total_steps else None
    bar = None
    if progress and primary and step < total_steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True)
    try:
        pending = None  # the previous step's metrics, checked while this one runs
        window_start, window_steps = time.perf_counter(), 0
        while step < total_steps:
            # Device arrays only: caption text rides along as host strings for other uses.
            batch = {k: v for k, v in next(batches).items() if isinstance(v, jax.Array)}
            state, metrics = train_step(state, batch, jax.random.fold_in(base_key, step))
            if pending is not None:
                _check_finite(*pending, manager)
            pending = (step, metrics)
            step += 1
            window_steps += 1
            last = step == total_steps
            if step % int(config.train.log_every) == 0 or last:
                _check_finite(*pending, manager)
                values = {k: v for k, v in jax.device_get(metrics).items() if k != "finite"}
                elapsed = time.perf_counter() - window_start
                values["images_per_s"] = window_steps * config.batch_size / max(elapsed, 1e-9)
                values["learning_rate"] = float(schedule(step - 1))
                writer.write(step, values)
                if bar is not None:
                    bar.set_postfix(
                        {
                            k: f"{float(v):.4g}"
                            for k, v in values.items()
                            if k in ("loss", "ce", "sim", "kl", "images_per_s")
                        }
                    )
                window_start, window_steps = time.perf_counter(), 0
            if bar is not None:
                bar.update(1)
            out_of_time = time_limit_s is not None and time.time() - start_time > time_limit_s
            if step % int(config.train.checkpoint_every) == 0 or last or out_of_time:
                _check_finite(*pending, manager)
                save(manager, state)
            if out_of_time and not last:
                log.info("time limit %.0f s reached at step %d: rerun to go on", time_limit_s, step)
                break
            if config.eval.every and step % int(config.eval.every) == 0 and not last:
                report = evaluate_state(
                    config, info, model, state, mesh, workdir / "eval" / f"step_{step}"
                )
                writer.write(
                    step,
                    {
                        f"eval/{k}": v
                        for k, v in report["metrics"].items()
                        if isinstance(v, int | float)
                    },
                )
    finally:
        if batches is not None:
            batches.close()  # stop the prefetch thread (and its TF iterator) now
        if bar is not None:
            bar.close()
    manager.wait_until_finished()
    report = None
    if config.eval.at_end and step == total_steps:
        report = evaluate_state(
            config, info, model, state, mesh, workdir, wall_time_s=time.time() - start_time
        )
    return state, report


# ----------------------------------------------------------------------------- evaluation


def _process_mesh(mesh: Mesh) -> Mesh:
    """The devices of ``mesh`` on this process (``mesh`` itself when there is one process)."""
    return mesh if jax.process_count() == 1 else mesh.local_mesh


def _process_local(tree):
    """Replicated global arrays as this process's copy (evaluation runs per process)."""

    def local(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x.addressable_data(0)
        return x

    return jax.tree_util.tree_map(local, tree)


def encode_split(config, model, variables, mesh, split, subset="all"):
    """Outputs ``[N, K]`` (float32), labels ``[N]`` (None for caption data), example ids
    ``[N]`` and caption embeddings ``[N, E]`` (None unless the batches carry them), in order.

    One process: the global batches of ``data.eval_batches`` sharded over ``mesh``. Several
    processes: each encodes its own share of the split (``data.host_eval_batches``: a
    contiguous range, the same number of padded batches on every host) on its devices of
    ``mesh``, with no collective per batch; :func:`jaxhash.parallel.process_concat` then joins
    the de-padded rows in process order, which is the one-process order, so every process
    returns the same full arrays.
    """
    from jaxhash import data, parallel, retrieval

    fields: dict[str, list] = {"label": [], "id": [], "caption_embedding": []}
    batch_size = int(config.eval.batch_size or config.batch_size)
    multi_process = jax.process_count() > 1
    if multi_process:
        mesh, variables = _process_mesh(mesh), _process_local(variables)
        source = data.host_eval_batches(config, split, batch_size, subset=subset)
    else:
        source = data.eval_batches(config, split, mesh, batch_size, subset=subset)

    def batches():
        for batch in source:
            valid = np.asarray(batch["mask"])
            for name, values in fields.items():
                if name in batch:
                    values.append(np.asarray(batch[name])[valid])
            yield batch

    def apply_fn(variables, images):
        return model.apply(variables, images, train=False)["codes"]

    codes = retrieval.encode(apply_fn, variables, batches(), mesh=mesh, axis_name=DATA_AXIS)
    arrays = {"codes": np.asarray(codes)}
    arrays.update({name: np.concatenate(values) for name, values in fields.items() if values})
    if multi_process:
        arrays = parallel.process_concat(arrays)
    return (
        arrays["codes"],
        arrays.get("label"),
        arrays.get("id"),
        arrays.get("caption_embedding"),
    )


def _caption_targets(embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Caption data: every image is its own "class", graded by caption similarity.

    Returns labels ``arange(N)`` and the ``[N, N]`` relevance ``max(cos(e_i, e_j), 0)`` of the
    images' caption embeddings, for mAHP@k (and the semantic distance of the top-1 item).
    """
    if embeddings is None:
        raise ValueError(
            "caption data is evaluated against caption embeddings: set "
            "config.data.caption_embeddings = True (needs the optional extra 'text')."
        )
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = np.clip(unit @ unit.T, 0.0, 1.0)
    np.fill_diagonal(similarity, 1.0)
    return np.arange(len(embeddings)), similarity


def evaluate_state(
    config,
    info,
    model,
    state: TrainState,
    mesh: Mesh,
    run_dir: str | os.PathLike,
    *,
    wall_time_s: float | None = None,
) -> dict:
    """Encode the evaluation data with ``state``, rank by Hamming distance, write the report.

    ``run_dir/report.json`` holds ``metrics`` (e.g. "mAP@250", "mAHP@250", with the tie
    rule), ``real_valued`` (the same metrics ranked by cosine distance of the outputs: the
    binarisation gap), ``baselines.random_codes`` (uniform random codes of the same length),
    the config, the code length and the wall time; ``run_dir/eval/`` the full report and plots.

    Several processes (every one must call it): each encodes its share and all receive the
    full codes (:func:`encode_split`); each then ranks and scores them on its own devices of
    ``mesh``, so there is no collective in the metrics and every process returns the same
    report. Only process 0 writes files.
    """
    from jaxhash import evaluate

    run_dir = Path(run_dir)
    primary = jax.process_index() == 0
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    split = config.eval.split or info.eval_split
    codes, labels, _, embeddings = encode_split(config, model, variables, mesh, split)
    hierarchy = info.hierarchy
    similarity = None if hierarchy is None else hierarchy.similarity(config.eval.similarity)
    if info.has_captions:
        if config.eval.protocol != "database_is_query":
            raise ValueError("caption data supports config.eval.protocol='database_is_query'.")
        labels, similarity = _caption_targets(embeddings)
    query = {}
    if config.eval.protocol == "query_database":
        if not config.eval.query_split:
            raise ValueError("config.eval.protocol='query_database' needs config.eval.query_split.")
        query_codes, query_labels, _, _ = encode_split(
            config, model, variables, mesh, config.eval.query_split
        )
        query = dict(query_codes=query_codes, query_labels=query_labels)
    full = evaluate.evaluate(
        codes,
        labels,
        protocol=config.eval.protocol,
        held_out_classes=list(info.holdout_labels) or None,
        class_similarity=similarity,
        class_distance=None if similarity is None else 1.0 - similarity,
        map_k=int(config.eval.map_k),
        mahp_k=int(config.eval.mahp_k),
        ties=config.eval.ties,
        rankings=tuple(config.eval.rankings),
        baseline=bool(config.eval.baseline),
        seed=int(config.seed),
        run_dir=run_dir / "eval" if primary else None,
        mesh=_process_mesh(mesh),
        axis_name=DATA_AXIS,
        **query,
    )
    rows = full["rows"]
    if info.has_captions:  # no classes: only the graded (caption-similarity) metrics apply
        for row in rows.values():
            row["summary"] = {
                k: v
                for k, v in row["summary"].items()
                if k.startswith("mAHP") or k == "mistake_severity"
            }
    report = {
        "metrics": rows["hamming"]["summary"] if "hamming" in rows else {},
        "ties": config.eval.ties,
        "protocol": config.eval.protocol,
        "code_length": int(config.model.bits),
        "num_queries": full["num_queries"],
        "num_database": full["num_database"],
        "step": int(state.step),
        "wall_time_s": wall_time_s,
        "config": json.loads(config.to_json_best_effort()),
    }
    if info.has_captions:
        report["note"] = (
            "caption data: each image is its own class; mAHP@k uses max(cos, 0) of the caption "
            "embeddings as graded relevance and mistake_severity is the mean caption distance "
            "of the top-1 item (lower is better); label metrics (mAP, P@k) do not apply."
        )
    report["real_valued"] = {
        name: rows[name]["summary"] for name in rows if name not in ("hamming", "random_codes")
    }
    if "random_codes" in rows:
        report["baselines"] = {"random_codes": rows["random_codes"]["summary"]}
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _check_finite(step: int, metrics, manager) -> None:
    if bool(jax.device_get(metrics["finite"])):
        return
    bad = _bad_terms(jax.device_get(metrics))
    manager.wait_until_finished()
    last = manager.latest_step()
    raise NonFiniteLossError(
        f"step {step}: non-finite {', '.join(bad) or 'gradient'}; the step was not applied "
        f"and training stopped. The last good checkpoint is step {last}. Lower the learning "
        "rate or the weight of that term, then rerun to resume."
    )
