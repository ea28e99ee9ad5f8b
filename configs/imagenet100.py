"""ImageNet-100 (HashNet's hashing subset), ResNet-50 ImageNet stem, 224x224; bits 16/32/64.

    jaxhash train --config configs/imagenet100.py:64 --workdir runs/in100_64 \\
        --set data.manual_dir=/path/with/ILSVRC2012_img_train.tar+val.tar data.wordnet_dir=DIR

Needs the ILSVRC2012 tars (TFDS manual download) and WordNet for the hierarchy. Evaluation:
queries are the 5,000 validation images, the database the 128,503 train images of the 100
classes (HashNet's protocol, mAP@1000), plus mAHP@250.
Hardware, runtime and result: not yet measured.
"""

from jaxhash.config import default_config


def get_config(bits: str = "64"):
    c = default_config()
    c.batch_size = 256
    c.model.name = "resnet50"
    c.model.stem = "imagenet"
    c.model.bits = int(bits)
    c.model.dtype = "bfloat16"
    c.model.pretrained = ""  # an orbax checkpoint of an ImageNet backbone, if you have one
    c.optim.name = "sgd"
    c.optim.learning_rate = 0.1
    c.optim.warmup_steps = 1000
    c.optim.backbone_lr_scale = 0.1
    c.train.epochs = 90.0
    c.train.checkpoint_every = 2000
    c.data.name = "imagenet2012"
    c.data.classes = "imagenet100"
    c.data.image_size = 224
    c.eval.protocol = "query_database"
    c.eval.split = "train"
    c.eval.query_split = "validation"
    c.eval.map_k = 1000
    return c
