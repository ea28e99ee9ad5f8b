"""CIFAR-100 zero-shot: train without 20 held-out classes, retrieve among them.

    jaxhash train --config configs/cifar100_zeroshot.py --workdir runs/c100_zs \\
        --set data.manual_dir=/path/to/cifar-100-binary.tar.gz

The held-out classes are one fine class of each of the 20 superclasses (the last in label
order), so every superclass keeps seen relatives: retrieval among unseen classes is helped by
the WordNet-similarity targets only through what the codes learned from their relatives.
Hardware, runtime and result: not yet measured.
"""

from jaxhash.config import default_config
from jaxhash.semantics.known import cifar100_zero_shot_classes


def get_config(bits: str = "64"):
    c = default_config()
    c.batch_size = 512
    c.model.name = "resnet18"
    c.model.bits = int(bits)
    c.model.dtype = "bfloat16"
    c.optim.learning_rate = 0.2
    c.optim.warmup_steps = 500
    c.train.epochs = 100.0
    c.train.checkpoint_every = 1000
    c.data.name = "cifar100"
    c.data.holdout_classes = cifar100_zero_shot_classes()
    c.eval.protocol = "zero_shot"
    return c
