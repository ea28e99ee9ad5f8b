"""The search's implementation and plan come from the arguments and the devices of the data or
mesh (jaxhash.search.plan), and a changed switch takes effect on the next call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import retrieval
from jaxhash.search import plan


def test_platform_comes_from_the_mesh_or_the_data(mesh4):
    database = jnp.zeros((8, 2), jnp.uint8)
    assert plan.search_platform(database) == next(iter(database.devices())).platform == "cpu"
    assert plan.search_platform(np.zeros((8, 2), np.uint8)) == jax.default_backend()
    assert plan.search_platform(database, mesh4) == mesh4.devices.flat[0].platform


def test_plan_follows_the_platform_argument():
    """CPUs rank tiles database-major within a small budget; accelerators query-major."""
    args = ("hamming", 1000, 1 << 23, 2, 100, 1, None, None, "auto", "xla")
    cpu, gpu = plan._plan(*args, "cpu"), plan._plan(*args, "gpu")
    assert cpu.columns and not gpu.columns
    assert cpu.chunk_rows == 1 << 20 and gpu.chunk_rows == 1 << 22
    assert plan._plan(*args[:-1], "pallas", "gpu").pallas


@pytest.mark.parametrize(
    "platform, mesh, xla_options, expected",
    [
        ("cpu", None, False, "numba"),
        ("cpu", None, True, "xla"),  # a selection or block size shapes the XLA search
        ("cpu", "mesh", False, "xla"),
        ("gpu", None, False, "pallas"),
        ("tpu", None, False, "pallas"),
    ],
)
def test_auto_implementation(platform, mesh, xla_options, expected, mesh4):
    pytest.importorskip("numba")
    mesh = mesh4 if mesh == "mesh" else None
    assert plan.search_impl("auto", platform, "hamming", mesh, xla_options) == expected
    assert plan.search_impl("auto", platform, "euclidean") != "numba"


def test_auto_falls_back_to_xla_without_numba(monkeypatch):
    monkeypatch.setattr(plan, "has_numba", lambda: False)
    assert plan.search_impl("auto", "cpu") == "xla"
    with pytest.raises(ImportError, match="pip install 'jaxhash\\[search\\]'"):
        plan.search_impl("numba", "cpu")


def test_the_search_switch_takes_effect_after_a_first_call(monkeypatch):
    """hamming_topk with impl "xla", then "numba", then "xla" again: the compiled kernel runs on
    the second call only, with the same answer."""
    pytest.importorskip("numba")
    from jaxhash.kernels import hamming_scan

    calls = []
    real = hamming_scan.topk

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hamming_scan, "topk", spy)
    rng = np.random.default_rng(0)
    database = rng.integers(0, 4, (500, 8), np.uint8)
    queries = rng.integers(0, 4, (7, 8), np.uint8)
    first = retrieval.hamming_topk(queries, database, 9, impl="xla")
    assert calls == []
    second = retrieval.hamming_topk(queries, database, 9, impl="numba")
    assert calls == [1]
    third = retrieval.hamming_topk(queries, database, 9, impl="xla")
    assert calls == [1]
    for result in (second, third):
        np.testing.assert_array_equal(np.asarray(result[0]), np.asarray(first[0]))
        np.testing.assert_array_equal(np.asarray(result[1]), np.asarray(first[1]))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(impl="fast"), ValueError, "impl must be one of"),
        (dict(impl="numba", mesh="mesh"), ValueError, "takes no mesh"),
    ],
)
def test_bad_impl_raises(kwargs, error, message, mesh4):
    pytest.importorskip("numba")
    if kwargs.get("mesh") == "mesh":
        kwargs = dict(kwargs, mesh=mesh4)
    codes = np.zeros((8, 2), np.uint8)
    with pytest.raises(error, match=message):
        retrieval.hamming_topk(codes, codes, 3, **kwargs)


def test_numba_searches_hamming_codes_only():
    with pytest.raises(ValueError, match="searches Hamming codes"):
        plan.search_impl("numba", "cpu", "cosine")


def test_hamming_topk_inside_jit_searches_by_xla():
    """Inside jax.jit the codes are traced: "auto" takes the jitted search, "numba" is refused."""
    rng = np.random.default_rng(1)
    database = rng.integers(0, 4, (300, 8), np.uint8)
    queries = rng.integers(0, 4, (5, 8), np.uint8)
    expected = retrieval.hamming_topk(queries, database, 6)
    traced = jax.jit(lambda q, d: retrieval.hamming_topk(q, d, 6))(queries, database)
    np.testing.assert_array_equal(np.asarray(traced[0]), np.asarray(expected[0]))
    np.testing.assert_array_equal(np.asarray(traced[1]), np.asarray(expected[1]))
    assert plan.search_impl("auto", "cpu", traced=True) == "xla"
    with pytest.raises(ValueError, match="not values traced inside jax"):
        plan.search_impl("numba", "cpu", traced=True)
