"""One process of the two-process interruption check in tests/test_interruptions.py (not a
test).

    python tests/interruption_worker.py PROCESS_ID PORT WORKDIR DATA_DIR

Trains the quick demo for far more steps than the test waits for, one CPU device per process,
with a time limit that only process 1's clock (set a day ahead here) has passed: the limit is
process 0's decision, so neither stops for it. The test then signals one process; both must
save the same step and exit with 128 + the signal's number, saying so in one line.
"""

import os
import sys
import time
import types

os.environ["JAX_PLATFORMS"] = "cpu"

from jaxhash import config as config_lib
from jaxhash import interruptions, train

DAY = 86_400.0


def main() -> int:
    process_id, port, workdir, data_dir = sys.argv[1:5]
    config = config_lib.demo_config("quick")
    config.data.data_dir = data_dir
    config.train.steps = 100_000
    config.train.log_every = 1
    config.train.checkpoint_every = 100_000
    config.eval.at_end = False
    config.distributed.initialize = True
    config.distributed.coordinator_address = f"127.0.0.1:{port}"
    config.distributed.num_processes = 2
    config.distributed.process_id = int(process_id)
    if process_id == "1":  # a clock a day ahead, for the time limit's decisions only
        interruptions.time = types.SimpleNamespace(time=lambda: time.time() + DAY)
    try:
        train.run(config, workdir, progress=False, time_limit_s=DAY / 2)
    except interruptions.TrainingInterrupted as stopped:
        print(f"jaxhash: {stopped}", flush=True)
        return 128 + stopped.signal_number
    return 0


if __name__ == "__main__":
    sys.exit(main())
