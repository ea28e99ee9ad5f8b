"""The KL term L_KL: how far the outputs are from a binary code distribution.

The kNN estimate of Wang, Kulkarni & Verdu (2009), the paper's literal form, and the
well-posed forms of :data:`KL_FORMS` (docs/method.md, "The KL term").
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxhash import parallel
from jaxhash.embeddings import unit_rows
from jaxhash.knn import kth_neighbor_sq_distances
from jaxhash.losses.common import (
    _HIGHEST,
    _concrete,
    _defined,
    _mask_weights,
    _masked_mean,
    _safe_div,
)
from jaxhash.validation import as_int, float_array


class KLTerms(NamedTuple):
    """The kNN KL estimate and its two data-dependent parts (means over valid rows)."""

    estimate: jax.Array
    mean_log_nu: jax.Array  # mean log distance to the k-th nearest target sample
    mean_log_rho: jax.Array  # mean log distance to the k-th nearest other output


def _log_distance(sq_distance: jax.Array, eps: float) -> jax.Array:
    """log of a distance from its square, floored at ``eps``: duplicates give 0 distances,
    and the gradient of sqrt at 0 is never taken."""
    return 0.5 * jnp.log(jnp.maximum(sq_distance, jnp.asarray(eps * eps, sq_distance.dtype)))


def _check_k(k, w: jax.Array, axis_name) -> int:
    """``k`` as an int with 1 <= k < n (rho needs k other rows; a concrete mask: valid rows)."""
    n_global = w.shape[0] * parallel.axis_size(axis_name)
    k = as_int(k, "k")
    if not 1 <= k < n_global:
        raise ValueError(
            f"k must be an int with 1 <= k < n = {n_global} (rho needs k other rows); got {k!r}."
        )
    if axis_name is None and _concrete(w) and not k < int(np.asarray(w).sum()):
        raise ValueError(
            f"k must be < the number of valid (unmasked) rows, {int(np.asarray(w).sum())}; got "
            f"k={k}."
        )
    return k


def _log_rho(z, w, k, eps, block_size, axis_name, impl="auto") -> jax.Array:
    """``[n]`` log distance from each local row to its k-th nearest other valid row (global)."""
    rho2 = kth_neighbor_sq_distances(
        z,
        parallel.all_gather_batch(z, axis_name),
        k,
        exclude_self=True,
        query_offset=parallel.batch_offset(z.shape[0], axis_name),
        points_mask=parallel.all_gather_batch(w, axis_name) > 0,
        block_size=block_size,
        impl=impl,
    )
    return _log_distance(rho2, eps)


def _knn_kl_terms(x, y_all, *, k, w, eps, block_size, axis_name, impl="auto") -> KLTerms:
    """Wang-Kulkarni-Verdu terms for local rows ``x`` against global targets ``y_all``."""
    dim = x.shape[1]
    if y_all.shape[1] != dim:
        raise ValueError(f"x and y must have the same width; got {dim} and {y_all.shape[1]}.")
    k = _check_k(k, w, axis_name)
    if k > y_all.shape[0]:
        raise ValueError(f"k must be <= m = {y_all.shape[0]} target samples; got k={k}.")
    log_rho = _log_rho(x, w, k, eps, block_size, axis_name, impl)
    nu2 = kth_neighbor_sq_distances(
        x, y_all.astype(x.dtype), k, block_size=block_size, impl=impl
    )
    log_nu = _log_distance(nu2, eps)
    n_valid = parallel.global_sum(jnp.sum(w), axis_name)
    mean_log_nu = _masked_mean(log_nu, w, axis_name)
    mean_log_rho = _masked_mean(log_rho, w, axis_name)
    estimate = (
        dim * (mean_log_nu - mean_log_rho) + math.log(y_all.shape[0]) - jnp.log(n_valid - 1.0)
    )
    estimate = _defined(estimate, w, axis_name, min_rows=k + 1)
    return KLTerms(estimate, mean_log_nu, mean_log_rho)


def knn_kl_divergence(
    x: jax.Array,
    y: jax.Array,
    *,
    k: int = 1,
    mask: jax.Array | None = None,
    eps: float = 1e-6,
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
    impl: str = "auto",
) -> jax.Array:
    """k-nearest-neighbour estimate of KL(P_x || P_y) (Wang, Kulkarni & Verdu 2009):

        D = (d / n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1))

    rho_k(i): Euclidean distance from x_i to its k-th nearest neighbour among the other x's;
    nu_k(i): to its k-th nearest among the y's. It is the Kozachenko-Leonenko entropy estimate
    minus a kNN cross-entropy estimate, and consistent for continuous densities. Neighbours are
    chosen without gradient and their distances recomputed exactly (jaxhash.knn); distances are
    floored at ``eps`` inside the log, so duplicate rows and ``x == y`` give finite values and
    gradients.

    Args:
      x: ``[n, d]`` samples of P (the outputs).
      y: ``[m, d]`` samples of Q (the targets).
      k: neighbour order, ``1 <= k <= n - 1`` and ``k <= m``.
      mask: ``[n]`` bool; False rows of x are neither samples nor neighbours.
      eps: floor on distances inside the log.
      block_size: query rows scored at once (memory O(block_size (n + m))); None picks it
        per backend (jaxhash.knn.default_block_size).
      axis_name: mesh axis inside ``jax.shard_map``; x and y are this device's shards of the
        global samples, gathered so the estimate is the global-batch one (its bias depends on n,
        so a per-device estimate would change with the device count).
      impl: the neighbour search, "auto", "xla" or "pallas"
        (:func:`jaxhash.knn.kth_neighbor_indices`).

    Returns:
      Scalar estimate in nats (can be negative: the estimator is unbiased only asymptotically).
    """
    x = float_array(x, "x", 2)
    y = float_array(y, "y", 2)
    w = _mask_weights(mask, x.shape[0], x.dtype)
    y_all = parallel.all_gather_batch(y, axis_name)
    return _knn_kl_terms(
        x, y_all, k=k, w=w, eps=eps, block_size=block_size, axis_name=axis_name, impl=impl
    ).estimate


# The forms of the KL term. Each maps ``[N, K]`` outputs to a scalar; all but the literal "wkv"
# are in nats per bit (divided by K), so one weight means the same at 16, 32 or 64 bits.
KL_FORMS = ("wkv", "sphere", "corner", "smoothed_prior", "marginal")
DEFAULT_KL_FORM = "marginal"
_SAMPLING_FORMS = ("wkv", "sphere")  # forms that draw target samples (they need a key)
# Forms whose value never drops when a batch with every |z_ik| >= 1 (at or beyond the corners)
# is scaled up by s >= 1; tested in tests/losses/test_kl_forms.py. "wkv" fails this by construction.
SCALE_SAFE_KL_FORMS = ("sphere", "marginal")


def _check_key(key, form: str) -> jax.Array:
    if key is None:
        raise ValueError(
            f"kl form {form!r} draws target samples: pass key=jax.random.key(seed) (a fresh key "
            "each step), or use a form without sampling ('corner', 'smoothed_prior', 'marginal')."
        )
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if not (typed or (key.dtype == jnp.uint32 and key.shape == (2,))):
        raise ValueError(
            f"key must be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)); got an "
            f"array of dtype {key.dtype} and shape {key.shape}."
        )
    return key


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}.")
    return float(value)


def _binary_targets(key, m: int, dim: int, p_one: float, dtype) -> jax.Array:
    """``[m, dim]`` samples of the binary code distribution: each bit +1 with prob. ``p_one``."""
    bits = jax.random.bernoulli(key, p_one, (m, dim))
    return jnp.where(bits, 1.0, -1.0).astype(dtype)


def _sign_corner(z: jax.Array) -> jax.Array:
    """The nearest corner of {-1, +1}^K: +1 where z > 0 (the bit of ``pack_codes``), else -1."""
    return lax.stop_gradient(jnp.where(z > 0, 1.0, -1.0).astype(z.dtype))


def _log_corner_mass(z: jax.Array, p_one: float) -> jax.Array:
    """``[n]`` log probability of each row's nearest corner under independent bits."""
    return jnp.sum(jnp.where(z > 0, math.log(p_one), math.log1p(-p_one)), axis=1)


def _corner_terms(z, w, *, k, p_one, floor, eps, block_size, axis_name, impl) -> dict:
    """Nearest-corner WKV: nu is the distance to the nearest of all 2^K corners, in closed form.

    With the target a point mass 2^-K on each corner (uniform bits), the WKV density estimate of
    Q at x is mass(c*) / (V_K nu^K), c* the nearest corner, nu = ||x - c*||; so

        D = (1/n) sum_i [K (log nu_i - log rho_k(i)) - log mass(c*_i)] + log k - log(n - 1)

    with nu_i^2 = ||z_i - sign z_i||^2 + floor^2 (a point mass has no density: the floor keeps
    the log finite and sets the smallest distance worth paying for). Returns D / K.
    """
    dim = z.shape[1]
    k = _check_k(k, w, axis_name)
    corner = _sign_corner(z)
    nu2 = jnp.sum((z - corner) ** 2, axis=1) + floor * floor
    log_nu = 0.5 * jnp.log(nu2)
    log_rho = _log_rho(z, w, k, eps, block_size, axis_name, impl)
    per_row = dim * (log_nu - log_rho) - _log_corner_mass(z, p_one)
    n = parallel.global_sum(jnp.sum(w), axis_name)
    estimate = _masked_mean(per_row, w, axis_name) + math.log(k) - jnp.log(n - 1.0)
    return {
        "kl": _defined(estimate / dim, w, axis_name, min_rows=k + 1),
        "kl_log_nu": _masked_mean(log_nu, w, axis_name),
        "kl_log_rho": _masked_mean(log_rho, w, axis_name),
    }


def _smoothed_prior_terms(z, w, *, k, p_one, sigma, eps, block_size, axis_name, impl) -> dict:
    """A finite KL to the smoothed binary prior Q_s = prod_k [(1-p) N(-1, s^2) + p N(1, s^2)].

    KL(P || Q_s) = -H(P) + CE(P, Q_s), estimated by the Kozachenko-Leonenko entropy

        H = psi(n) - psi(k) + log V_K + (K/n) sum_i log rho_k(i),   V_K = pi^(K/2) / Gamma(K/2 + 1)

    (Kozachenko & Leonenko 1987; Kraskov et al. 2004, eq. 20) and the exact cross-entropy
    CE = -(1/n) sum_i log Q_s(z_i), with per bit

        log Q_s(z) = -(z^2 + 1) / (2 s^2) - log(2 pi s^2) / 2 + log((1-p) e^(-z/s^2) + p e^(z/s^2)).

    No target samples, no floor; the scale of z is pinned (at the corners, scaling the batch by
    t lowers -H by K log t while CE grows like K (t - 1)^2 / (2 s^2)). Returns values per bit.
    """
    dim = z.shape[1]
    k = _check_k(k, w, axis_name)
    n = parallel.global_sum(jnp.sum(w), axis_name)
    log_rho = _log_rho(z, w, k, eps, block_size, axis_name, impl)
    log_unit_ball = 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim + 1.0)
    entropy = (
        jax.scipy.special.digamma(n)
        - jax.scipy.special.digamma(float(k))
        + log_unit_ball
        + dim * _masked_mean(log_rho, w, axis_name)
    )
    inv = 1.0 / (sigma * sigma)
    log_q = (
        -0.5 * (z * z + 1.0) * inv
        - 0.5 * math.log(2.0 * math.pi * sigma * sigma)
        + jnp.logaddexp(math.log1p(-p_one) - z * inv, math.log(p_one) + z * inv)
    )
    cross_entropy = -_masked_mean(jnp.sum(log_q, axis=1), w, axis_name)
    return {
        "kl": _defined((cross_entropy - entropy) / dim, w, axis_name, min_rows=k + 1),
        "kl_entropy": entropy / dim,
        "kl_cross_entropy": cross_entropy / dim,
    }


def _marginal_terms(z, w, *, p_one, decorrelation, axis_name) -> dict:
    """Per-bit 1-D Wasserstein-2 to the binary marginal, plus optional decorrelation.

    Each bit's empirical distribution (n atoms) is matched to (1-p) delta_{-1} + p delta_{+1}
    by the monotone (optimal) coupling: with r the 0-based rank of z_ik among the valid rows
    of bit k, a fraction a = clip(n (1-p) - r, 0, 1) of the atom's mass goes to -1, so

        W2^2 = (1/(n K)) sum_{i,k} [a_ik (z_ik + 1)^2 + (1 - a_ik) (z_ik - 1)^2]

    (bi-half hashing, Li & van Gemert, AAAI 2021, uses the same sort-order assignment). It pulls
    outputs to the corners and balances every bit; it has no neighbour repulsion. The optional
    decorrelation ``||Z^T Z / n - I||_F^2 / K^2`` spreads codes over bits jointly. Ranks are
    taken over the global batch (no gradient); the value is the sum of both parts.
    """
    n_local, dim = z.shape
    z_all = lax.stop_gradient(parallel.all_gather_batch(z, axis_name))
    w_all = parallel.all_gather_batch(w, axis_name)
    n = parallel.global_sum(jnp.sum(w), axis_name)
    keyed = jnp.where(w_all[:, None] > 0, z_all, jnp.inf)  # padding sorts last
    order = jnp.argsort(keyed, axis=0, stable=True)
    ranks_all = (
        jnp.zeros_like(order)
        .at[order, jnp.arange(dim)[None, :]]
        .set(jnp.arange(order.shape[0])[:, None])
    )
    ranks = lax.dynamic_slice_in_dim(ranks_all, parallel.batch_offset(n_local, axis_name), n_local)
    to_minus = jnp.clip(n * (1.0 - p_one) - ranks.astype(z.dtype), 0.0, 1.0)
    cost = to_minus * (z + 1.0) ** 2 + (1.0 - to_minus) * (z - 1.0) ** 2
    w2 = _masked_mean(jnp.mean(cost, axis=1), w, axis_name)
    terms = {"kl_w2": w2}
    value = w2
    if decorrelation:
        zw = z * w[:, None]
        moment = parallel.global_sum(jnp.dot(zw.T, z, precision=_HIGHEST), axis_name)
        off = _safe_div(moment, n) - jnp.eye(dim, dtype=z.dtype)
        terms["kl_decorrelation"] = jnp.sum(off * off) / (dim * dim)
        value = value + decorrelation * terms["kl_decorrelation"]
    return {"kl": _defined(value, w, axis_name), **terms}


def binary_kl_terms(
    codes: jax.Array,
    key: jax.Array | None = None,
    *,
    form: str = DEFAULT_KL_FORM,
    k: int = 1,
    num_targets: int | None = None,
    p_one: float = 0.5,
    sigma: float = 0.5,
    floor: float = 0.1,
    decorrelation: float = 1.0,
    mask: jax.Array | None = None,
    eps: float = 1e-6,
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
    knn_impl: str = "auto",
) -> dict[str, jax.Array]:
    """The KL term of ``form`` and its parts: ``{"kl": value, "kl_<part>": ...}``.

    See :func:`binary_kl_loss` for the forms and arguments. Parts, by form: "wkv", "sphere" and
    "corner" give ``kl_log_nu`` and ``kl_log_rho`` (mean log distances); "smoothed_prior" gives
    ``kl_entropy`` and ``kl_cross_entropy`` (per bit); "marginal" gives ``kl_w2`` and, with
    decorrelation, ``kl_decorrelation``.
    """
    if form not in KL_FORMS:
        raise ValueError(f"unknown kl form {form!r}; known forms: {list(KL_FORMS)}.")
    codes = float_array(codes, "codes", 2)
    if not (isinstance(p_one, int | float) and 0.0 < p_one < 1.0):
        raise ValueError(f"p_one must lie in (0, 1); got {p_one!r}.")
    w = _mask_weights(mask, codes.shape[0], codes.dtype)
    if form == "marginal":
        if isinstance(decorrelation, bool) or not (
            isinstance(decorrelation, int | float) and decorrelation >= 0
        ):
            raise ValueError(f"decorrelation must be a number >= 0; got {decorrelation!r}.")
        return _marginal_terms(
            codes, w, p_one=p_one, decorrelation=float(decorrelation), axis_name=axis_name
        )
    knn = dict(k=k, eps=eps, block_size=block_size, axis_name=axis_name, impl=knn_impl)
    if form == "corner":
        return _corner_terms(codes, w, p_one=p_one, floor=_positive(floor, "floor"), **knn)
    if form == "smoothed_prior":
        return _smoothed_prior_terms(codes, w, p_one=p_one, sigma=_positive(sigma, "sigma"), **knn)
    key = _check_key(key, form)
    n_global = codes.shape[0] * parallel.axis_size(axis_name)
    m = n_global if num_targets is None else num_targets
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"num_targets must be a positive int or None; got {num_targets!r}.")
    # The same key on every device gives every device the same m global target samples.
    targets = _binary_targets(key, m, codes.shape[1], p_one, codes.dtype)
    scale = 1.0
    if form == "sphere":
        codes = math.sqrt(codes.shape[1]) * unit_rows(codes)
        scale = 1.0 / codes.shape[1]
    terms = _knn_kl_terms(codes, targets, w=w, **knn)
    return {
        "kl": terms.estimate * scale,
        "kl_log_nu": terms.mean_log_nu,
        "kl_log_rho": terms.mean_log_rho,
    }


def binary_kl_loss(
    codes: jax.Array,
    key: jax.Array | None = None,
    *,
    form: str = DEFAULT_KL_FORM,
    k: int = 1,
    num_targets: int | None = None,
    p_one: float = 0.5,
    sigma: float = 0.5,
    floor: float = 0.1,
    decorrelation: float = 1.0,
    mask: jax.Array | None = None,
    eps: float = 1e-6,
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
    knn_impl: str = "auto",
) -> jax.Array:
    """The KL term: how far the outputs are from a binary code distribution (docs/method.md).

    The target is independent bits, +1 with probability ``p_one`` (default 1/2: uniform on
    {-1, +1}^K, the maximum-entropy code distribution). The paper's intent: outputs at the
    corners (little lost by ``sign``) and every code used evenly. ``form``:

    * ``"wkv"``: the literal Wang-Kulkarni-Verdu estimate ``knn_kl_divergence(codes, y)`` with
      ``y`` ``[m, K]`` drawn fresh from ``key`` (m = ``num_targets``, default the global batch),
      in nats (not per bit). Kept for the record and for reproduction: with a linear hash layer
      it is unbounded below; scaling every output up lowers it until <z, y*> = K, without
      moving anything to a corner, and its -log rho part repels same-class neighbours.
    * ``"sphere"``: the same estimate on outputs projected to the sphere of radius sqrt(K) (where
      the corners lie), per bit: scale-free by construction (a KoLeo-like spread, as in
      spreading vectors, Sablayrolles et al. 2019), with only a weak pull to the corners.
    * ``"corner"``: WKV with nu the distance to the nearest of all 2^K corners in closed form
      (no sampling), floored at ``floor``; per bit. Pins the scale near |z| = 1 and binarises
      strongly; the -log rho repulsion remains.
    * ``"smoothed_prior"``: a finite KL to prod_k [(1-p) N(-1, sigma^2) + p N(1, sigma^2)]:
      Kozachenko-Leonenko entropy plus the closed-form cross-entropy; per bit.
    * ``"marginal"`` (default): per-bit 1-D Wasserstein-2 distance to the binary marginal plus
      ``decorrelation`` x ||Z^T Z / n - I||^2 / K^2: bounded below by 0, balances every bit and
      pulls to the corners without neighbour repulsion.

    The default is the form that measured best (README, "Reproduction on CIFAR-100"); "sphere"
    and "marginal" never drop when a batch at or beyond the corners is scaled up.

    Args:
      codes: ``[N, K]`` outputs z.
      key: PRNG key; needed by the sampling forms ("wkv", "sphere"). Pass the same key on every
        device under ``axis_name``.
      form: one of :data:`KL_FORMS`.
      k: neighbour order of the kNN estimates (1 <= k < N).
      num_targets, p_one: the number of target samples (sampling forms) and the bit probability.
      sigma: the smoothed prior's standard deviation (> 0).
      floor: the corner form's floor on the distance to the corner (> 0).
      decorrelation: the marginal form's decorrelation weight (>= 0; 0 turns it off).
      mask: ``[N]`` bool; False rows (padding) take no part.
      eps: floor on kNN distances inside the log (duplicate rows stay finite).
      block_size: query rows scored at once by the kNN search (None: per backend).
      axis_name: mesh axis inside ``jax.shard_map``: the value is the global-batch one.
      knn_impl: the kNN search of the kNN forms: "auto" (the fused kernel on GPUs and TPUs,
        XLA on CPUs), "xla" or "pallas" (:func:`jaxhash.knn.kth_neighbor_indices`). An
        argument, so a jitted caller that changes it traces again.

    Returns:
      Scalar float32.
    """
    return binary_kl_terms(
        codes,
        key,
        form=form,
        k=k,
        num_targets=num_targets,
        p_one=p_one,
        sigma=sigma,
        floor=floor,
        decorrelation=decorrelation,
        mask=mask,
        eps=eps,
        block_size=block_size,
        axis_name=axis_name,
        knn_impl=knn_impl,
    )["kl"]
