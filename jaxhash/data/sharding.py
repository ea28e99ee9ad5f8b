"""Hosts and devices: each host's share of the examples and of a global batch, and host batches
made into global ``jax.Array`` s sharded over a mesh's data axis."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

STRING = object  # NumPy dtype of text fields (host-local, never a jax.Array)


def host_range(num_examples: int, process_index: int, process_count: int) -> tuple[int, int]:
    """``[start, stop)`` of host ``process_index``'s share of ``num_examples`` examples.

    Contiguous, disjoint, covering; sizes differ by at most one, the first hosts get the extra
    examples (``tfds.split_for_jax_process`` with ``drop_remainder=False``).
    """
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must lie in [0, process_count={process_count}); got {process_index}."
        )
    per, extra = divmod(num_examples, process_count)
    start = per * process_index + min(process_index, extra)
    return start, start + per + (process_index < extra)


def processes(process_index, process_count) -> tuple[int, int, bool]:
    """(index, count, simulated): explicit values simulate hosts in one process."""
    simulated = process_index is not None or process_count is not None
    index = jax.process_index() if process_index is None else int(process_index)
    count = jax.process_count() if process_count is None else int(process_count)
    host_range(0, index, count)  # validates
    return index, count, simulated


def host_batch(global_batch: int | None, process_count: int, what: str) -> int:
    """This host's rows of a global batch, else a ValueError naming ``what``."""
    if global_batch is None:
        raise ValueError(
            f"{what} is unset: set config.data.global_batch_size (or the top-level batch_size)."
        )
    if global_batch % process_count:
        raise ValueError(
            f"{what} = {global_batch} must be divisible by the number of hosts ({process_count})."
        )
    return global_batch // process_count


def data_sharding(mesh, data_axis: str) -> NamedSharding:
    if data_axis not in mesh.axis_names:
        raise ValueError(f"mesh has no axis {data_axis!r}; its axes are {mesh.axis_names}.")
    return NamedSharding(mesh, PartitionSpec(data_axis))


def check_divisible(global_batch: int, mesh, data_axis: str, what: str) -> None:
    devices = mesh.shape[data_axis]
    if global_batch % devices:
        raise ValueError(
            f"{what} = {global_batch} must be divisible by the {devices} devices of mesh axis "
            f"{data_axis!r}."
        )


def to_global(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict:
    """Host batch -> global ``jax.Array`` per numeric field (batch dim over the data axis).

    Text fields stay host-local NumPy arrays.
    """
    hosts = jax.process_count()
    out = {}
    for name, value in batch.items():
        if value.dtype == STRING:
            out[name] = value
        else:
            shape = (value.shape[0] * hosts, *value.shape[1:])
            out[name] = jax.make_array_from_process_local_data(sharding, value, shape)
    return out
