"""Test set-up: four fake CPU devices for the multi-device tests.

XLA reads the device count when the backend starts, so the flag must be set before jax is
imported anywhere; pytest imports this file first.
"""

import os
from pathlib import Path

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import pytest


@pytest.fixture(scope="session")
def mesh4():
    """A one-axis ("data") mesh over four CPU devices."""
    devices = jax.devices()
    if len(devices) < 4:
        pytest.skip("needs 4 devices: XLA_FLAGS was set after jax started")
    return jax.sharding.Mesh(devices[:4], ("data",))


SHARED_DATA = Path(
    os.environ.get("JAXHASH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data (or $JAXHASH_SHARED_DATA); skips the test if it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data {path} is absent (set JAXHASH_SHARED_DATA to its folder)")
    return path


@pytest.fixture(scope="session")
def wordnet():
    """nltk's WordNet 3.0 reader, from ../shared/data/wordnet (skips if absent)."""
    from jaxhash.semantics import load_wordnet

    return load_wordnet(shared_data("wordnet"))
