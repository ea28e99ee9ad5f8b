"""jaxhash.losses.similarity: relaxed Hamming distances and the similarity loss, against float64
NumPy oracles, on one device and sharded."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from jaxhash import losses
from jaxhash.losses import ClassTargets, EmbeddingTargets
from tests.losses.loss_checks import (
    check_sharded,
    random_codes,
    random_mask,
    seeded_rng,
    similarity_loss,
)

relaxed_hamming = jax.jit(losses.relaxed_hamming)


NORMALIZE = ("mean", "row", "none")


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


def _targets(seed, n, c=5, e=6):
    """Three target forms (dense, ClassTargets, EmbeddingTargets) and their dense matrices."""
    r = seeded_rng(seed)
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


def test_relaxed_hamming_matches_numpy():
    """relaxed_hamming(a, b) and relaxed_hamming(a) equal the float64 formula."""
    a, b = random_codes(0, 7, 5), random_codes(1, 4, 5)
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
    r = seeded_rng(2)
    a = np.where(r.random((9, 16)) < 0.5, -1.0, 1.0).astype(np.float32)
    b = np.where(r.random((6, 16)) < 0.5, -1.0, 1.0).astype(np.float32)
    ham = (a[:, None, :] != b[None, :, :]).mean(-1)
    np.testing.assert_allclose(np.asarray(relaxed_hamming(a, b)), ham, rtol=0, atol=1e-6)
    ham_aa = (a[:, None, :] != a[None, :, :]).mean(-1)
    np.testing.assert_allclose(np.asarray(relaxed_hamming(a)), ham_aa, rtol=0, atol=1e-6)


def test_relaxed_hamming_zero_rows():
    """An all-zero row is at distance 0.5 from everything; value and gradient have no NaN."""
    a = random_codes(3, 5, 4)
    a[1] = 0.0
    w = seeded_rng(4).random((5, 5)).astype(np.float32)
    val, g = jax.value_and_grad(lambda a: jnp.sum(w * relaxed_hamming(a)))(a)
    out = np.asarray(relaxed_hamming(a))
    assert np.all(np.isfinite(out)) and np.isfinite(float(val))
    np.testing.assert_allclose(out[1], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(out, np_relaxed_hamming(a), rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(np.asarray(g)))


def test_relaxed_hamming_bf16():
    """bf16 inputs are accepted and give a float32 result."""
    a = jnp.asarray(random_codes(5, 6, 8), jnp.bfloat16)
    out = relaxed_hamming(a)
    assert out.dtype == jnp.float32
    want = np_relaxed_hamming(np.asarray(a.astype(jnp.float32)))
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("power", [1, 2, 1.5])
@pytest.mark.parametrize("normalize", NORMALIZE)
def test_similarity_loss_matches_oracle(normalize, power, masked):
    """The value equals the float64 oracle; with power 2, for all three target forms.

    (The target form only decides D, which does not interact with power, so the other powers
    use the dense form alone to save compilations.)
    """
    n = 12
    codes = random_codes(10, n)
    mask = random_mask(11, n) if masked else None
    jmask = None if mask is None else jnp.asarray(mask)
    forms = _targets(12, n)
    if power != 2:
        forms = {"dense": forms["dense"]}
    for form, (target, dense) in forms.items():
        want = sim_oracle(codes.astype(np.float64), dense, normalize, power, mask)
        got = similarity_loss(codes, target, normalize=normalize, power=power, mask=jmask)
        assert got.shape == () and got.dtype == jnp.float32
        np.testing.assert_allclose(float(got), want, rtol=1e-4, err_msg=form)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("normalize", "power"), [("mean", 2), ("mean", 1), ("row", 2), ("row", 1.5), ("none", 1.5)]
)
def test_similarity_loss_gradient(normalize, power):
    """The gradient w.r.t. codes equals jax.grad of the oracle formula in float64."""
    n = 12
    codes = random_codes(13, n)
    mask = random_mask(14, n)
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


@pytest.mark.slow
@pytest.mark.parametrize("normalize", ["mean", "none"])
def test_similarity_loss_power_below_one(normalize):
    """The contract allows any power > 0: power 0.5 matches the oracle with a finite gradient.

    +-1 codes and a zero-diagonal D make the excluded i == j terms exactly 0 (|0|^0.5 has an
    infinite derivative there, which must not leak into the gradient as NaN).
    """
    n = 12
    codes = np.where(seeded_rng(36).random((n, 16)) < 0.5, -1.0, 1.0).astype(np.float32)  # d_ii = 0
    mask = random_mask(37, n)
    _, dense = _targets(38, n)["dense"]
    dense = dense.copy()
    np.fill_diagonal(dense, 0.0)
    val, g = jax.value_and_grad(similarity_loss)(
        codes, dense, normalize=normalize, power=0.5, mask=jnp.asarray(mask)
    )
    want = sim_oracle(codes.astype(np.float64), dense, normalize, 0.5, mask)
    np.testing.assert_allclose(float(val), want, rtol=1e-4)
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.slow
@pytest.mark.parametrize("normalize", ["mean", "row"])
def test_similarity_loss_check_grads_float64(normalize):
    """check_grads (first order, reverse mode) on the library in float64."""
    n = 8
    target, _ = _targets(16, n)["embedding"]
    mask = jnp.asarray(random_mask(17, n))
    with jax.enable_x64(True):
        codes = jnp.asarray(random_codes(18, n, 5), jnp.float64)
        target = EmbeddingTargets(jnp.asarray(target.embeddings, jnp.float64))
        f = functools.partial(
            similarity_loss, target_distances=target, normalize=normalize, power=1.5, mask=mask
        )
        assert f(codes).dtype == jnp.float64
        check_grads(f, (codes,), order=1, modes=("rev",))


@pytest.mark.slow
def test_similarity_loss_detach_scale():
    """detach_scale keeps the value, changes the gradient to the one with mean(d) frozen."""
    n = 12
    codes = random_codes(19, n)
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
    codes = random_codes(21, n)
    mask = random_mask(22, n)
    perm = seeded_rng(23).permutation(n)
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
    codes = random_codes(25, n)
    dense = np.asarray(_targets(26, n)["dense"][0])
    v0 = float(similarity_loss(codes, dense, normalize=normalize))
    c = seeded_rng(27).uniform(0.1, 10.0, (n, 1)).astype(np.float32)
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
    codes = random_codes(28, n)
    dense = np.asarray(_targets(29, n)["dense"][0])
    other = dense.copy()
    np.fill_diagonal(other, seeded_rng(30).uniform(1.0, 5.0, n))
    v0 = float(similarity_loss(codes, dense, normalize=normalize))
    v1 = float(similarity_loss(codes, other, normalize=normalize))
    np.testing.assert_allclose(v1, v0, rtol=1e-5)


@pytest.mark.parametrize("normalize", NORMALIZE)
def test_similarity_loss_masked_rows_do_not_matter(normalize):
    """Masked rows' codes and targets are irrelevant; the loss equals the one on the subset."""
    n = 12
    codes = random_codes(31, n)
    mask = random_mask(32, n)
    forms = _targets(33, n)
    cls, emb = forms["class"][0], forms["embedding"][0]
    dense = np.asarray(forms["dense"][0])
    noise = seeded_rng(34)
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
    codes = random_codes(35, 6)
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


@pytest.mark.slow
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
    codes = random_codes(90, n)
    mask = jnp.asarray(random_mask(91, n))
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

    check_sharded(mesh4, fn, (codes, target, mask), (P("data"), spec, P("data")))
