"""Caption data (Conceptual-Captions style): similarity + KL only, targets from caption
embeddings (all-MiniLM-L6-v2 in JAX, cached), no class labels.

    jaxhash train --config configs/captions.py --workdir runs/captions \\
        --set data.captions_tsv=captions.tsv data.images_dir=images/

Needs the optional extra `text`. The paper trains captioned images with the similarity and KL
terms only (docs/method.md, section 1).
Hardware, runtime and result: not yet measured.
"""

from jaxhash.config import default_config


def get_config():
    c = default_config()
    c.batch_size = 256
    c.model.name = "resnet18"
    c.model.stem = "imagenet"
    c.model.bits = 64
    c.loss.w_ce = 0.0
    c.loss.w_sim = 1.0
    c.loss.w_kl = 0.1
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-3
    c.optim.weight_decay = 0.05
    c.train.epochs = 30.0
    c.data.name = "captions"
    c.data.caption_embeddings = True
    c.data.image_size = 224
    c.eval.baseline = True
    return c
