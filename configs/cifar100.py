"""CIFAR-100 (fine labels, WordNet hierarchy targets), ResNet-18 CIFAR stem; bits 16/32/64.

    jaxhash train --config configs/cifar100.py:64 --workdir runs/cifar100_64 \\
        --set data.manual_dir=/path/to/cifar-100-binary.tar.gz     # or data.download=True

Evaluation: the test set is both queries and database (self excluded), mAP@250 and mAHP@250
(lcs_height of the shipped WordNet tree), stable ties; a random-codes baseline row.
Hardware, runtime and result: not yet measured (needs a GPU or TPU). The CPU reproduction
study, with the small CNN and measured results, is configs/cifar100_cpu.py (README table).
"""

from jaxhash.config import default_config


def get_config(bits: str = "64"):
    if bits not in ("16", "32", "64"):
        raise ValueError(f"configs/cifar100.py takes bits 16, 32 or 64; got {bits!r}.")
    c = default_config()
    c.batch_size = 512
    c.model.name = "resnet18"
    c.model.stem = "cifar"
    c.model.bits = int(bits)
    c.model.dtype = "bfloat16"
    c.optim.name = "sgd"
    c.optim.learning_rate = 0.2
    c.optim.warmup_steps = 500
    c.train.epochs = 100.0
    c.train.checkpoint_every = 1000
    c.eval.every = 5000
    c.data.name = "cifar100"
    c.data.hierarchy = "wordnet"
    return c
