"""Global-batch collectives for code that runs inside ``jax.shard_map``, and across processes.

Every batch-level loss takes ``axis_name``. With ``axis_name=None`` these helpers are identities,
so the same function serves one device and a mesh: inside ``jax.shard_map`` over a data axis they
gather or sum over that axis, and the result equals the single-device result on the concatenated
(global) batch. :func:`process_concat` works on host arrays outside any mapped context: it joins
every process's rows (multi-host evaluation). The mesh itself (:func:`make_mesh`, one
``DATA_AXIS``) and the multi-process start (:func:`initialize_distributed`) live here too.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax import lax
from jax.sharding import Mesh

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


def process_concat(tree):
    """Every process's host arrays concatenated along axis 0 in process order, on every process.

    ``tree``: a pytree of NumPy arrays ``[n_p, ...]`` whose row count ``n_p`` may differ per
    process (trailing shapes and dtypes must agree; every process passes the same structure).
    Rows travel as raw bytes, padded to the longest process's count, through
    ``multihost_utils.process_allgather``, and are trimmed again: the result is
    ``[sum_p n_p, ...]``, bit-exact in every dtype (int64 too, without ``jax_enable_x64``).
    One process: ``tree`` unchanged.
    """
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    leaves, treedef = jax.tree_util.tree_flatten(tree)
    leaves = [np.ascontiguousarray(x) for x in leaves]
    counts = multihost_utils.process_allgather(np.array([len(x) for x in leaves], np.int32))
    longest = counts.max(axis=0)
    rows = [  # [n_p, bytes per row], padded to [longest, bytes per row]
        np.pad(
            x.view(np.uint8).reshape(len(x), x.itemsize * math.prod(x.shape[1:])),
            [(0, int(m) - len(x)), (0, 0)],
        )
        for x, m in zip(leaves, longest, strict=True)
    ]
    gathered = multihost_utils.process_allgather(rows)  # leaf i: [processes, longest_i, bytes]
    joined = [
        np.concatenate([g[p, :n] for p, n in enumerate(counts[:, i])])
        .view(x.dtype)
        .reshape(int(counts[:, i].sum()), *x.shape[1:])
        for i, (g, x) in enumerate(zip(gathered, leaves, strict=True))
    ]
    return jax.tree_util.tree_unflatten(treedef, joined)


# ----------------------------------------------------------------------------- mesh, processes

DATA_AXIS = "data"  # the one mesh axis: batches are sharded over it, the train state replicated


def make_mesh(devices=None) -> Mesh:
    """A one-axis (``DATA_AXIS``) mesh over ``devices`` (default: all, of every process)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), (DATA_AXIS,))


def process_mesh(mesh: Mesh) -> Mesh:
    """The devices of ``mesh`` on this process (``mesh`` itself when there is one process)."""
    return mesh if jax.process_count() == 1 else mesh.local_mesh


def initialize_distributed(dist) -> None:
    """``jax.distributed.initialize`` from ``config.distributed`` (once per process).

    Empty or default fields are left for JAX to detect (TPU pods, SLURM, ...). Processes on
    CPUs exchange collectives through ``dist.cpu_collectives`` (gloo).
    """
    if not dist.initialize or jax.distributed.is_initialized():
        return
    if dist.cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", dist.cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=dist.coordinator_address or None,
        num_processes=dist.num_processes or None,
        process_id=None if dist.process_id < 0 else dist.process_id,
    )
