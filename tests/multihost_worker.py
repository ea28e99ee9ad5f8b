"""One process of the two-process training check in tests/test_multihost.py (not a test).

    python tests/multihost_worker.py PROCESS_ID PORT WORKDIR DATA_DIR

Two CPU devices per process, collectives over gloo on loopback; process 0 writes the final
parameters to WORKDIR/params.npz.
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax
import numpy as np

from jaxhash import config as config_lib
from jaxhash import train


def main() -> None:
    process_id, port, workdir, data_dir = sys.argv[1:5]
    config = config_lib.demo_config("quick")
    config.data.data_dir = data_dir
    config.eval.at_end = False
    config.distributed.initialize = True
    config.distributed.coordinator_address = f"127.0.0.1:{port}"
    config.distributed.num_processes = 2
    config.distributed.process_id = int(process_id)
    state, _ = train.run(config, workdir, progress=False)
    assert jax.process_count() == 2 and len(jax.devices()) == 4
    if jax.process_index() == 0:
        leaves = jax.tree_util.tree_leaves(jax.device_get(state.params))
        np.savez(os.path.join(workdir, "params.npz"), *leaves)


if __name__ == "__main__":
    main()
