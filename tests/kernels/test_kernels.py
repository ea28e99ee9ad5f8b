"""jaxhash.kernels: the implementation choice (an argument, never process state), its errors,
and both kernels' lowering for GPUs (Triton) and TPUs (Mosaic) from a CPU host."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import kernels, knn, retrieval
from jaxhash.kernels import hamming_tiles, kth_neighbor


def test_impl_choice_and_errors():
    """auto is the kernel on GPUs and TPUs, XLA on CPUs; an explicit choice is kept; bad values
    and dtypes are named."""
    accelerator = jax.default_backend() in ("gpu", "tpu")
    assert kernels.resolve_impl("auto") == ("pallas" if accelerator else "xla")
    assert kernels.resolve_impl("pallas") == "pallas"
    assert kernels.resolve_impl("xla") == "xla"
    with pytest.raises(ValueError, match="impl must be one of"):
        kernels.resolve_impl("triton")
    with pytest.raises(ValueError, match="variant must be"):
        kernels.check_variant("cuda")
    with jax.enable_x64(True):
        x = jnp.ones((4, 3), jnp.float64)
        with pytest.raises(ValueError, match="impl='pallas' takes float32"):
            knn.kth_neighbor_indices(x, x, 1, impl="pallas")
        assert knn.kth_neighbor_indices(x, x, 1, impl="auto").shape == (4,)  # XLA for float64
    with pytest.raises(ValueError, match="impl must be one of"):
        retrieval.hamming_topk(
            jnp.zeros((2, 1), jnp.uint8), jnp.zeros((3, 1), jnp.uint8), 1, impl="gpu"
        )


def _lowers(fn, platform, *args):
    return jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize(("variant", "platform"), [("triton", "cuda"), ("mosaic", "tpu")])
def test_kernels_lower_for_accelerators(variant, platform):
    """Both kernels lower to Triton (GPUs) and Mosaic (TPUs) from this machine: the Pallas
    lowering rules accept every operation and block shape at benchmark-like sizes."""
    q, p = jnp.ones((1024, 64)), jnp.ones((1000, 64))
    knn_fn = functools.partial(
        kth_neighbor.kth_neighbor_indices, k=3, variant=variant, interpret=False
    )
    rows, norms = jnp.zeros((1024,), jnp.int32), jnp.ones((1000,))
    text = _lowers(
        lambda q, p, r, n: knn_fn(q, p, row_ids=r, sq_norms=n), platform, q, p, rows, norms
    )
    assert "kth_neighbor" in text
    tiles_fn = functools.partial(hamming_tiles.tile_minima, variant=variant, interpret=False)
    q_words = jnp.zeros((512, 2), jnp.uint32)
    text = _lowers(tiles_fn, platform, q_words, jnp.zeros((2, 32, 4096), jnp.uint32))
    assert "hamming_tile_minima" in text


def test_the_knn_switch_takes_effect_after_a_first_call(monkeypatch):
    """The kNN implementation is an argument (``config.loss.knn_impl``): one jitted loss called
    with "xla" and then "pallas" runs the kernel on the second call only, with the same value,
    not a trace cached from the first."""
    from jaxhash import losses
    from jaxhash.kernels import kth_neighbor as kernel_module

    calls = []
    real = kernel_module.kth_neighbor_indices

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernel_module, "kth_neighbor_indices", spy)
    codes = jax.random.normal(jax.random.key(0), (16, 8))

    @functools.partial(jax.jit, static_argnames="knn_impl")
    def loss(codes, key, knn_impl):
        return losses.binary_kl_loss(codes, key, form="wkv", knn_impl=knn_impl)

    first = loss(codes, jax.random.key(1), knn_impl="xla")
    assert calls == []
    second = loss(codes, jax.random.key(1), knn_impl="pallas")
    assert calls and np.isclose(float(first), float(second), rtol=1e-5)
