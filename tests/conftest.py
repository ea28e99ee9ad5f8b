"""Test set-up: four fake CPU devices for the multi-device tests, one compilation cache.

XLA reads the device count when the backend starts, so the flag must be set before jax is
imported anywhere; pytest imports this file first.

The many short training runs compile the same programs again and again (each ``train.run``
jits its own step), so the session shares JAX's persistent compilation cache: a fresh folder
per session, used by this process and, through the environment, by the processes that the
CLI, benchmark, notebook and multi-host tests start. A cache hit skips XLA's compilation, not
tracing. Only programs that took over a second to compile are stored (the train and
evaluation steps; tests/test_checkpoints.py 138 s -> 76 s): storing every small program costs
more than it saves (tests/test_metrics.py 80 s -> 103 s). A size limit turns on the cache's
file lock, so processes that compile the same program at once do not read each other's
half-written files.

Most training tests need a trained run, not a run of their own: the session trains the quick
demo once (``quick_run``) on data built once (``quick_data_dir``), and tests that change a
run folder change a copy of it (``quick_run_copy``).
"""

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxhash-tests-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
# Also for a cache folder of one's own: the threshold, and the lock between processes.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))

import jax
import pytest


@pytest.fixture(scope="session")
def mesh4():
    """A one-axis ("data") mesh over four CPU devices."""
    devices = jax.devices()
    if len(devices) < 4:
        pytest.skip("needs 4 devices: XLA_FLAGS was set after jax started")
    return jax.sharding.Mesh(devices[:4], ("data",))


# Small real data committed with the tests (tests/data/README.md; tools/make_test_data.py).
TEST_DATA = Path(__file__).resolve().parent / "data"
# Real data whose license forbids redistribution: read from $JAXHASH_TEST_DATA when it is set.
EXTERNAL = {
    "captions_small": "1,000 Flickr8k images with their captions (research use only)",
    "tiny_imagenet_val20": "Tiny ImageNet validation images (ImageNet terms of access)",
}


def external_data(folder: str, *parts: str) -> Path:
    """A path under $JAXHASH_TEST_DATA/<folder>; skips the test, saying why, if it is absent."""
    root = os.environ.get("JAXHASH_TEST_DATA")
    path = Path(root, folder, *parts) if root else None
    if path is None or not path.exists():
        pytest.skip(
            f"needs {EXTERNAL[folder]}, which may not be redistributed with the repository: set "
            f"JAXHASH_TEST_DATA to a folder holding {folder}/{'/'.join(parts)}"
        )
    return path


@pytest.fixture(scope="session")
def wordnet():
    """nltk's reader over the WordNet 3.0 subset in tests/data/wordnet."""
    from jaxhash.semantics import load_wordnet

    return load_wordnet(TEST_DATA / "wordnet")


@pytest.fixture(scope="session")
def cifar_sample(tmp_path_factory) -> Path:
    """A CIFAR-100-format .npz built here: 5 train + 6 test images per class with the official
    label structure (fine label i % 100 for element i, its official coarse label) and random
    pixels. CIFAR-100's images have no license that allows committing them; the code under
    test (archive readers, the TFDS builder, the input pipeline, a study row) sees every
    field it reads in the real format."""
    import numpy as np

    from jaxhash.semantics import known

    rng = np.random.default_rng(100)
    coarse_of_fine = np.asarray(known.CIFAR100_COARSE_OF_FINE)
    arrays = {}
    for split, per_class in (("train", 5), ("test", 6)):
        fine = np.arange(100 * per_class) % 100
        arrays[f"x_{split}"] = rng.integers(0, 256, (len(fine), 32, 32, 3), dtype=np.uint8)
        arrays[f"y_{split}_fine"] = fine.astype(np.int64)
        arrays[f"y_{split}_coarse"] = coarse_of_fine[fine].astype(np.int64)
    path = tmp_path_factory.mktemp("cifar100_sample") / "cifar100_sample.npz"
    np.savez(path, **arrays)
    return path


# The shared quick run: 3 steps, a checkpoint at every one (1, 2 and 3, all kept), no evaluation.
QUICK_RUN = {
    "train.steps": 3,
    "train.checkpoint_every": 1,
    "train.keep_checkpoints": 3,
    "eval.at_end": False,
}


@pytest.fixture(scope="session")
def quick_data_dir(tmp_path_factory) -> str:
    """A TFDS folder holding the quick demo's synthetic data set, built once for the session
    (also before processes that tests start read it: two must not build it at once)."""
    from jaxhash import config as config_lib
    from jaxhash import data

    folder = str(tmp_path_factory.mktemp("tfds"))
    config = config_lib.demo_config("quick")
    config.data.data_dir = folder
    data.get_dataset_info(config)
    return folder


@pytest.fixture(scope="session")
def quick_config(quick_data_dir) -> Callable[..., object]:
    """``quick_config(**changes)``: the quick demo config on the session's data, with ``changes``
    (dotted keys, Python values) applied."""
    from jaxhash import config as config_lib

    def make(**changes):
        config = config_lib.demo_config("quick")
        config.data.data_dir = quick_data_dir
        config_lib.apply_overrides(config, [f"{key}={value!r}" for key, value in changes.items()])
        return config

    return make


@pytest.fixture(scope="session")
def quick_run_config(quick_config) -> Callable[[], object]:
    """``quick_run_config()``: a fresh copy of the shared quick run's config (resuming the run,
    or a copy of it, takes this config)."""
    return lambda: quick_config(**QUICK_RUN)


@pytest.fixture(scope="session")
def quick_run(quick_run_config, tmp_path_factory):
    """(run folder, final train state) of the quick demo trained with ``QUICK_RUN``, shared by
    the session: read it, never change it (``quick_run_copy`` is a copy to change)."""
    from jaxhash import train

    workdir = tmp_path_factory.mktemp("quick_run")
    state, _ = train.run(quick_run_config(), workdir, progress=False)
    return workdir, state


@pytest.fixture
def quick_run_copy(quick_run, tmp_path) -> Path:
    """A copy of the shared quick run's folder, for a test to change."""
    shutil.copytree(quick_run[0], tmp_path / "run")
    return tmp_path / "run"
