"""jaxhash.losses.kl: the kNN KL estimate against SciPy's cKDTree and closed forms, and the
binary KL loss, on one device and sharded (the well-posed forms: test_kl_forms.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from jaxhash import losses
from tests.losses.loss_checks import (
    binary_kl_loss,
    check_sharded,
    kl_oracle,
    knn_kl_divergence,
    random_codes,
    random_mask,
    seeded_rng,
)


def gauss_kl(mu, s):
    """KL(N(0, I) || N(mu, s^2 I)) in closed form."""
    d = mu.shape[0]
    return 0.5 * (d / s**2 + mu @ mu / s**2 - d + 2 * d * np.log(s))


def _kl_data(seed, n, m, d=3):
    r = seeded_rng(seed)
    x = r.standard_normal((n, d)).astype(np.float32)
    y = (0.7 + 1.5 * r.standard_normal((m, d))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("k", [1, 3])
def test_knn_kl_matches_ckdtree(k):
    """knn_kl_divergence equals the float64 cKDTree estimator to 1e-4 relative (m != n)."""
    x, y = _kl_data(40, 300, 270)
    want = kl_oracle(x, y, k)[0]
    got = knn_kl_divergence(x, y, k=k)
    assert got.shape == () and got.dtype == jnp.float32
    np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_knn_kl_mask_equals_subset():
    """A mask drops x rows: the value equals the estimate on the valid subset."""
    x, y = _kl_data(41, 60, 45)
    mask = random_mask(42, 60)
    got = float(knn_kl_divergence(x, y, k=2, mask=jnp.asarray(mask)))
    np.testing.assert_allclose(got, kl_oracle(x, y, 2, mask)[0], rtol=1e-4)
    np.testing.assert_allclose(got, float(knn_kl_divergence(x[mask], y, k=2)), rtol=1e-5)


def _gauss_sample(seed, n, mu, s):
    r = seeded_rng(seed)
    d = mu.shape[0]
    x = r.standard_normal((n, d)).astype(np.float32)
    y = (mu + s * r.standard_normal((n, d))).astype(np.float32)
    return x, y


def test_knn_kl_gaussian_closed_form():
    """N(0, I) vs N(mu, 4 I) in d=4 with n=m=4000: within 15% of the closed form."""
    mu, s = np.full(4, 0.25), 2.0
    est = float(knn_kl_divergence(*_gauss_sample(50, 4000, mu, s)))
    assert abs(est - gauss_kl(mu, s)) < 0.15 * gauss_kl(mu, s)


@pytest.mark.slow
def test_knn_kl_gaussian_error_shrinks():
    """The mean absolute error over seeds is smaller at n=16000 than at n=1000."""
    mu, s = np.full(4, 1.0), 1.0
    true = gauss_kl(mu, s)

    def err(n, seeds):
        ests = [float(knn_kl_divergence(*_gauss_sample(sd, n, mu, s))) for sd in seeds]
        return np.mean(np.abs(np.array(ests) - true))

    assert err(16000, [0, 1]) < err(1000, [0, 1, 2, 3])


def test_knn_kl_duplicates_are_finite():
    """Duplicate x rows and x == y give a finite value and finite gradients."""
    x, y = _kl_data(43, 20, 15)
    x[3] = x[7]
    x[11] = x[7]
    x[12] = x[0]
    f = jax.value_and_grad(knn_kl_divergence, argnums=(0, 1))
    for xx, yy in ((x, y), (x, x)):
        val, (gx, gy) = f(xx, yy)
        assert np.isfinite(float(val))
        assert np.all(np.isfinite(np.asarray(gx))) and np.all(np.isfinite(np.asarray(gy)))


def test_knn_kl_check_grads_float64():
    """check_grads (first order, reverse mode) in float64 on well-separated data."""
    x, y = _kl_data(44, 10, 8)
    # No near-ties among the first neighbours: the perturbations (~1e-4) keep the same ones.
    for pts, skip in ((x, 1), (y, 0)):
        d2 = np.sort(((x[:, None] - pts[None]) ** 2).sum(-1), axis=1)[:, skip : skip + 4]
        assert np.all(np.diff(d2, axis=1) > 1e-3)
    with jax.enable_x64(True):
        x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
        f = functools.partial(knn_kl_divergence, k=2)
        assert f(x64, y64).dtype == jnp.float64
        check_grads(f, (x64, y64), order=1, modes=("rev",))


@pytest.mark.parametrize(
    ("n", "m", "dx", "dy", "k", "name"),
    [
        (5, 9, 3, 3, 5, r"\bk\b"),  # k >= n
        (5, 3, 3, 3, 4, r"\bk\b"),  # k > m
        (5, 9, 3, 2, 1, r"\bx\b|\by\b"),
        (0, 9, 3, 3, 1, r"\bx\b"),
        (5, 0, 3, 3, 1, r"\by\b"),
    ],
    ids=["k>=n", "k>m", "dim-mismatch", "empty-x", "empty-y"],
)
def test_knn_kl_bad_inputs(n, m, dx, dy, k, name):
    """Bad sizes raise ValueError whose message names the argument."""
    x = np.zeros((n, dx), np.float32)
    y = np.zeros((m, dy), np.float32)
    with pytest.raises(ValueError, match=name):
        knn_kl_divergence(x, y, k=k)


@pytest.mark.slow
def test_binary_kl_loss_is_kl_to_rademacher():
    """The "wkv" form = knn_kl_divergence to rademacher samples; num_targets defaults to n."""
    codes = random_codes(60, 40, 8)
    key = jax.random.key(3)
    y40 = jax.random.rademacher(key, (40, 8), jnp.float32)
    y25 = jax.random.rademacher(key, (25, 8), jnp.float32)
    mask = jnp.asarray(random_mask(61, 40))
    np.testing.assert_allclose(
        float(binary_kl_loss(codes, key, form="wkv")),
        float(knn_kl_divergence(codes, y40)),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        float(binary_kl_loss(codes, key, form="wkv", k=2, num_targets=25, mask=mask)),
        float(knn_kl_divergence(codes, y25, k=2, mask=mask)),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        float(binary_kl_loss(codes, key, form="wkv", k=2, num_targets=25, mask=mask)),
        kl_oracle(codes, np.asarray(y25), 2, np.asarray(mask))[0],
        rtol=1e-4,
    )


@pytest.mark.slow
@pytest.mark.parametrize("form", losses.KL_FORMS)
def test_binary_kl_loss_prefers_spread_binary_codes(form):
    """Codes near distinct hypercube corners score lower than codes collapsed near one point."""
    r = seeded_rng(62)
    key = jax.random.key(4)
    corners = np.where(r.random((64, 8)) < 0.5, -1.0, 1.0)
    spread = (corners + 0.05 * r.standard_normal((64, 8))).astype(np.float32)
    collapsed = (corners[0] + 0.05 * r.standard_normal((64, 8))).astype(np.float32)
    margin = 1.0 if form == "wkv" else 0.1  # nats, or nats per bit
    assert float(binary_kl_loss(spread, key, form=form)) + margin < float(
        binary_kl_loss(collapsed, key, form=form)
    )


def test_knn_kl_sharded(mesh4):
    """knn_kl_divergence over 4 devices equals the single-device value and grads (x and y)."""
    x, y = _kl_data(93, 32, 48, d=6)
    mask = jnp.asarray(random_mask(94, 32))

    def fn(x, y, mask, axis_name):
        return knn_kl_divergence(x, y, k=2, mask=mask, axis_name=axis_name)

    check_sharded(mesh4, fn, (x, y, mask), (P("data"),) * 3, argnums=(0, 1))


@pytest.mark.slow
@pytest.mark.parametrize("form", losses.KL_FORMS)
def test_binary_kl_loss_sharded(mesh4, form):
    """Every KL form over 4 devices equals one device (wkv: num_targets defaults to 32, not 8)."""
    codes = random_codes(95, 32)
    mask = jnp.asarray(random_mask(96, 32))

    def fn(codes, key, mask, axis_name):
        return binary_kl_loss(codes, key, form=form, k=2, mask=mask, axis_name=axis_name)

    check_sharded(mesh4, fn, (codes, jax.random.key(8), mask), (P("data"), P(), P("data")))


def test_knn_terms_need_more_valid_rows_than_k():
    codes = random_codes(102, 8)
    mask = jnp.zeros(8, bool).at[:2].set(True)
    with pytest.raises(ValueError, match="valid"):
        losses.binary_kl_loss(codes, form="corner", k=2, mask=mask)
    traced = jax.jit(lambda m: losses.binary_kl_loss(codes, form="corner", k=2, mask=m))
    assert np.isnan(float(traced(mask)))
