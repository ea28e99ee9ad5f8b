"""jaxhash.parallel: inside ``shard_map`` over four devices the collectives equal the
single-device result on the concatenated batch (and are identities with ``axis_name=None``);
the mesh has one data axis; one process's ``process_concat`` returns its rows."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from jaxhash import parallel


def test_collectives_equal_the_global_batch(mesh4):
    x = jnp.arange(24.0).reshape(8, 3)

    def per_device(block, axis_name):
        return (
            parallel.all_gather_batch(block, axis_name),
            parallel.global_sum(block.sum(0), axis_name),
            parallel.batch_offset(len(block), axis_name) + jnp.arange(len(block)),
            parallel.axis_size(axis_name),
        )

    gathered, total, rows, size = jax.jit(
        jax.shard_map(
            functools.partial(per_device, axis_name="data"),
            mesh=mesh4,
            in_specs=P("data"),
            out_specs=(P(), P(), P("data"), P()),
            check_vma=False,  # the gather's output is replicated, which the check cannot infer
        )
    )(x)
    np.testing.assert_array_equal(gathered, x)
    np.testing.assert_array_equal(total, x.sum(0))
    np.testing.assert_array_equal(rows, np.arange(8))  # each device's rows, globally numbered
    assert int(size) == 4
    alone = per_device(x, None)
    np.testing.assert_array_equal(alone[0], x)
    np.testing.assert_array_equal(alone[1], x.sum(0))
    np.testing.assert_array_equal(alone[2], np.arange(8))
    assert alone[3] == 1


def test_mesh_and_one_process():
    mesh = parallel.make_mesh(jax.devices()[:2])
    assert mesh.axis_names == (parallel.DATA_AXIS,) and mesh.devices.shape == (2,)
    assert parallel.process_mesh(mesh) is mesh
    tree = {"a": np.arange(6).reshape(3, 2), "b": np.ones(3, np.int64)}
    assert parallel.process_concat(tree) is tree
