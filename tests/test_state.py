"""The optimiser of jaxhash.state: schedules, Lookahead and frozen parameters, against NumPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxhash import state
from jaxhash.config import default_config


def _optim(**changes) -> ml_collections.ConfigDict:
    optim = default_config().optim
    optim.update(changes)
    return optim


def test_linear_schedule_warms_up_then_decays_to_zero():
    schedule = state.learning_rate_schedule(
        _optim(schedule="linear", learning_rate=0.4, warmup_steps=10), 50
    )
    values = np.array([float(schedule(t)) for t in range(51)])
    np.testing.assert_allclose(values[:11], 0.4 * np.arange(11) / 10, atol=1e-7)
    np.testing.assert_allclose(values[10:], 0.4 * (1 - np.arange(41) / 40), atol=1e-7)


def test_cosine_schedule_is_unchanged():
    optim = _optim(learning_rate=0.1, warmup_steps=5)
    schedule = state.learning_rate_schedule(optim, 20)
    expected = optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 20, 0.0)
    for t in range(21):
        assert float(schedule(t)) == float(expected(t))


def _numpy_lookahead(grads, lr, every, decay, total):
    """Plain SGD with Lookahead, step by step in float64."""
    params, slow = 1.0, 1.0
    trace = []
    for t, g in enumerate(grads, start=1):
        params = params - lr * g
        if t % every == 0 or t == total:
            d = 1.0 if t == total else decay * (t / total) ** 3
            slow = d * slow + (1 - d) * params
            params = slow
        trace.append(params)
    return np.array(trace)


def test_lookahead_matches_a_float64_simulation():
    total, every, decay, lr = 12, 3, 0.7, 0.1
    grads = np.random.default_rng(0).normal(size=total)
    tx = optax.chain(optax.sgd(lr), state.lookahead(every, decay, total))
    params = {"w": jnp.ones((), jnp.float32)}
    opt_state = tx.init(params)
    trace = []
    for g in grads:
        updates, opt_state = tx.update({"w": jnp.float32(g)}, opt_state, params)
        params = optax.apply_updates(params, updates)
        trace.append(float(params["w"]))
    expected = _numpy_lookahead(grads, lr, every, decay, total)
    np.testing.assert_allclose(trace, expected, rtol=1e-5)
    assert trace[-1] == pytest.approx(float(opt_state[1].slow["w"]))  # ends on the slow weights


def test_lookahead_needs_the_parameters():
    tx = state.lookahead(2, 0.5, 10)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(params, tx.init(params), None)


def test_frozen_parameters_never_move_and_the_rest_do():
    params = {
        "backbone": {"whiten": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}},
        "hash": {"kernel": jnp.ones((2, 2))},
    }
    optim = _optim(lookahead_every=2, weight_decay=0.1, warmup_steps=0, learning_rate=0.5)
    tx = state.make_optimizer(optim, 6, frozen=("whiten/kernel",))
    opt_state = tx.init(params)
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    for _ in range(6):
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(params["backbone"]["whiten"]["kernel"], 1.0)
    assert np.all(np.asarray(params["backbone"]["whiten"]["bias"]) < 1.0)
    assert np.all(np.asarray(params["hash"]["kernel"]) < 1.0)


def test_frozen_mask_matches_path_suffixes():
    params = {"a": {"whiten": {"kernel": 0, "bias": 0}}, "whiten": {"kernel": 0}, "kernel": 0}
    mask = state.frozen_mask(params, ("whiten/kernel",))
    assert mask == {
        "a": {"whiten": {"kernel": True, "bias": False}},
        "whiten": {"kernel": True},
        "kernel": False,
    }


@pytest.mark.parametrize("name", ["sgd", "adamw"])
@pytest.mark.parametrize("decay_vectors", [False, True])
def test_weight_decay_reaches_vectors_only_when_asked(name, decay_vectors):
    """With a zero gradient only weight decay moves a parameter: kernels always shrink;
    biases and BatchNorm-like vectors only with ``optim.decay_vectors``."""
    optim = _optim(name=name, weight_decay=0.1, warmup_steps=0, decay_vectors=decay_vectors)
    params = {
        "conv": {"kernel": jnp.ones((3, 3, 2, 4)), "bias": jnp.ones(4)},
        "bn": {"bias": jnp.ones(4)},
    }
    optimizer = state.make_optimizer(optim, total_steps=10)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zeros, optimizer.init(params), params)
    moved = optax.apply_updates(params, updates)
    assert np.all(np.asarray(moved["conv"]["kernel"]) < 1.0)
    for vector in (moved["conv"]["bias"], moved["bn"]["bias"]):
        if decay_vectors:
            assert np.all(np.asarray(vector) < 1.0)
        else:
            np.testing.assert_array_equal(np.asarray(vector), 1.0)


def test_runs_saved_before_decay_vectors_existed_keep_decaying_vectors():
    """A stored config without ``optim.decay_vectors`` reads as the behaviour it trained with
    (True); a config that has the field keeps its value."""
    from jaxhash import config as config_lib

    old = default_config().to_dict()
    del old["optim"]["decay_vectors"]
    assert config_lib.with_former_defaults(ml_collections.ConfigDict(old)).optim.decay_vectors
    new = default_config()
    assert not config_lib.with_former_defaults(new).optim.decay_vectors
    assert not config_lib.validate_config(default_config()).optim.decay_vectors
