"""jaxhash.losses.total: hashing_loss is the weighted sum of its terms, on one device and
sharded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxhash import losses
from jaxhash.losses import ClassTargets, LossWeights
from tests.losses.loss_checks import (
    binary_kl_loss,
    bit_balance_loss,
    check_sharded,
    classification_loss,
    hashing_inputs,
    hashing_loss,
    kl_oracle,
    quantization_loss,
    random_mask,
    similarity_loss,
)


def test_hashing_loss_is_weighted_sum():
    """Total = sum of weight * term; each metric equals its function; kl metrics are consistent."""
    n, kbits = 24, 8
    codes, logits, labels, cd = hashing_inputs(80, n, kbits)
    key = jax.random.key(5)
    mask = random_mask(81, n)
    jm = jnp.asarray(mask)
    targets = ClassTargets(jnp.asarray(labels), jnp.asarray(cd))
    w = LossWeights(ce=0.7, sim=1.3, kl=0.5, quant=0.2, balance=0.9)
    loss, metrics = hashing_loss(
        codes,
        key,
        logits=logits,
        labels=labels,
        targets=targets,
        weights=w,
        kl_form="wkv",
        k=2,
        normalize="row",
        power=1.5,
        mask=jm,
    )
    terms = {
        "ce": classification_loss(logits, labels, mask=jm),
        "sim": similarity_loss(codes, targets, normalize="row", power=1.5, mask=jm),
        "kl": binary_kl_loss(codes, key, form="wkv", k=2, mask=jm),
        "quant": quantization_loss(codes, mask=jm),
        "balance": bit_balance_loss(codes, mask=jm),
    }
    assert set(metrics) >= {"loss", "kl_log_nu", "kl_log_rho", *terms}
    for name, val in terms.items():
        np.testing.assert_allclose(float(metrics[name]), float(val), rtol=1e-5, err_msg=name)
    total = sum(getattr(w, name) * float(val) for name, val in terms.items())
    np.testing.assert_allclose(float(loss), total, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-6)
    y = np.asarray(jax.random.rademacher(key, (n, kbits), jnp.float32))
    _, log_nu, log_rho = kl_oracle(codes, y, 2, mask)
    np.testing.assert_allclose(float(metrics["kl_log_nu"]), log_nu.mean(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(metrics["kl_log_rho"]), log_rho.mean(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_hashing_loss_default_weights_and_zero_weights():
    """Default weights use ce+sim+kl; a zero-weight term needs no input and is not computed."""
    assert tuple(LossWeights()) == (1.0, 1.0, 1.0, 0.0, 0.0)
    n = 16
    codes, logits, labels, cd = hashing_inputs(82, n)
    key = jax.random.key(6)
    targets = ClassTargets(jnp.asarray(labels), jnp.asarray(cd))
    loss, metrics = hashing_loss(codes, key, logits=logits, labels=labels, targets=targets)
    assert losses.DEFAULT_KL_FORM == "marginal"
    assert {"loss", "ce", "sim", "kl", "kl_w2", "kl_decorrelation"} <= set(metrics)
    want = (
        classification_loss(logits, labels)
        + similarity_loss(codes, targets)
        + binary_kl_loss(codes, key)
    )
    np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)

    loss, metrics = hashing_loss(codes, key, targets=targets, weights=LossWeights(ce=0.0))
    assert "ce" not in metrics
    want = similarity_loss(codes, targets) + binary_kl_loss(codes, key)
    np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)

    w = LossWeights(ce=0.0, sim=0.0, kl=0.0, quant=1.0)
    loss, metrics = hashing_loss(codes, key, weights=w)
    assert not {"ce", "sim"} & set(metrics)
    np.testing.assert_allclose(float(loss), float(quantization_loss(codes)), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("drop", "name"),
    [("logits", "logits"), ("labels", "labels"), ("targets", "targets"), ("key", "key")],
)
def test_hashing_loss_missing_input_raises(drop, name):
    """A term with nonzero weight whose input is missing raises ValueError naming it."""
    codes, logits, labels, cd = hashing_inputs(83, 8)
    kw = dict(logits=logits, labels=labels, targets=ClassTargets(jnp.asarray(labels), cd))
    kw["key"] = jax.random.key(7)
    kw[drop] = None
    key = kw.pop("key")
    with pytest.raises(ValueError, match=name):
        losses.hashing_loss(codes, key, kl_form="wkv", **kw)
    if drop == "key":  # the default (marginal) form draws no samples: no key needed
        losses.hashing_loss(codes, None, **kw)


@pytest.mark.slow
def test_hashing_loss_sharded(mesh4):
    """hashing_loss (all five terms, dense targets) over 4 devices equals one device."""
    n = 32
    codes, logits, labels, cd = hashing_inputs(99, n)
    dense = cd[labels][:, labels]
    mask = jnp.asarray(random_mask(100, n))
    w = LossWeights(ce=0.7, sim=1.3, kl=0.5, quant=0.2, balance=0.9)

    def fn(codes, logits, key, labels, dense, mask, axis_name):
        return hashing_loss(
            codes,
            key,
            logits=logits,
            labels=labels,
            targets=dense,
            weights=w,
            mask=mask,
            axis_name=axis_name,
        )

    args = (codes, logits, jax.random.key(9), labels, dense, mask)
    specs = (P("data"), P("data"), P(), P("data"), P("data"), P("data"))
    check_sharded(mesh4, fn, args, specs, argnums=(0, 1), has_aux=True)
