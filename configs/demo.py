"""The demo: train + evaluate on the embedded synthetic_hierarchy data, no download.

    jaxhash demo --workdir runs/demo
    jaxhash train --config configs/demo.py --workdir runs/demo      # the same run

64 leaf classes in a 3-level tree (shape family / colour family / texture), 32x32 images, a
small CNN (width 16), 32-bit codes, the paper's loss as jaxhash sets it (CE + 3 x similarity +
1 x the marginal KL form, ``jaxhash.methods``), 400 steps of 128.
``configs/demo.py:quick`` is the seconds-long version the tests run.

Measured 2026-12-02 (device and runtime: benchmarks/RESULTS.md, "Demo"); test set as queries
and database: Hamming mAP@250 0.315 (random codes 0.036; real-valued outputs by cosine
0.340), mAHP@250 0.417 (0.127; real-valued 0.434), P@1 0.333 (0.017), precision within
Hamming radius 2 0.301 (0), top-1 mistake severity 0.878 (0.905; lower is better). With the
literal kNN KL term at 0.1 (the previous default) the same run gave mAP@250 0.168, mAHP@250
0.266, precision within radius 2 0.016.
"""

from jaxhash.config import demo_config


def get_config(arg: str = ""):
    return demo_config(arg)
