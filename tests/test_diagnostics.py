"""jaxhash.diagnostics.code_diagnostics against a float64 NumPy oracle, one and four devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxhash.diagnostics import code_diagnostics

diagnostics = jax.jit(code_diagnostics, static_argnames=("num_classes", "axis_name"))


def oracle(z, labels, mask):
    z = np.asarray(z, np.float64)[mask]
    labels = np.asarray(labels)[mask]
    n, dim = z.shape
    b = np.where(z > 0, 1.0, -1.0)
    norms = np.linalg.norm(z, axis=1)
    hamming = (b[:, None, :] != b[None, :, :]).mean(-1)
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(n, dtype=bool)
    return {
        "z_norm": np.mean(norms / np.sqrt(dim)),
        "z_sign_cos": np.mean(np.abs(z).sum(1) / (norms * np.sqrt(dim))),
        "bit_imbalance": np.mean(np.abs(b.mean(0))),
        "within_class_hamming": hamming[same & off].mean(),
        "between_class_hamming": hamming[~same].mean(),
    }


def _inputs(seed, n=32, dim=8, classes=5):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, dim)) + 0.3).astype(np.float32)
    labels = rng.integers(0, classes, n).astype(np.int32)
    mask = rng.random(n) > 0.2
    mask[:3] = True
    return z, labels, mask


def test_matches_oracle():
    z, labels, mask = _inputs(0)
    got = diagnostics(z, labels, mask=jnp.asarray(mask), num_classes=5)
    for name, value in oracle(z, labels, mask).items():
        np.testing.assert_allclose(float(got[name]), value, rtol=1e-5, err_msg=name)


def test_binary_balanced_codes_and_no_labels():
    z = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], np.float32)
    got = diagnostics(3 * z)
    assert set(got) == {"z_norm", "z_sign_cos", "bit_imbalance"}
    np.testing.assert_allclose([float(got[k]) for k in sorted(got)], [0.0, 3.0, 1.0], rtol=1e-6)


def test_no_same_class_pair_gives_zero():
    z, _, _ = _inputs(1, n=4)
    got = diagnostics(z, np.arange(4, dtype=np.int32), num_classes=4)
    assert float(got["within_class_hamming"]) == 0.0
    with pytest.raises(ValueError, match="num_classes"):
        code_diagnostics(z, np.arange(4))


def test_sharded_equals_one_device(mesh4):
    z, labels, mask = _inputs(2)

    def fn(z, labels, mask, axis_name):
        return code_diagnostics(z, labels, mask=mask, num_classes=5, axis_name=axis_name)

    sharded = jax.shard_map(
        lambda *a: fn(*a, axis_name="data"), mesh=mesh4, in_specs=(P("data"),) * 3, out_specs=P()
    )
    one, four = jax.jit(lambda *a: (fn(*a, axis_name=None), sharded(*a)))(z, labels, mask)
    for name in one:
        np.testing.assert_allclose(float(four[name]), float(one[name]), rtol=1e-6, err_msg=name)
