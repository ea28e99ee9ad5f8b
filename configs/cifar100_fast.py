"""CIFAR-100, the fast recipe: airbench-shaped network and training, any method.

    jaxhash train --config configs/cifar100_fast.py:paper,64,0 --workdir runs/fast_paper_64 \\
        --set data.manual_dir=/path/to/cifar100.npz                     # CPU variant
    jaxhash train --config configs/cifar100_fast.py:paper,64,0,gpu --workdir runs/fast_gpu \\
        --set data.manual_dir=/path/to/cifar100.npz                     # one accelerator
    python -m benchmarks.reproduce_cifar100 --recipe fast --data cifar100.npz --plan  # the study

The argument is ``method,bits[,seed[,zeroshot]][,text][,gpu]`` with the methods of
``jaxhash.methods`` (``ce``, ``ce_sim``, ``paper``, ...). Similarity targets: WordNet
lcs_height, or with ``text`` the sentence embeddings (all-MiniLM-L6-v2) of each class's name
and WordNet gloss (``loss.similarity = "text"``, ``jaxhash.semantics.class_text``; needs the
``text`` extra). ``zeroshot`` trains without the 20 held-out classes of
``configs/cifar100_zeroshot.py`` and retrieves among their 2,000 test images.

The recipe, after Jordan's fast CIFAR trainers (airbench, arXiv 2404.00498), in jaxhash's
trainer (every piece a config field):

* ``model.name = "fast_cnn"``: whitening stem (2x2 patches of 5,000 training images spread
  over the split, frozen, saved with the checkpoint), three conv-pool-BN-GELU blocks at
  widths 48 / 192 / 192 (``CPU_WIDTHS``; airbench94's are 64 / 256 / 256), identity-initialised
  convolutions, BatchNorm without scale; the hash layer (K bits) and the classifier reading
  it, as every jaxhash model. The ``gpu`` variant uses ``fast_resnet`` (128 / 384 / 512 with
  residual conv pairs) in bfloat16.
* Nesterov SGD (momentum 0.9, weight decay 5e-4) at 0.2 per 512 images, a linear warm-up over
  the first ~2 epochs, then linear decay to 0; Lookahead every 5 steps (decay 0.95^5 reached
  with a cubic ramp); label smoothing 0.2 on the cross-entropy.
* Translations of up to 2 pixels with reflect padding, alternating flips (each image seen
  both ways every two epochs).
* Codes at evaluation from the mean of z over six views (image, mirror, each shifted by one
  pixel both ways), then the sign (``eval.tta = "flip_translate"``).

``EPOCHS`` (CPU: 10) and ``CPU_WIDTHS`` are what fits about 90 minutes per run on the CPU of
benchmarks/RESULTS.md ("Train step"): the train step measured 201 / 109 / 70 images/s with
first-stage widths 32 / 48 / 64 (the later stages four times that), batch 256, so 90 minutes
hold about 21 / 11 / 7 epochs. The middle width at 10 epochs (about 77 minutes of training at
that speed and 3 of evaluation) keeps airbench's ten-epoch budget with three quarters of its
width, rather than the full width for 7 epochs or half of it for 21. The ``gpu`` variant trains
longer (``GPU_EPOCHS``).
Measured (one CPU device, 2026-12-07): ``paper,64,0`` gives Hamming mAHP@250 0.679, mAP@250
0.333 (cosine mAHP@250 0.719) in 67 minutes; below the 0.75 goal. Every row: README ("The
fast recipe on CIFAR-100") and benchmarks/results/reproduce_cifar100_fast.json.
"""

from jaxhash import methods
from jaxhash.config import default_config
from jaxhash.semantics.known import cifar100_zero_shot_classes

EPOCHS = 10.0
GPU_EPOCHS = 40.0
# The CPU variant's widths: three quarters of airbench94's (benchmarks/RESULTS.md, "Train step").
CPU_WIDTHS = [48, 192, 192]


FLAGS = ("text", "gpu")  # trailing words of the argument, in this order


def get_config(arg: str = "paper,64"):
    parts = arg.split(",")
    flags = set()
    while parts and parts[-1] in FLAGS:
        flags.add(parts.pop())
    gpu, text = "gpu" in flags, "text" in flags
    spec = ",".join(parts)
    method, bits, seed, zero_shot = methods.parse_study_arg(spec, "configs/cifar100_fast.py")
    c = default_config()
    methods.apply_method(c, method)
    c.seed = seed
    c.batch_size = 512
    c.model.name = "fast_resnet" if gpu else "fast_cnn"
    c.model.widths = [] if gpu else list(CPU_WIDTHS)
    c.model.bits = bits
    c.model.whitening = "frozen"
    if gpu:
        c.model.dtype = "bfloat16"
    c.loss.label_smoothing = 0.2
    if text:
        c.loss.similarity = "text"
    c.optim.name = "sgd"
    c.optim.learning_rate = 0.2
    c.optim.momentum = 0.9
    c.optim.nesterov = True
    c.optim.weight_decay = 5e-4
    c.optim.warmup_steps = 200
    c.optim.schedule = "linear"
    c.optim.lookahead_every = 5
    c.optim.lookahead_decay = 0.95**5
    c.train.epochs = GPU_EPOCHS if gpu else EPOCHS
    c.train.log_every = 50
    c.train.checkpoint_every = 100
    c.train.tensorboard = False
    c.eval.rankings = ["hamming", "euclidean", "cosine"]
    c.eval.batch_size = 1000
    c.eval.tta = "flip_translate"
    c.data.name = "cifar100"
    c.data.hierarchy = "wordnet"
    c.data.crop_padding = 2
    c.data.crop_padding_mode = "reflect"
    c.data.flip = "alternating"
    if zero_shot:
        c.data.holdout_classes = cifar100_zero_shot_classes()
        c.eval.protocol = "zero_shot"
    return c
