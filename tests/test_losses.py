"""Tests for jaxhash.losses against independent float64 NumPy / SciPy oracles."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads
from scipy.spatial import cKDTree

from jaxhash import losses
from jaxhash.losses import ClassTargets, EmbeddingTargets, LossWeights


def _jit(fn, *static):
    return jax.jit(fn, static_argnames=static)


# Library calls go through jax.jit: on the CPU one compilation per configuration is several times
# faster than eager dispatch of every op. Trace-time ValueErrors are raised all the same.
relaxed_hamming = jax.jit(losses.relaxed_hamming)
similarity_loss = _jit(losses.similarity_loss, "normalize", "power", "detach_scale", "axis_name")
knn_kl_divergence = _jit(losses.knn_kl_divergence, "k", "axis_name")
KL_STATIC = ("form", "k", "num_targets", "sigma", "floor", "decorrelation", "axis_name")
binary_kl_loss = _jit(losses.binary_kl_loss, *KL_STATIC)
classification_loss = _jit(losses.classification_loss, "axis_name")
quantization_loss = _jit(losses.quantization_loss, "axis_name")
bit_balance_loss = _jit(losses.bit_balance_loss, "axis_name")
hashing_loss = _jit(
    losses.hashing_loss, "weights", "kl_form", "k", "normalize", "power", "axis_name"
)

NORMALIZE = ("mean", "row", "none")


# ----------------------------------------------------------------------------- oracles


def np_relaxed_hamming(a, b=None):
    """(1 - cos)/2 in float64; a zero row has cos 0 with everything."""
    a = np.asarray(a, np.float64)
    b = a if b is None else np.asarray(b, np.float64)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    an = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    bn = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    return (1 - an @ bn.T) / 2


def sim_oracle(codes, D, normalize, power, mask=None, xp=np, detach=False):
    """The contract's similarity loss, written with masked sums so it runs in NumPy or jnp."""
    n = codes.shape[0]
    valid = xp.ones(n, bool) if mask is None else xp.asarray(mask)
    pair = (valid[:, None] & valid[None, :] & ~xp.eye(n, dtype=bool)).astype(codes.dtype)
    norms = xp.sqrt((codes**2).sum(1, keepdims=True))
    cn = codes / norms
    d = (1 - cn @ cn.T) / 2

    def scale(m):
        if normalize == "mean":
            return (m * pair).sum() / pair.sum()
        if normalize == "row":
            # Rows without pairs (masked) get scale 1, so that no NaN reaches jax.grad.
            cnt = pair.sum(1, keepdims=True)
            return xp.where(cnt > 0, (m * pair).sum(1, keepdims=True) / xp.maximum(cnt, 1), 1)
        return 1.0

    sd = scale(d)
    if detach:
        sd = jax.lax.stop_gradient(sd)
    err = xp.abs(d / sd - D / scale(D)) ** power
    return (xp.where(pair > 0, err, 0)).sum() / pair.sum()


# jax.grad of the oracle, jitted (eager float64 dispatch is slow).
_oracle_grad = jax.jit(jax.grad(sim_oracle), static_argnums=(2, 3, 5, 6))


def kl_oracle(x, y, k, mask=None):
    """Wang-Kulkarni-Verdu estimate with scipy's cKDTree in float64."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if mask is not None:
        x = x[np.asarray(mask)]
    n, d = x.shape
    rho = cKDTree(x).query(x, k=[k + 1])[0][:, -1]
    nu = cKDTree(y).query(x, k=[k])[0][:, -1]
    return d * np.mean(np.log(nu / rho)) + np.log(y.shape[0] / (n - 1)), np.log(nu), np.log(rho)


def gauss_kl(mu, s):
    """KL(N(0, I) || N(mu, s^2 I)) in closed form."""
    d = mu.shape[0]
    return 0.5 * (d / s**2 + mu @ mu / s**2 - d + 2 * d * np.log(s))


def np_ce(logits, labels, mask):
    z = np.asarray(logits, np.float64)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    return np.mean((lse - z[np.arange(len(z)), labels])[mask])


def np_quant(codes, mask):
    return np.mean((np.abs(np.asarray(codes, np.float64)[mask]) - 1) ** 2)


def np_balance(codes, mask):
    return np.mean(np.asarray(codes, np.float64)[mask].mean(0) ** 2)


# ----------------------------------------------------------------------------- data


def _rng(seed):
    return np.random.default_rng(seed)


def _codes(seed, n, k=8):
    return _rng(seed).standard_normal((n, k)).astype(np.float32)


def _mask(seed, n, frac=0.25):
    m = _rng(seed).random(n) >= frac
    m[:2] = True
    m[-1] = False
    return m


def _targets(seed, n, c=5, e=6):
    """Three target forms (dense, ClassTargets, EmbeddingTargets) and their dense matrices."""
    r = _rng(seed)
    labels = r.integers(0, c, n).astype(np.int32)
    cd = r.random((c, c)) + 0.2
    cd = (cd + cd.T) / 2
    np.fill_diagonal(cd, 0.05)  # same-class pairs at a small nonzero distance
    emb = r.standard_normal((n, e)).astype(np.float32)
    emb[n // 2] = 0.0  # at distance 0.5 from everything
    dense = np.abs(r.standard_normal((n, n)))
    dense = ((dense + dense.T) / 2).astype(np.float32)
    forms = {
        "dense": (jnp.asarray(dense), dense),
        "class": (
            ClassTargets(jnp.asarray(labels), jnp.asarray(cd, jnp.float32)),
            cd[labels][:, labels],
        ),
        "embedding": (EmbeddingTargets(jnp.asarray(emb)), np_relaxed_hamming(emb)),
    }
    return forms


def _assert_grads_close(got, want, rtol=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


# ----------------------------------------------------------------------------- relaxed_hamming


def test_relaxed_hamming_matches_numpy():
    """relaxed_hamming(a, b) and relaxed_hamming(a) equal the float64 formula."""
    a, b = _codes(0, 7, 5), _codes(1, 4, 5)
    out = relaxed_hamming(a, b)
    assert out.shape == (7, 4) and out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), np_relaxed_hamming(a, b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(relaxed_hamming(a)), np_relaxed_hamming(a), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(relaxed_hamming(a, None)), np.asarray(relaxed_hamming(a, a)), atol=1e-7
    )


def test_relaxed_hamming_is_hamming_on_signs():
    """On +-1 codes relaxed_hamming equals the normalised Hamming distance."""
    r = _rng(2)
    a = np.where(r.random((9, 16)) < 0.5, -1.0, 1.0).astype(np.float32)
    b = np.where(r.random((6, 16)) < 0.5, -1.0, 1.0).astype(np.float32)
    ham = (a[:, None, :] != b[None, :, :]).mean(-1)
    np.testing.assert_allclose(np.asarray(relaxed_hamming(a, b)), ham, rtol=0, atol=1e-6)
    ham_aa = (a[:, None, :] != a[None, :, :]).mean(-1)
    np.testing.assert_allclose(np.asarray(relaxed_hamming(a)), ham_aa, rtol=0, atol=1e-6)


def test_relaxed_hamming_zero_rows():
    """An all-zero row is at distance 0.5 from everything; value and gradient have no NaN."""
    a = _codes(3, 5, 4)
    a[1] = 0.0
    w = _rng(4).random((5, 5)).astype(np.float32)
    val, g = jax.value_and_grad(lambda a: jnp.sum(w * relaxed_hamming(a)))(a)
    out = np.asarray(relaxed_hamming(a))
    assert np.all(np.isfinite(out)) and np.isfinite(float(val))
    np.testing.assert_allclose(out[1], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(out, np_relaxed_hamming(a), rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(g)))


def test_relaxed_hamming_bf16():
    """bf16 inputs are accepted and give a float32 result."""
    a = jnp.asarray(_codes(5, 6, 8), jnp.bfloat16)
    out = relaxed_hamming(a)
    assert out.dtype == jnp.float32
    want = np_relaxed_hamming(np.asarray(a.astype(jnp.float32)))
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- similarity_loss


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("power", [1, 2, 1.5])
@pytest.mark.parametrize("normalize", NORMALIZE)
def test_similarity_loss_matches_oracle(normalize, power, masked):
    """The value equals the float64 oracle; with power 2, for all three target forms.

    (The target form only decides D, which does not interact with power, so the other powers
    use the dense form alone to save compilations.)
    """
    n = 12
    codes = _codes(10, n)
    mask = _mask(11, n) if masked else None
    jmask = None if mask is None else jnp.asarray(mask)
    forms = _targets(12, n)
    if power != 2:
        forms = {"dense": forms["dense"]}
    for form, (target, dense) in forms.items():
        want = sim_oracle(codes.astype(np.float64), dense, normalize, power, mask)
        got = similarity_loss(codes, target, normalize=normalize, power=power, mask=jmask)
        assert got.shape == () and got.dtype == jnp.float32
        np.testing.assert_allclose(float(got), want, rtol=1e-4, err_msg=form)


@pytest.mark.parametrize(
    ("normalize", "power"), [("mean", 2), ("mean", 1), ("row", 2), ("row", 1.5), ("none", 1.5)]
)
def test_similarity_loss_gradient(normalize, power):
    """The gradient w.r.t. codes equals jax.grad of the oracle formula in float64."""
    n = 12
    codes = _codes(13, n)
    mask = _mask(14, n)
    target, dense = _targets(15, n)["class"]
    got = jax.grad(similarity_loss)(
        codes, target, normalize=normalize, power=power, mask=jnp.asarray(mask)
    )
    with jax.enable_x64(True):
        want = _oracle_grad(
            jnp.asarray(codes, jnp.float64), jnp.asarray(dense), normalize, power, mask, jnp
        )
        want = np.asarray(want)
    _assert_grads_close(got, want)
    assert np.all(np.asarray(got)[~mask] == 0)


@pytest.mark.parametrize("normalize", ["mean", "none"])
def test_similarity_loss_power_below_one(normalize):
    """The contract allows any power > 0: power 0.5 matches the oracle with a finite gradient.

    +-1 codes and a zero-diagonal D make the excluded i == j terms exactly 0 (|0|^0.5 has an
    infinite derivative there, which must not leak into the gradient as NaN).
    """
    n = 12
    codes = np.where(_rng(36).random((n, 16)) < 0.5, -1.0, 1.0).astype(np.float32)  # d_ii = 0
    mask = _mask(37, n)
    _, dense = _targets(38, n)["dense"]
    dense = dense.copy()
    np.fill_diagonal(dense, 0.0)
    val, g = jax.value_and_grad(similarity_loss)(
        codes, dense, normalize=normalize, power=0.5, mask=jnp.asarray(mask)
    )
    want = sim_oracle(codes.astype(np.float64), dense, normalize, 0.5, mask)
    np.testing.assert_allclose(float(val), want, rtol=1e-4)
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("normalize", ["mean", "row"])
def test_similarity_loss_check_grads_float64(normalize):
    """check_grads (first order, reverse mode) on the library in float64."""
    n = 8
    target, _ = _targets(16, n)["embedding"]
    mask = jnp.asarray(_mask(17, n))
    with jax.enable_x64(True):
        codes = jnp.asarray(_codes(18, n, 5), jnp.float64)
        target = EmbeddingTargets(jnp.asarray(target.embeddings, jnp.float64))
        f = functools.partial(
            similarity_loss, target_distances=target, normalize=normalize, power=1.5, mask=mask
        )
        assert f(codes).dtype == jnp.float64
        check_grads(f, (codes,), order=1, modes=("rev",))


def test_similarity_loss_detach_scale():
    """detach_scale keeps the value, changes the gradient to the one with mean(d) frozen."""
    n = 12
    codes = _codes(19, n)
    target, dense = _targets(20, n)["dense"]
    vg = jax.value_and_grad(similarity_loss)
    v0, g0 = vg(codes, target)
    v1, g1 = vg(codes, target, detach_scale=True)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-6)
    assert np.abs(np.asarray(g1) - np.asarray(g0)).max() > 1e-3 * np.abs(np.asarray(g0)).max()
    with jax.enable_x64(True):
        want = _oracle_grad(
            jnp.asarray(codes, jnp.float64),
            jnp.asarray(dense, jnp.float64),
            "mean",
            2,
            None,
            jnp,
            True,
        )
        want = np.asarray(want)
    _assert_grads_close(g1, want)


@pytest.mark.parametrize("normalize", NORMALIZE)
def test_similarity_loss_permutation_invariant(normalize):
    """Permuting examples (codes, mask, labels / rows and columns of D) changes nothing."""
    n = 12
    codes = _codes(21, n)
    mask = _mask(22, n)
    perm = _rng(23).permutation(n)
    forms = _targets(24, n)
    dense = np.asarray(forms["dense"][0])
    cls = forms["class"][0]
    emb = forms["embedding"][0]
    permuted = {
        "dense": (dense, dense[perm][:, perm]),
        "class": (cls, ClassTargets(cls.labels[perm], cls.class_distances)),
        "embedding": (emb, EmbeddingTargets(emb.embeddings[perm])),
    }
    if normalize != "row":  # "row" is the most index-sensitive: it gets all three forms
        permuted = {"dense": permuted["dense"]}
    for form, (t0, t1) in permuted.items():
        v0 = similarity_loss(codes, t0, normalize=normalize, mask=jnp.asarray(mask))
        v1 = similarity_loss(codes[perm], t1, normalize=normalize, mask=jnp.asarray(mask[perm]))
        np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5, err_msg=form)


@pytest.mark.parametrize("normalize", NORMALIZE)
def test_similarity_loss_scale_invariance(normalize):
    """Positive row scales of codes never matter; scaling D only matters with "none"."""
    n = 12
    codes = _codes(25, n)
    dense = np.asarray(_targets(26, n)["dense"][0])
    v0 = float(similarity_loss(codes, dense, normalize=normalize))
    c = _rng(27).uniform(0.1, 10.0, (n, 1)).astype(np.float32)
    np.testing.assert_allclose(
        float(similarity_loss(codes * c, dense, normalize=normalize)), v0, rtol=1e-5
    )
    scaled = float(similarity_loss(codes, 3.0 * dense, normalize=normalize))
    if normalize == "none":
        assert abs(scaled - v0) > 1e-2 * v0
    else:
        np.testing.assert_allclose(scaled, v0, rtol=1e-5)


@pytest.mark.parametrize("normalize", NORMALIZE)
def test_similarity_loss_ignores_diagonal(normalize):
    """Pairs i == j never count: the diagonal of a dense D does not change the loss."""
    n = 12
    codes = _codes(28, n)
    dense = np.asarray(_targets(29, n)["dense"][0])
    other = dense.copy()
    np.fill_diagonal(other, _rng(30).uniform(1.0, 5.0, n))
    v0 = float(similarity_loss(codes, dense, normalize=normalize))
    v1 = float(similarity_loss(codes, other, normalize=normalize))
    np.testing.assert_allclose(v1, v0, rtol=1e-5)


@pytest.mark.parametrize("normalize", NORMALIZE)
def test_similarity_loss_masked_rows_do_not_matter(normalize):
    """Masked rows' codes and targets are irrelevant; the loss equals the one on the subset."""
    n = 12
    codes = _codes(31, n)
    mask = _mask(32, n)
    forms = _targets(33, n)
    cls, emb = forms["class"][0], forms["embedding"][0]
    dense = np.asarray(forms["dense"][0])
    noise = _rng(34)
    codes2 = codes.copy()
    codes2[~mask] = noise.standard_normal(codes2[~mask].shape)
    dense2 = dense.copy()
    dense2[~mask] = 7.0
    dense2[:, ~mask] = 7.0
    labels2 = np.asarray(cls.labels).copy()
    labels2[~mask] = (labels2[~mask] + 1) % 5
    emb2 = np.asarray(emb.embeddings).copy()
    emb2[~mask] = noise.standard_normal(emb2[~mask].shape)
    cases = {
        "dense": (dense, dense2, dense[mask][:, mask]),
        "class": (
            cls,
            ClassTargets(jnp.asarray(labels2), cls.class_distances),
            ClassTargets(cls.labels[mask], cls.class_distances),
        ),
        "embedding": (emb, EmbeddingTargets(jnp.asarray(emb2)), EmbeddingTargets(emb2[mask])),
    }
    jmask = jnp.asarray(mask)
    if normalize != "row":  # "row" is the most mask-sensitive: it gets all three forms
        cases = {"dense": cases["dense"]}
    for form, (t, t2, t_sub) in cases.items():
        v0 = float(similarity_loss(codes, t, normalize=normalize, mask=jmask))
        v1 = float(similarity_loss(codes2, t2, normalize=normalize, mask=jmask))
        v2 = float(similarity_loss(codes[mask], t_sub, normalize=normalize))
        np.testing.assert_allclose(v1, v0, rtol=1e-5, err_msg=form)
        np.testing.assert_allclose(v2, v0, rtol=1e-5, err_msg=form)


def test_similarity_loss_bad_inputs():
    """Bad shapes or options raise ValueError naming the argument."""
    codes = _codes(35, 6)
    dense = np.ones((6, 6), np.float32)
    with pytest.raises(ValueError, match="codes"):
        similarity_loss(codes[0], dense)
    with pytest.raises(ValueError, match="target_distances"):
        similarity_loss(codes, dense[:5])
    with pytest.raises(ValueError, match="mask"):
        similarity_loss(codes, dense, mask=jnp.ones(5, bool))
    with pytest.raises(ValueError, match="normalize"):
        similarity_loss(codes, dense, normalize="median")
    with pytest.raises(ValueError, match="power"):
        similarity_loss(codes, dense, power=0.0)
    with pytest.raises(ValueError, match="labels"):
        similarity_loss(codes, ClassTargets(jnp.zeros(5, jnp.int32), jnp.ones((2, 2))))


# ----------------------------------------------------------------------------- knn_kl_divergence


def _kl_data(seed, n, m, d=3):
    r = _rng(seed)
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
    mask = _mask(42, 60)
    got = float(knn_kl_divergence(x, y, k=2, mask=jnp.asarray(mask)))
    np.testing.assert_allclose(got, kl_oracle(x, y, 2, mask)[0], rtol=1e-4)
    np.testing.assert_allclose(got, float(knn_kl_divergence(x[mask], y, k=2)), rtol=1e-5)


def _gauss_sample(seed, n, mu, s):
    r = _rng(seed)
    d = mu.shape[0]
    x = r.standard_normal((n, d)).astype(np.float32)
    y = (mu + s * r.standard_normal((n, d))).astype(np.float32)
    return x, y


def test_knn_kl_gaussian_closed_form():
    """N(0, I) vs N(mu, 4 I) in d=4 with n=m=4000: within 15% of the closed form."""
    mu, s = np.full(4, 0.25), 2.0
    est = float(knn_kl_divergence(*_gauss_sample(50, 4000, mu, s)))
    assert abs(est - gauss_kl(mu, s)) < 0.15 * gauss_kl(mu, s)


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


# ----------------------------------------------------------------------------- binary_kl_loss


def test_binary_kl_loss_is_kl_to_rademacher():
    """The "wkv" form = knn_kl_divergence to rademacher samples; num_targets defaults to n."""
    codes = _codes(60, 40, 8)
    key = jax.random.key(3)
    y40 = jax.random.rademacher(key, (40, 8), jnp.float32)
    y25 = jax.random.rademacher(key, (25, 8), jnp.float32)
    mask = jnp.asarray(_mask(61, 40))
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


@pytest.mark.parametrize("form", losses.KL_FORMS)
def test_binary_kl_loss_prefers_spread_binary_codes(form):
    """Codes near distinct hypercube corners score lower than codes collapsed near one point."""
    r = _rng(62)
    key = jax.random.key(4)
    corners = np.where(r.random((64, 8)) < 0.5, -1.0, 1.0)
    spread = (corners + 0.05 * r.standard_normal((64, 8))).astype(np.float32)
    collapsed = (corners[0] + 0.05 * r.standard_normal((64, 8))).astype(np.float32)
    margin = 1.0 if form == "wkv" else 0.1  # nats, or nats per bit
    assert float(binary_kl_loss(spread, key, form=form)) + margin < float(
        binary_kl_loss(collapsed, key, form=form)
    )


# ----------------------------------------------------------------------------- simple losses


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_simple_losses_match_numpy(masked):
    """classification, quantization and bit balance losses equal their NumPy formulas."""
    n = 20
    codes = 1.5 * _codes(70, n, 6)
    logits = 3 * _codes(71, n, 5)
    labels = _rng(72).integers(0, 5, n).astype(np.int32)
    mask = _mask(73, n) if masked else np.ones(n, bool)
    kw = {"mask": jnp.asarray(mask)} if masked else {}
    cases = (
        (classification_loss(logits, labels, **kw), np_ce(logits, labels, mask)),
        (quantization_loss(codes, **kw), np_quant(codes, mask)),
        (bit_balance_loss(codes, **kw), np_balance(codes, mask)),
    )
    for got, want in cases:
        assert got.shape == ()
        np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_simple_losses_bad_inputs():
    """Bad shapes raise ValueError naming the argument."""
    codes = _codes(74, 6, 4)
    with pytest.raises(ValueError, match="logits"):
        classification_loss(codes[0], np.zeros(6, np.int32))
    with pytest.raises(ValueError, match="labels"):
        classification_loss(codes, np.zeros(5, np.int32))
    with pytest.raises(ValueError, match="codes"):
        quantization_loss(codes[0])
    with pytest.raises(ValueError, match="mask"):
        bit_balance_loss(codes, mask=jnp.ones(5, bool))


# ----------------------------------------------------------------------------- hashing_loss


def _hashing_inputs(seed, n, k=8, c=5):
    r = _rng(seed)
    codes = r.standard_normal((n, k)).astype(np.float32)
    logits = 2 * r.standard_normal((n, c)).astype(np.float32)
    labels = r.integers(0, c, n).astype(np.int32)
    cd = r.random((c, c)) + 0.2
    cd = ((cd + cd.T) / 2).astype(np.float32)
    np.fill_diagonal(cd, 0.0)
    return codes, logits, labels, cd


def test_hashing_loss_is_weighted_sum():
    """Total = sum of weight * term; each metric equals its function; kl metrics are consistent."""
    n, kbits = 24, 8
    codes, logits, labels, cd = _hashing_inputs(80, n, kbits)
    key = jax.random.key(5)
    mask = _mask(81, n)
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


def test_hashing_loss_default_weights_and_zero_weights():
    """Default weights use ce+sim+kl; a zero-weight term needs no input and is not computed."""
    assert tuple(LossWeights()) == (1.0, 1.0, 1.0, 0.0, 0.0)
    n = 16
    codes, logits, labels, cd = _hashing_inputs(82, n)
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


@pytest.mark.parametrize(
    ("drop", "name"),
    [("logits", "logits"), ("labels", "labels"), ("targets", "targets"), ("key", "key")],
)
def test_hashing_loss_missing_input_raises(drop, name):
    """A term with nonzero weight whose input is missing raises ValueError naming it."""
    codes, logits, labels, cd = _hashing_inputs(83, 8)
    kw = dict(logits=logits, labels=labels, targets=ClassTargets(jnp.asarray(labels), cd))
    kw["key"] = jax.random.key(7)
    kw[drop] = None
    key = kw.pop("key")
    with pytest.raises(ValueError, match=name):
        losses.hashing_loss(codes, key, kl_form="wkv", **kw)
    if drop == "key":  # the default (marginal) form draws no samples: no key needed
        losses.hashing_loss(codes, None, **kw)


# ----------------------------------------------------------------------------- multi-device


def _check_sharded(mesh, fn, args, in_specs, argnums=(0,), has_aux=False):
    """fn(*args, axis_name=...) under shard_map equals the single-device call (value, grads)."""
    single = jax.value_and_grad(functools.partial(fn, axis_name=None), argnums, has_aux=has_aux)
    sharded = jax.shard_map(
        functools.partial(fn, axis_name="data"), mesh=mesh, in_specs=in_specs, out_specs=P()
    )
    sharded = jax.value_and_grad(sharded, argnums, has_aux=has_aux)
    (v1, g1), (v4, g4) = jax.jit(lambda *a: (single(*a), sharded(*a)))(*args)  # one compilation
    for a, b in zip(jax.tree.leaves(v4), jax.tree.leaves(v1), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    for a, b in zip(g4, g1, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    return v1


@pytest.mark.parametrize(
    ("form", "normalize", "power"),
    [
        *[(f, nrm, 2) for f in ("dense", "class", "embedding") for nrm in ("mean", "row")],
        ("dense", "row", 1.5),
        ("class", "mean", 1.5),
        ("embedding", "row", 1.5),
    ],
)
def test_similarity_loss_sharded(mesh4, form, normalize, power):
    """similarity_loss over 4 devices (global batch) equals the single-device value and grad."""
    n = 32
    codes = _codes(90, n)
    mask = jnp.asarray(_mask(91, n))
    target = _targets(92, n)[form][0]
    spec = {
        "dense": P("data"),
        "class": ClassTargets(P("data"), P()),
        "embedding": EmbeddingTargets(P("data")),
    }[form]

    def fn(codes, target, mask, axis_name):
        return similarity_loss(
            codes, target, normalize=normalize, power=power, mask=mask, axis_name=axis_name
        )

    _check_sharded(mesh4, fn, (codes, target, mask), (P("data"), spec, P("data")))


def test_knn_kl_sharded(mesh4):
    """knn_kl_divergence over 4 devices equals the single-device value and grads (x and y)."""
    x, y = _kl_data(93, 32, 48, d=6)
    mask = jnp.asarray(_mask(94, 32))

    def fn(x, y, mask, axis_name):
        return knn_kl_divergence(x, y, k=2, mask=mask, axis_name=axis_name)

    _check_sharded(mesh4, fn, (x, y, mask), (P("data"),) * 3, argnums=(0, 1))


@pytest.mark.parametrize("form", losses.KL_FORMS)
def test_binary_kl_loss_sharded(mesh4, form):
    """Every KL form over 4 devices equals one device (wkv: num_targets defaults to 32, not 8)."""
    codes = _codes(95, 32)
    mask = jnp.asarray(_mask(96, 32))

    def fn(codes, key, mask, axis_name):
        return binary_kl_loss(codes, key, form=form, k=2, mask=mask, axis_name=axis_name)

    _check_sharded(mesh4, fn, (codes, jax.random.key(8), mask), (P("data"), P(), P("data")))


def test_simple_losses_sharded(mesh4):
    """classification_loss, bit_balance_loss and quantization_loss over 4 devices."""
    n = 32
    codes, logits, labels, _ = _hashing_inputs(97, n)
    mask = jnp.asarray(_mask(98, n))
    spec = (P("data"),) * 3

    def ce(logits, labels, mask, axis_name):
        return classification_loss(logits, labels, mask=mask, axis_name=axis_name)

    def bal(codes, mask, axis_name):
        return bit_balance_loss(codes, mask=mask, axis_name=axis_name)

    def quant(codes, mask, axis_name):
        return quantization_loss(codes, mask=mask, axis_name=axis_name)

    _check_sharded(mesh4, ce, (logits, labels, mask), spec)
    _check_sharded(mesh4, bal, (codes, mask), spec[:2])
    _check_sharded(mesh4, quant, (codes, mask), spec[:2])


def test_hashing_loss_sharded(mesh4):
    """hashing_loss (all five terms, dense targets) over 4 devices equals one device."""
    n = 32
    codes, logits, labels, cd = _hashing_inputs(99, n)
    dense = cd[labels][:, labels]
    mask = jnp.asarray(_mask(100, n))
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
    _check_sharded(mesh4, fn, args, specs, argnums=(0, 1), has_aux=True)


# ----------------------------------------------------------------------------- invalid batches


def _invalid_cases():
    codes, logits, labels, cd = _hashing_inputs(101, 8, 4)
    table = jnp.asarray(cd)
    return {
        "sim": lambda lab, m: losses.similarity_loss(codes, ClassTargets(lab, table), mask=m),
        "ce": lambda lab, m: losses.classification_loss(logits, lab, mask=m),
        "quant": lambda lab, m: losses.quantization_loss(codes, mask=m),
        "balance": lambda lab, m: losses.bit_balance_loss(codes, mask=m),
        **{
            form: lambda lab, m, form=form: losses.binary_kl_loss(
                codes, jax.random.key(0), form=form, mask=m
            )
            for form in losses.KL_FORMS
        },
    }, jnp.asarray(labels), logits.shape[1]


@pytest.mark.parametrize("term", ["sim", "ce", "quant", "balance", *losses.KL_FORMS])
def test_all_masked_batch_is_an_error_or_nan_under_jit(term):
    """A batch with no valid row: ValueError for a concrete mask, NaN (never a number) traced."""
    cases, labels, _ = _invalid_cases()
    fn = cases[term]
    none = jnp.zeros(labels.shape, bool)
    with pytest.raises(ValueError, match="mask selects no row"):
        fn(labels, none)
    assert np.isnan(float(jax.jit(fn)(labels, none)))
    assert np.isfinite(float(jax.jit(fn)(labels, none.at[:3].set(True))))


@pytest.mark.parametrize("term", ["sim", "ce"])
@pytest.mark.parametrize("bad", [-1, "C"])
def test_labels_out_of_range_are_an_error_or_nan_under_jit(term, bad):
    """Labels outside [0, C): ValueError naming them when concrete, NaN under jit."""
    cases, labels, num_classes = _invalid_cases()
    fn = cases[term]
    wrong = labels.at[0].set(num_classes if bad == "C" else bad)
    with pytest.raises(ValueError, match=rf"labels must lie in \[0, {num_classes}\)"):
        fn(wrong, None)
    assert np.isnan(float(jax.jit(fn)(wrong, None)))
    assert np.isfinite(float(jax.jit(fn)(labels, None)))


def test_knn_terms_need_more_valid_rows_than_k():
    codes = _codes(102, 8)
    mask = jnp.zeros(8, bool).at[:2].set(True)
    with pytest.raises(ValueError, match="valid"):
        losses.binary_kl_loss(codes, form="corner", k=2, mask=mask)
    traced = jax.jit(lambda m: losses.binary_kl_loss(codes, form="corner", k=2, mask=m))
    assert np.isnan(float(traced(mask)))
