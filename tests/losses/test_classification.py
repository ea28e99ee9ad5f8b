"""jaxhash.losses.classification: the cross-entropy of the classifier head against NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from tests.losses.loss_checks import (
    check_sharded,
    classification_loss,
    hashing_inputs,
    random_codes,
    random_mask,
    seeded_rng,
)


def np_ce(logits, labels, mask):
    z = np.asarray(logits, np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    return np.mean((lse - z[np.arange(len(z)), labels])[mask])


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_classification_loss_matches_numpy(masked):
    """The classification loss equals its NumPy formula."""
    n = 20
    logits = 3 * random_codes(71, n, 5)
    labels = seeded_rng(72).integers(0, 5, n).astype(np.int32)
    mask = random_mask(73, n) if masked else np.ones(n, bool)
    kw = {"mask": jnp.asarray(mask)} if masked else {}
    got = classification_loss(logits, labels, **kw)
    assert got.shape == ()
    np.testing.assert_allclose(float(got), np_ce(logits, labels, mask), rtol=1e-5)


def test_classification_loss_bad_inputs():
    """Bad shapes raise ValueError naming the argument."""
    codes = random_codes(74, 6, 4)
    with pytest.raises(ValueError, match="logits"):
        classification_loss(codes[0], np.zeros(6, np.int32))
    with pytest.raises(ValueError, match="labels"):
        classification_loss(codes, np.zeros(5, np.int32))


def test_classification_loss_sharded(mesh4):
    """classification_loss over 4 devices."""
    n = 32
    _, logits, labels, _ = hashing_inputs(97, n)
    mask = jnp.asarray(random_mask(98, n))
    spec = (P("data"),) * 3

    def ce(logits, labels, mask, axis_name):
        return classification_loss(logits, labels, mask=mask, axis_name=axis_name)

    check_sharded(mesh4, ce, (logits, labels, mask), spec)
