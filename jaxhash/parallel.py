"""Global-batch collectives for code that runs inside ``jax.shard_map``.

Every batch-level loss takes ``axis_name``. With ``axis_name=None`` these helpers are identities,
so the same function serves one device and a mesh: inside ``jax.shard_map`` over a data axis they
gather or sum over that axis, and the result equals the single-device result on the concatenated
(global) batch.
"""

from __future__ import annotations

import jax
from jax import lax

AxisName = str | tuple[str, ...] | None


def axis_size(axis_name: AxisName) -> int:
    """Number of devices along ``axis_name`` (1 outside a mapped context)."""
    return 1 if axis_name is None else lax.axis_size(axis_name)


def all_gather_batch(x: jax.Array, axis_name: AxisName) -> jax.Array:
    """Concatenate every device's block along axis 0: ``[n, ...] -> [n * devices, ...]``."""
    return x if axis_name is None else lax.all_gather(x, axis_name, axis=0, tiled=True)


def global_sum(x, axis_name: AxisName):
    """Sum over the devices of ``axis_name`` (a pytree is summed leaf by leaf)."""
    return x if axis_name is None else lax.psum(x, axis_name)


def batch_offset(n_local: int, axis_name: AxisName) -> jax.Array | int:
    """Global index of this device's first row when every device holds ``n_local`` rows."""
    return 0 if axis_name is None else lax.axis_index(axis_name) * n_local
