"""The demo: train + evaluate on the embedded synthetic_hierarchy data, no download.

    jaxhash demo --workdir runs/demo
    jaxhash train --config configs/demo.py --workdir runs/demo      # the same run

64 leaf classes in a 3-level tree (shape family / colour family / texture), 32x32 images, a
small CNN (width 16), 32-bit codes, CE + 3 x similarity + 0.1 x kNN KL, 400 steps of 128.
``configs/demo.py:quick`` is the seconds-long version the tests run.

Measured 2026-11-26 on this project's 2-core CPU (JAX 0.10.2; another job was sharing the
cores): 147 s wall including building the data set; test set as queries and database:
mAP@250 0.168 (random codes 0.036), mAHP@250 0.266 (0.127), P@1 0.253 (0.017),
top-1 mistake severity 0.869 (0.905; lower is better), precision within radius 2 0.016 (0).
"""

from jaxhash.config import demo_config


def get_config(arg: str = ""):
    return demo_config(arg)
