"""Defaults of every field (the embedded synthetic data set, a small CNN, 64 bits).

    jaxhash train --config configs/default.py --workdir runs/default

Hardware, runtime and result: not yet measured (configs/demo.py is the measured quick run).
"""

from jaxhash.config import default_config


def get_config():
    return default_config()
