"""The forms of the KL term (jaxhash.losses.binary_kl_loss) against float64 NumPy/SciPy oracles.

Each form: its value against an independent oracle (with a mask and a bit probability other than
1/2), gradients (check_grads in float64), its scale behaviour (the well-posed forms are not
lowered by inflating corner-like outputs; the literal estimate is), and its bad inputs.
"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from jaxhash import losses
from tests.losses.loss_checks import seeded_rng

STATIC = ("form", "k", "sigma", "floor", "decorrelation", "p_one")
terms = jax.jit(losses.binary_kl_terms, static_argnames=STATIC)


def _mask(seed, n):
    m = seeded_rng(seed).random(n) >= 0.25
    m[:2] = True
    m[-1] = False
    return m


def _valid(z, mask):
    z = np.asarray(z, np.float64)
    return z if mask is None else z[np.asarray(mask)]


def _log_rho(z, k):
    return np.log(cKDTree(z).query(z, k=[k + 1])[0][:, -1])


# ----------------------------------------------------------------------------- oracles


def marginal_oracle(z, mask=None, p_one=0.5, decorrelation=1.0, resolution=40):
    """W2^2 per bit on a quantile grid (exact when n (1-p) resolution is an integer)."""
    z = _valid(z, mask)
    n, dim = z.shape
    u = (np.arange(n * resolution) + 0.5) / (n * resolution)
    target = np.where(u < 1.0 - p_one, -1.0, 1.0)
    sorted_z = np.sort(z, axis=0)[np.floor(u * n).astype(int)]  # the empirical quantiles
    w2 = np.mean((sorted_z - target[:, None]) ** 2)
    off = z.T @ z / n - np.eye(dim)
    return w2 + decorrelation * np.sum(off**2) / dim**2


def corner_oracle(z, mask=None, k=1, p_one=0.5, floor=0.1):
    z = _valid(z, mask)
    n, dim = z.shape
    corner = np.where(z > 0, 1.0, -1.0)
    log_nu = 0.5 * np.log(np.sum((z - corner) ** 2, axis=1) + floor**2)
    log_mass = np.sum(np.where(z > 0, np.log(p_one), np.log(1 - p_one)), axis=1)
    per_row = dim * (log_nu - _log_rho(z, k)) - log_mass
    return (per_row.mean() + np.log(k) - np.log(n - 1)) / dim


def smoothed_log_density(z, sigma, p_one=0.5):
    """log prod_k [(1-p) N(z; -1, s^2) + p N(z; 1, s^2)], row-wise."""
    var = sigma**2
    minus = np.log(1 - p_one) - (z + 1) ** 2 / (2 * var)
    plus = np.log(p_one) - (z - 1) ** 2 / (2 * var)
    return np.sum(np.logaddexp(minus, plus) - 0.5 * np.log(2 * np.pi * var), axis=1)


def smoothed_prior_oracle(z, mask=None, k=1, p_one=0.5, sigma=0.5):
    z = _valid(z, mask)
    n, dim = z.shape
    log_ball = 0.5 * dim * np.log(np.pi) - gammaln(0.5 * dim + 1)
    entropy = digamma(n) - digamma(k) + log_ball + dim * _log_rho(z, k).mean()
    cross_entropy = -smoothed_log_density(z, sigma, p_one).mean()
    return (cross_entropy - entropy) / dim


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(("n", "p_one"), [(40, 0.5), (19, 0.5), (30, 0.3)])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_marginal_matches_quantile_oracle(n, p_one, masked):
    z = (1.3 * seeded_rng(n).standard_normal((n, 6)) + 0.2).astype(np.float32)
    mask = _mask(n + 1, n) if masked else None
    n_valid = n if mask is None else int(mask.sum())
    resolution = 10 * round(1 / min(p_one, 1 - p_one))  # grid aligned with the breakpoint
    breakpoint_cells = n_valid * (1 - p_one) * resolution
    assert abs(breakpoint_cells - round(breakpoint_cells)) < 1e-9
    got = terms(z, form="marginal", p_one=p_one, mask=None if mask is None else jnp.asarray(mask))
    want = marginal_oracle(z, mask, p_one, resolution=resolution)
    np.testing.assert_allclose(float(got["kl"]), want, rtol=1e-5)
    np.testing.assert_allclose(
        float(got["kl_w2"] + got["kl_decorrelation"]), float(got["kl"]), rtol=1e-6
    )


def test_marginal_is_zero_at_balanced_decorrelated_corners():
    """Rows of a Hadamard matrix: balanced, orthogonal bits at the corners give exactly 0."""
    h = np.array([[1.0]])
    for _ in range(4):
        h = np.block([[h, h], [h, -h]])
    z = h[:, 1:].astype(np.float32)  # 16 rows, 15 balanced orthogonal bits
    assert float(terms(z, form="marginal")["kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms(1.5 * z, form="marginal")["kl"]) > 0.1


@pytest.mark.parametrize(("k", "p_one", "floor"), [(1, 0.5, 0.1), (3, 0.4, 0.5)])
def test_corner_matches_oracle(k, p_one, floor):
    z = seeded_rng(7).standard_normal((50, 8)).astype(np.float32)
    mask = _mask(8, 50)
    got = terms(z, form="corner", k=k, p_one=p_one, floor=floor, mask=jnp.asarray(mask))
    np.testing.assert_allclose(
        float(got["kl"]), corner_oracle(z, mask, k, p_one, floor), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize(("k", "p_one", "sigma"), [(1, 0.5, 0.5), (2, 0.7, 0.3)])
def test_smoothed_prior_matches_oracle(k, p_one, sigma):
    z = (1.2 * seeded_rng(9).standard_normal((60, 5))).astype(np.float32)
    mask = _mask(10, 60)
    got = terms(z, form="smoothed_prior", k=k, p_one=p_one, sigma=sigma, mask=jnp.asarray(mask))
    np.testing.assert_allclose(
        float(got["kl"]), smoothed_prior_oracle(z, mask, k, p_one, sigma), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        float(got["kl_cross_entropy"] - got["kl_entropy"]), float(got["kl"]), rtol=1e-5
    )


def _mixture_sample(rng, n, dim, sigma, p_one=0.5):
    signs = np.where(rng.random((n, dim)) < p_one, 1.0, -1.0)
    return signs + sigma * rng.standard_normal((n, dim))


def test_smoothed_prior_estimates_the_true_kl():
    """Samples of P = the prior with s = 0.25 against the prior with s = 0.5 (K = 2, n = 4,000):
    the estimate is within 0.03 nats per bit of a Monte Carlo value of KL(P || Q); samples of Q
    itself give about 0."""
    rng = seeded_rng(11)
    x = _mixture_sample(rng, 200_000, 2, 0.25)
    truth = np.mean(smoothed_log_density(x, 0.25) - smoothed_log_density(x, 0.5)) / 2
    assert truth > 0.1
    p_sample = _mixture_sample(rng, 4000, 2, 0.25).astype(np.float32)
    q_sample = _mixture_sample(rng, 4000, 2, 0.5).astype(np.float32)
    estimate = float(terms(p_sample, form="smoothed_prior", sigma=0.5)["kl"])
    assert abs(estimate - truth) < 0.03, (estimate, truth)
    assert abs(float(terms(q_sample, form="smoothed_prior", sigma=0.5)["kl"])) < 0.03


def test_sphere_is_wkv_on_projected_outputs_per_bit():
    z = seeded_rng(12).standard_normal((40, 8)).astype(np.float32)
    key = jax.random.key(3)
    projected = math.sqrt(8) * z / np.linalg.norm(z, axis=1, keepdims=True)
    got = float(terms(z, key, form="sphere", k=2)["kl"])
    want = float(terms(projected, key, form="wkv", k=2)["kl"]) / 8
    np.testing.assert_allclose(got, want, rtol=1e-5)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.slow
@pytest.mark.parametrize("form", ["marginal", "corner", "smoothed_prior"])
def test_forms_check_grads_float64(form):
    """Reverse-mode gradients match finite differences (no ties: ranks and neighbours fixed)."""
    z = (1.1 * seeded_rng(13).standard_normal((12, 4)) + 0.05).astype(np.float64)
    d2 = np.sort(((z[:, None] - z[None]) ** 2).sum(-1), axis=1)[:, 1:4]
    assert np.all(np.diff(d2, axis=1) > 1e-3) and np.all(np.abs(z) > 1e-2)
    with jax.enable_x64(True):
        fn = functools.partial(losses.binary_kl_loss, form=form, k=1, mask=None)
        z64 = jnp.asarray(z)
        assert fn(z64).dtype == jnp.float64
        check_grads(fn, (z64,), order=1, modes=("rev",), eps=1e-5)


# ----------------------------------------------------------------------------- scale


def _corner_like(seed, n=256, dim=64):
    """Outputs at or beyond the corners: sign pattern times 1 + |noise| (every |z_ik| >= 1)."""
    rng = seeded_rng(seed)
    signs = np.where(rng.random((n, dim)) < 0.5, -1.0, 1.0)
    return (signs * (1.0 + np.abs(0.3 * rng.standard_normal((n, dim))))).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("form", losses.SCALE_SAFE_KL_FORMS)
@pytest.mark.parametrize("exact", [False, True], ids=["beyond", "at-corners"])
def test_well_posed_forms_are_not_lowered_by_inflating(form, exact):
    """For corner-like z, scaling by s >= 1 never lowers the value (the default form included)."""
    assert losses.DEFAULT_KL_FORM in losses.SCALE_SAFE_KL_FORMS
    z = _corner_like(14)
    if exact:
        z = np.sign(z)
    key = jax.random.key(5)
    values = [float(losses.binary_kl_loss(s * z, key, form=form)) for s in (1, 1.1, 1.5, 2, 4, 16)]
    assert all(b >= a - 1e-5 * abs(a) - 1e-6 for a, b in itertools.pairwise(values)), values


@pytest.mark.slow
def test_literal_estimate_is_lowered_by_inflating():
    """The documented defect of the literal WKV estimate: on corner codes (K = 64, n = 256)
    scaling every output up by 2 lowers it by more than 10 nats, no output having moved."""
    z = np.sign(_corner_like(15))
    key = jax.random.key(6)
    at_corners = float(losses.binary_kl_loss(z, key, form="wkv"))
    inflated = float(losses.binary_kl_loss(2 * z, key, form="wkv"))
    assert inflated < at_corners - 10, (at_corners, inflated)


# ----------------------------------------------------------------------------- bad input


def test_unknown_form_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown kl form 'kde'.*marginal"):
        losses.binary_kl_loss(jnp.ones((4, 2)), form="kde")


@pytest.mark.parametrize(
    ("form", "kwargs", "name"),
    [
        ("smoothed_prior", {"sigma": 0.0}, "sigma"),
        ("smoothed_prior", {"sigma": -1.0}, "sigma"),
        ("corner", {"floor": 0}, "floor"),
        ("corner", {"floor": -0.1}, "floor"),
        ("marginal", {"decorrelation": -1.0}, "decorrelation"),
        ("marginal", {"p_one": 1.0}, "p_one"),
    ],
)
def test_form_parameters_must_be_positive(form, kwargs, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        losses.binary_kl_loss(jnp.ones((4, 2)), form=form, **kwargs)


@pytest.mark.parametrize("form", ["wkv", "sphere"])
def test_sampling_forms_need_a_key(form):
    z = seeded_rng(16).standard_normal((8, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"draws target samples: pass key="):
        losses.binary_kl_loss(z, None, form=form)
    with pytest.raises(ValueError, match="key must be a PRNG key"):
        losses.binary_kl_loss(z, jnp.ones((3,), jnp.float32), form=form)
