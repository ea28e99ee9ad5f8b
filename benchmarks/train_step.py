"""Train step: jaxhash's sharded step against a straightforward Flax step, same process.

jaxhash: ``train.make_train_step`` with ``train.make_loss_fn`` (CE + similarity with
``ClassTargets`` + kNN KL under ``jax.shard_map`` over a one-axis "data" mesh of all local
devices; the state donated; non-finite steps not applied). Reference ("reference_naive_flax"):
what one writes first, ``jax.jit`` of ``value_and_grad`` of ``benchmarks.losses.reference_hashing``
(full ``[B, B]`` matrices, ``lax.top_k``) on the same model outputs, then the optax update, no
shard_map (the state donated too, so only the loss and the step's bookkeeping differ). Same
model, optimiser (``state.make_optimizer``), initial state, batch and key. Random data of real
shapes: images float32 ``[B, 32, 32, 3]`` (``[B, 224, 224, 3]`` with the ImageNet stem), labels
in [0, 100), a random symmetric 100 x 100 class-distance table with zero diagonal
(``benchmarks.random_data``; ``benchmarks.train_step_torch`` times the same step in PyTorch,
eager and compiled, on the same numbers).

Each line gives the step time (compile excluded; the state threaded through the repeats; the
mean of two medians of repeats timed in A-B-B-A order, both in ``round_ms``), images per
second, and the loss at step 0 of that implementation. Both start from the same state and see
the same batch and key, and ``jax.random.rademacher`` (the reference's KL targets) equals
jaxhash's ``bernoulli(key, 0.5) -> +-1`` for the same key (``same_kl_targets`` checks it), so
the two losses should agree to float32 rounding. On the CPU cases the backbone dominates the
step; the loss matters at large batches (see benchmarks/losses.py).

    python -m benchmarks.train_step          # small CNN, width 16 and 32, batch 128 and 256
    python -m benchmarks.train_step --full   # adds ResNet-18 at batch 512, bfloat16 and float32
    python -m benchmarks.train_step --resnet-only --batch 8 --dtype float32   # a CPU check
    python -m benchmarks.train_step --models small_cnn:16 fast_cnn fast_resnet resnet18 \
        --batch 256 --dtype float32      # the fast recipe's networks beside the others

``--models`` times each ``name[:width]`` at each ``--batch`` (and ``--dtype``), then prints one
``train_step_models`` line per batch and dtype: every model's images/s and its ratio to the
first model's, all measured in this process.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from benchmarks.common import device_name, emit, time_fn
from benchmarks.losses import reference_hashing
from benchmarks.random_data import NUM_CLASSES, train_step_inputs
from jaxhash import parallel, train
from jaxhash import state as train_state
from jaxhash.config import default_config, validate_config

REFERENCE = "reference_naive_flax"
# Length of the learning-rate schedule (warm-up, cosine decay); the timed steps are a few of it.
SCHEDULE_STEPS = 10_000


def make_config(model: str, width: int, batch: int, bits: int, dtype: str, stem: str):
    """The default config with the case's model and batch, and the loss the reference writes:
    CE + similarity + the literal kNN KL estimate, weights 1 (``check_reference_matches``)."""
    config = default_config()
    config.loss.w_ce = config.loss.w_sim = config.loss.w_kl = 1.0
    config.loss.kl_form = "wkv"
    config.batch_size = batch
    config.model.name = model
    config.model.width = width
    config.model.bits = bits
    config.model.dtype = dtype
    config.model.stem = stem
    return validate_config(config)


def check_reference_matches(config) -> None:
    """``reference_hashing`` is CE + sim + the literal kNN KL ("wkv") with weights 1, "mean"
    normalisation, p = 2, k = 1."""
    loss = config.loss
    expected = dict(
        w_ce=1.0,
        w_sim=1.0,
        w_kl=1.0,
        kl_form="wkv",
        w_quant=0.0,
        w_balance=0.0,
        normalize="mean",
        power=2.0,
        k=1,
        knn="global",
        label_smoothing=0.0,
    )
    differ = {name: loss[name] for name, value in expected.items() if loss[name] != value}
    if differ:
        raise ValueError(f"the reference implements one loss only; config has {differ}.")


def make_inputs(config, mesh) -> tuple[np.ndarray, dict]:
    """The class-distance table and a batch of the config's shapes, sharded over the data axis.

    ``benchmarks.random_data.train_step_inputs``: the PyTorch benchmark draws the same numbers.
    """
    side = 224 if config.model.stem == "imagenet" else 32
    batch = config.batch_size
    devices = mesh.devices.size
    if batch % devices:
        raise ValueError(f"batch {batch} must be a multiple of the {devices} devices.")
    table, host = train_step_inputs(batch, side)
    return table, jax.device_put(host, NamedSharding(mesh, P(parallel.DATA_AXIS)))


def make_reference_step(model, optimizer, table):
    """The straightforward step: jit(value_and_grad(reference_hashing)) + optax, no shard_map."""
    table = jnp.asarray(table)

    def step(state: train_state.TrainState, batch, key):
        def objective(params):
            variables = {"params": params, "batch_stats": state.batch_stats}
            out, updated = model.apply(
                variables, batch["image"], train=True, mutable=["batch_stats"]
            )
            loss = reference_hashing(out["z"], out["logits"], key, batch["label"], table)
            return loss, updated["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = train_state.TrainState(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new, {"loss": loss}

    return jax.jit(step, donate_argnums=0)


class Threaded:
    """``step`` called with the state it returned last time (the state is donated)."""

    def __init__(self, step, state):
        self.step, self.state, self.metrics = step, state, None

    def __call__(self, batch, key):
        self.state, self.metrics = self.step(self.state, batch, key)
        return self.state, self.metrics


def same_kl_targets(key, batch: int, bits: int) -> bool:
    """Whether the reference's rademacher targets equal jaxhash's bernoulli(0.5) -> +-1 ones."""
    rademacher = jax.random.rademacher(key, (batch, bits), jnp.float32)
    bernoulli = jnp.where(jax.random.bernoulli(key, 0.5, (batch, bits)), 1.0, -1.0)
    return bool(jnp.all(rademacher == bernoulli))


def run_case(model_name: str, width: int, batch: int, bits: int, dtype: str, stem: str, mesh):
    config = make_config(model_name, width, batch, bits, dtype, stem)
    check_reference_matches(config)
    table, data = make_inputs(config, mesh)
    key = jax.random.key(1)

    model = train_state.build_model(config, NUM_CLASSES)
    optimizer = train_state.make_optimizer(config.optim, SCHEDULE_STEPS)
    image_shape = data["image"].shape[1:]
    state = train_state.create_state(config, model, optimizer, image_shape, mesh)
    ours_step = train.make_train_step(
        model, optimizer, train.make_loss_fn(config, mesh, table), mesh
    )
    ref_step = make_reference_step(model, optimizer, table)

    # Both start from the same state; their first call (compile included) gives step-0 losses.
    ref = Threaded(ref_step, jax.tree_util.tree_map(jnp.copy, state))
    ours = Threaded(ours_step, state)
    ref_loss = float(ref(data, key)[1]["loss"])
    ours_metrics = jax.device_get(ours(data, key)[1])
    ours_loss = float(ours_metrics["loss"])
    # Two rounds in A-B-B-A order, each a median of repeats: drift of a shared machine
    # (clocks, other work) falls on both alike. The time is the mean of the two medians.
    ref_rounds = [time_fn(ref, data, key)]
    ours_rounds = [time_fn(ours, data, key), time_fn(ours, data, key, warmup=1)]
    ref_rounds.append(time_fn(ref, data, key, warmup=1))
    ref_ms, ours_ms = statistics.mean(ref_rounds), statistics.mean(ours_rounds)
    for name, runner in (("jaxhash", ours), (REFERENCE, ref)):
        last = float(runner.metrics["loss"])
        if not math.isfinite(last):
            print(f"warning: {name}'s loss became {last} while timing", file=sys.stderr)

    shape = {
        "model": model_name,
        "stem": stem,
        "width": _width(config.model),
        "batch": batch,
        "bits": bits,
        "dtype": dtype,
    }
    common = dict(
        devices=int(mesh.devices.size),
        same_kl_targets=same_kl_targets(key, batch, bits),
    )
    rows = [
        emit(
            "train_step",
            REFERENCE,
            shape,
            ref_ms,
            REFERENCE,
            ref_ms,
            images_per_s=round(batch / (ref_ms / 1e3), 1),
            round_ms=[round(t, 4) for t in ref_rounds],
            loss=ref_loss,
            **common,
        ),
        emit(
            "train_step",
            "jaxhash",
            shape,
            ours_ms,
            REFERENCE,
            ref_ms,
            images_per_s=round(batch / (ours_ms / 1e3), 1),
            round_ms=[round(t, 4) for t in ours_rounds],
            loss=ours_loss,
            reference_loss=ref_loss,
            terms={k: float(ours_metrics[k]) for k in ("ce", "sim", "kl")},
            **common,
        ),
    ]
    return rows


def _width(model) -> int | list[int]:
    """The case's width as the model sees it (the fast nets: their three stage widths)."""
    from jaxhash.models import FAST_WIDTHS

    if model.name in FAST_WIDTHS:
        return list(model.widths or FAST_WIDTHS[model.name])
    return model.width or (32 if model.name == "small_cnn" else 64)


def compare_models(specs: list[str], batches, bits: int, dtypes, stem: str, mesh) -> None:
    """Each ``name[:width]`` of ``specs`` timed at each batch and dtype, then a summary line
    of their images/s and the ratio to the first model's (same process, same batch)."""
    for batch in batches:
        for dtype in dtypes:
            speeds = {}
            for spec in specs:
                name, _, width = spec.partition(":")
                rows = run_case(name, int(width or 0), batch, bits, dtype, stem, mesh)
                speeds[spec] = rows[1]["images_per_s"]  # jaxhash's step
            first = speeds[specs[0]]
            print(
                json.dumps(
                    {
                        "benchmark": "train_step_models",
                        "device": device_name(),
                        "jax_version": jax.__version__,
                        "batch": batch,
                        "bits": bits,
                        "dtype": dtype,
                        "images_per_s": speeds,
                        f"ratio_to_{specs[0]}": {k: round(v / first, 3) for k, v in speeds.items()},
                    }
                ),
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--width", type=int, nargs="+", default=[16, 32], help="small CNN")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--full", action="store_true", help="add ResNet-18 at batch 512")
    parser.add_argument(
        "--resnet-only",
        action="store_true",
        help="only ResNet-18, at --batch (e.g. --resnet-only --batch 8 on a CPU)",
    )
    parser.add_argument("--stem", choices=("cifar", "imagenet"), default="cifar", help="ResNet")
    parser.add_argument(
        "--dtype",
        nargs="+",
        choices=("bfloat16", "float32"),
        default=["bfloat16", "float32"],
        help="ResNet-18 compute dtypes",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="name[:width] of each model to compare at --batch and --dtype, e.g. small_cnn:16 "
        "fast_cnn fast_resnet resnet18",
    )
    args = parser.parse_args(argv)
    mesh = parallel.make_mesh()
    if args.models:
        compare_models(args.models, args.batch, args.bits, args.dtype, args.stem, mesh)
        return
    if args.resnet_only:
        cases = [
            ("resnet18", 0, batch, dtype, args.stem) for batch in args.batch for dtype in args.dtype
        ]
    else:
        cases = [
            ("small_cnn", width, batch, "float32", "cifar")
            for width in args.width
            for batch in args.batch
        ]
    if args.full and not args.resnet_only:
        cases += [("resnet18", 0, 512, dtype, args.stem) for dtype in args.dtype]
    for model_name, width, batch, dtype, stem in cases:
        run_case(model_name, width, batch, args.bits, dtype, stem, mesh)


if __name__ == "__main__":
    main()
