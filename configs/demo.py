"""The demo: train + evaluate on the embedded synthetic_hierarchy data, no download.

    jaxhash demo --workdir runs/demo
    jaxhash train --config configs/demo.py --workdir runs/demo      # the same run

64 leaf classes in a 3-level tree (shape family / colour family / texture), 32x32 images, a
small CNN (width 16), 32-bit codes, CE + similarity + 0.1 x kNN KL, 320 steps of 128.
``configs/demo.py:quick`` is the seconds-long version the tests run.
Hardware, runtime and result: not yet measured.
"""

from jaxhash.config import demo_config


def get_config(arg: str = ""):
    return demo_config(arg)
