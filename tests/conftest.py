"""Test set-up: four fake CPU devices for the multi-device tests.

XLA reads the device count when the backend starts, so the flag must be set before jax is
imported anywhere; pytest imports this file first.
"""

import os

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
