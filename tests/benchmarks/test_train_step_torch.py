"""The PyTorch train-step benchmark computes the naive Flax step's loss, model and update.

Oracles: ``benchmarks.losses.reference_hashing`` (the JAX reference, same inputs and targets),
the Flax model's parameter shapes, ``jaxhash.state.make_optimizer`` (optax) and
``jaxhash.state.learning_rate_schedule``. The tests that need PyTorch skip without it (it is no
test dependency); the schedule and the no-PyTorch line are checked everywhere.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from benchmarks import train_step as flax_bench
from benchmarks import train_step_torch as bench
from benchmarks.losses import reference_hashing
from benchmarks.random_data import train_step_inputs
from jaxhash import models
from jaxhash import state as train_state
from jaxhash.config import default_config

ROOT = Path(__file__).resolve().parents[2]


def test_constants_and_schedule_match_jaxhash_defaults():
    optim = default_config().optim
    assert optim.name == "sgd"
    assert (bench.LEARNING_RATE, bench.MOMENTUM, bench.NESTEROV, bench.WEIGHT_DECAY) == (
        optim.learning_rate,
        optim.momentum,
        optim.nesterov,
        optim.weight_decay,
    )
    assert (bench.WARMUP_STEPS, bench.SCHEDULE_STEPS) == (
        optim.warmup_steps,
        flax_bench.SCHEDULE_STEPS,
    )
    assert not optim.grad_clip and optim.backbone_lr_scale == 1.0
    schedule = train_state.learning_rate_schedule(optim, flax_bench.SCHEDULE_STEPS)
    for step in (0, 1, 37, 99, 100, 101, 2500, 9999, 10_000, 12_345):
        assert bench.learning_rate(step) == pytest.approx(float(schedule(step)), abs=1e-8)


def test_prints_a_skipped_line_without_torch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert bench.main(["--batch", "8", "--reference-ms", "3.0"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["skipped"].startswith("PyTorch is not importable")
    assert line["speedup"] is None and line["median_ms"] is None
    assert line["shape"] == {
        "model": "resnet18",
        "stem": "cifar",
        "width": 64,
        "batch": 8,
        "bits": 64,
        "dtype": "bfloat16",
    }


def test_inputs_are_the_same_in_every_process():
    table, batch = train_step_inputs(16)
    again_table, again = train_step_inputs(16)
    np.testing.assert_array_equal(table, again_table)
    np.testing.assert_array_equal(batch["image"], again["image"])
    np.testing.assert_array_equal(batch["label"], again["label"])
    np.testing.assert_array_equal(table, train_step_inputs(4)[0])  # drawn before the batch
    assert table.shape == (100, 100) and table.dtype == np.float32
    assert np.all(np.diag(table) == 0) and np.array_equal(table, table.T)
    assert batch["image"].shape == (16, 32, 32, 3) and batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32
    assert 0 <= batch["label"].min() and batch["label"].max() < 100


@pytest.mark.parametrize("batch", [2, 24])
def test_loss_and_gradients_match_reference_hashing(batch):
    torch = pytest.importorskip("torch")
    from benchmarks import torch_model

    rng = np.random.default_rng(batch)
    z = rng.normal(size=(batch, 16)).astype(np.float32)
    logits = rng.normal(size=(batch, 10)).astype(np.float32)
    labels = rng.integers(0, 10, batch).astype(np.int32)
    table = rng.uniform(0.2, 1.0, (10, 10)).astype(np.float32)
    table = (table + table.T) / 2
    np.fill_diagonal(table, 0.0)
    key = jax.random.key(3)
    targets = np.asarray(jax.random.rademacher(key, z.shape, jnp.float32))

    value, (gz, glogits) = jax.value_and_grad(reference_hashing, argnums=(0, 1))(
        jnp.asarray(z), jnp.asarray(logits), key, jnp.asarray(labels), jnp.asarray(table)
    )
    tz = torch.tensor(z, requires_grad=True)
    tlogits = torch.tensor(logits, requires_grad=True)
    loss = torch_model.hashing_loss(
        tz,
        tlogits,
        torch.tensor(labels).long(),
        torch.tensor(table),
        torch.tensor(targets),
    )
    loss.backward()
    assert loss.item() == pytest.approx(float(value), rel=1e-5)
    np.testing.assert_allclose(tz.grad.numpy(), np.asarray(gz), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(tlogits.grad.numpy(), np.asarray(glogits), rtol=1e-4, atol=1e-7)

    drawn = torch_model.rademacher((batch, 16), torch.device("cpu"))
    assert set(drawn.unique().tolist()) <= {-1.0, 1.0} and drawn.dtype == torch.float32


def test_model_has_the_flax_parameter_shapes():
    torch = pytest.importorskip("torch")
    from benchmarks import torch_model

    flax_model = models.create_model("resnet18", 64, 100, stem="cifar")
    variables = jax.eval_shape(
        lambda: flax_model.init(jax.random.key(0), jnp.zeros((2, 32, 32, 3)), train=False)
    )
    flax_shapes = sorted(tuple(x.shape) for x in jax.tree_util.tree_leaves(variables["params"]))
    flax_stats = sorted(tuple(x.shape) for x in jax.tree_util.tree_leaves(variables["batch_stats"]))

    model = torch_model.ResNet18Hashing(64, 100)
    # Flax lays kernels out as [kh, kw, in, out] and dense weights as [in, out].
    layout = {4: (2, 3, 1, 0), 2: (1, 0), 1: (0,)}
    torch_shapes = sorted(tuple(p.permute(*layout[p.dim()]).shape) for p in model.parameters())
    torch_stats = sorted(
        tuple(b.shape) for name, b in model.named_buffers() if not name.endswith("tracked")
    )
    assert torch_shapes == flax_shapes
    assert torch_stats == flax_stats

    images = torch.zeros(3, 3, 32, 32).to(memory_format=torch.channels_last)
    z, logits = model(images)
    assert z.shape == (3, 64) and logits.shape == (3, 100) and z.dtype == torch.float32
    # Zero-initialised last BN scale of each block: at init every block passes its input on.
    for block in model.blocks:
        assert torch.count_nonzero(block.bn2.weight) == 0


def test_sgd_update_matches_optax(monkeypatch):
    torch = pytest.importorskip("torch")
    # torch.optim imports Dynamo, which imports Triton when it can; Triton's LLVM crashes a
    # process that loaded TensorFlow's first (other tests do). This CPU test needs no Triton.
    monkeypatch.setitem(sys.modules, "triton", None)
    rng = np.random.default_rng(0)
    params = rng.normal(size=(5, 3)).astype(np.float32)
    grads = [rng.normal(size=(5, 3)).astype(np.float32) for _ in range(4)]
    start = 101  # past the warm-up: non-zero rates

    optimizer = train_state.make_optimizer(default_config().optim, flax_bench.SCHEDULE_STEPS)
    state = optimizer.init(jnp.asarray(params))
    state = jax.tree_util.tree_map(
        lambda x: jnp.full_like(x, start) if x.dtype == jnp.int32 else x, state
    )  # optax's step count, for the rate
    expected = jnp.asarray(params)
    for g in grads:
        updates, state = optimizer.update(jnp.asarray(g), state, expected)
        expected = optax.apply_updates(expected, updates)

    for tensor_lr in (False, True):
        p = torch.nn.Parameter(torch.tensor(params))
        sgd = bench.make_optimizer([p], torch.device("cpu"), tensor_lr=tensor_lr)
        for i, g in enumerate(grads):
            bench.set_rate(sgd, start + i)
            p.grad = torch.tensor(g)
            sgd.step()
        np.testing.assert_allclose(
            p.detach().numpy() - params, np.asarray(expected) - params, rtol=1e-4, atol=1e-7
        )


def test_cpu_smoke_run():
    pytest.importorskip("torch")
    args = ["--batch", "2", "--impl", "torch_eager", "--min-repeats", "1", "--device", "cpu"]
    args += ["--reference-ms", "1000", "--reference-loss", "100.0"]
    # Its own process, as benchmarks/gpu.sh runs it (and free of this one's TensorFlow).
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_step_torch", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["impl"] == "torch_eager" and line["device"] == "cpu"
    assert line["shape"]["batch"] == 2 and line["reference"] == "reference_naive_flax"
    assert np.isfinite(line["loss"]) and line["median_ms"] > 0
    assert line["speedup"] == pytest.approx(1000 / line["median_ms"], rel=1e-2)
    assert line["reference_loss"] == 100.0 and len(line["round_ms"]) == 2
