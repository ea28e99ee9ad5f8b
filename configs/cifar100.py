"""CIFAR-100 on a GPU or TPU: ResNet-18 (CIFAR stem), bf16, batch 512, 200 epochs; any method.

    jaxhash train --config configs/cifar100.py:paper,64 --workdir runs/cifar100_paper_64 \\
        --set data.manual_dir=/path/to/cifar-100-binary.tar.gz     # or data.download=True
    python -m studies.reproduce_cifar100 --recipe resnet18 --data cifar100.npz --plan \\
        --time-limit 9                     # the study's main rows, in runs of under 10 minutes
    bash studies/gpu_study.sh           # the same without TensorFlow (--reader numpy), the
                                           # .npz carried in parts (see the script's header)

The argument is ``method,bits[,seed[,zeroshot]]`` with the methods of ``jaxhash.methods``
(``ce``, ``ce_sim``, ``paper``, ``paper-<form>-<weight>``, ...), or just the bits (16, 32, 64:
``paper``). SGD (Nesterov, momentum 0.9, weight decay 5e-4) at 0.2 (0.1 per 256 images), 500
warm-up steps (about 5 epochs), then cosine to 0; pad-crop-flip. Evaluation: the test set as
queries and database (self excluded; ``zeroshot``: among the 20 held-out classes), mAP@250 and
mAHP@250 (lcs_height of the shipped WordNet tree), stable ties, random-codes baseline. Goal:
64-bit Hamming mAHP@250 >= 0.84, above Barz & Denzler's real-valued 0.8312 (ResNet-110).
Hardware, runtime and result: not yet measured; the CPU study (configs/cifar100_cpu.py) is.
"""

from jaxhash import methods
from jaxhash.config import default_config
from jaxhash.semantics.known import cifar100_zero_shot_classes

EPOCHS = 200.0


def get_config(arg: str = "paper,64"):
    if arg in ("16", "32", "64"):
        arg = f"paper,{arg}"
    method, bits, seed, zero_shot = methods.parse_study_arg(arg, "configs/cifar100.py")
    c = default_config()
    methods.apply_method(c, method)
    c.seed = seed
    c.batch_size = 512
    c.model.name = "resnet18"
    c.model.stem = "cifar"
    c.model.bits = bits
    c.model.dtype = "bfloat16"
    c.optim.name = "sgd"
    c.optim.learning_rate = 0.2
    c.optim.warmup_steps = 500
    c.train.epochs = EPOCHS
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.tensorboard = False
    c.eval.rankings = ["hamming", "euclidean", "cosine"]
    c.eval.batch_size = 1000
    c.data.name = "cifar100"
    c.data.hierarchy = "wordnet"
    if zero_shot:
        c.data.holdout_classes = cifar100_zero_shot_classes()
        c.eval.protocol = "zero_shot"
    return c
