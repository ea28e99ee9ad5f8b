"""What a batch carries, and the preprocessing of in-memory host batches in NumPy.

Fields (:class:`Fields`): images, labels, coarse labels, ids, the padding mask, captions and
their embeddings, as the data set has them. In-memory batches are finished here, with no
tf.data between the arrays and the device: CIFAR-style pad-crop-flip at the native size and
the normalisation are NumPy (the same float32 operations, in the same order, as the TensorFlow
ops of :mod:`jaxhash.data.augment`, so the same bits); crops that resample (resized crops,
other output sizes, encoded or on-disk images) call those TensorFlow ops eagerly on the batch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ml_dtypes
import numpy as np

from jaxhash.data import augment, captions, sources
from jaxhash.data.sharding import STRING
from jaxhash.data.tf_setup import tf

# Decoding threads for in-memory batches of encoded or on-disk images.
_DECODE_THREADS = 4


def caption_table(source):
    """The caption-embedding table of a captions source with embeddings enabled, else None."""
    cfg = source.config
    if not (source.has_captions and cfg.caption_embeddings):
        return None
    bc = source.builder.builder_config
    cache = cfg.embedding_cache or str(Path(sources.tfds_data_dir(cfg)) / "jaxhash_embeddings")
    return captions.caption_table(bc.tsv, bc.images_dir, bc.columns, cache)


class Fields:
    """What a batch of ``source`` carries, and its caption choices and embeddings."""

    def __init__(self, source):
        self.source = source
        self.labels = bool(source.class_names)
        self.coarse = "coarse_label" in source.keys
        self.captions = source.has_captions
        self.table = caption_table(source)

    def caption_rows(self, data, ids, u):
        """Chosen caption per example: the ``U_CAPTION`` uniform picks one of its captions."""
        counts = np.array([len(data.captions[i]) for i in ids])
        return np.minimum((u[:, augment.U_CAPTION] * counts).astype(np.int64), counts - 1)

    def embedding(self, index, choice):
        """``[B, E]`` embeddings of the chosen captions (or each image's mean caption)."""
        table = self.table
        if self.source.config.caption_target == "mean":
            return table.mean[index]
        return np.asarray(table.embeddings[table.offsets[index] + choice], np.float32)


def image_dtype(config):
    return ml_dtypes.bfloat16 if config.image_dtype == "bfloat16" else np.float32


def pad_crop_flip(
    images: np.ndarray, u: np.ndarray, padding: int, mode: str = "zeros"
) -> np.ndarray:
    """ "crop_flip" at the native size as integer gathers, ``[B, H, W, C]`` -> same shape:
    the NumPy form of :func:`jaxhash.data.augment.pad_crop_flip` (``mode="zeros"``), or with
    the border mirrored (``"reflect"``, NumPy's ``np.pad`` mode: the edge pixel not
    repeated)."""
    _, h, w, _ = images.shape
    span = np.float32(2.0 * padding + 1.0)
    dy = np.floor(u[:, augment.U_DY] * span).astype(np.int64)
    dx = np.floor(u[:, augment.U_DX] * span).astype(np.int64)
    flip = u[:, augment.U_FLIP] < 0.5
    pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    padded = np.pad(images, pads, mode="reflect" if mode == "reflect" else "constant")
    out = np.empty_like(images)
    for i, (y, x) in enumerate(zip(dy, dx, strict=True)):  # slices: 3x a fancy-index gather
        crop = padded[i, y : y + h, x : x + w]
        out[i] = crop[:, ::-1] if flip[i] else crop
    return out


def check_train_augmentation(source) -> None:
    """A ValueError when the augmentation options ask for what ``source``'s training batches
    cannot give: reflect padding needs in-memory arrays cropped at their own size ("crop_flip"),
    alternating flips need in-memory data (its per-example epochs)."""
    cfg = source.config
    exact = source.in_memory and source.image_kind == "array" and source.style == "crop_flip"
    if cfg.crop_padding_mode == "reflect" and not exact:
        raise ValueError(
            "config.data.crop_padding_mode='reflect' needs in-memory images cropped at their own "
            f"size (augment 'crop_flip'); {source.name} gives {source.style!r} crops "
            f"{'in memory' if source.in_memory else 'streamed'}: set data.in_memory=True and "
            "data.augment='crop_flip', or crop_padding_mode='zeros'."
        )
    if cfg.flip == "alternating" and not source.in_memory:
        raise ValueError(
            "config.data.flip='alternating' needs in-memory data (data.in_memory=True); "
            f"{source.name} is streamed here: set data.flip='random' or data.in_memory=True."
        )


def alternate_flips(u: np.ndarray, seed: int, epochs: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``u`` with its flip column set for alternating flips: example ``i`` is mirrored in
    epoch ``e`` when ``(v_i < 1/2) xor (e odd)``, ``v_i`` a uniform of (seed, id) alone."""
    from jaxhash.data.memory import example_uniforms

    first = example_uniforms(seed, np.zeros_like(epochs), ids, count=1)[:, 0] < 0.5
    flip = first ^ (np.asarray(epochs) % 2 == 1)
    u = u.copy()
    u[:, augment.U_FLIP] = np.where(flip, 0.25, 0.75)
    return u


def normalize(images: np.ndarray, mean, std, dtype) -> np.ndarray:
    """Pixels in [0, 255] -> ``(x / 255 - mean) / std`` in float32, then ``dtype``: the NumPy
    form of :func:`jaxhash.data.augment.normalize`."""
    x = images.astype(np.float32)
    np.divide(x, np.float32(255.0), out=x)  # in place: the same operations, one buffer
    np.subtract(x, np.asarray(mean, np.float32), out=x)
    np.divide(x, np.asarray(std, np.float32), out=x)
    return x.astype(dtype, copy=False)


def _boxes(source, heights, widths, u, train: bool):
    cfg = source.config
    if train:
        return augment.train_boxes(
            source.style,
            heights,
            widths,
            u,
            padding=cfg.crop_padding,
            scale=cfg.crop_scale,
            ratio=cfg.crop_ratio,
            crop_fraction=source.eval_crop_fraction,
        )
    return augment.eval_boxes(heights, widths, source.eval_crop_fraction)


def _one_image(source, raw, u, train: bool) -> np.ndarray:
    """Decode (``image_kind`` "encoded" bytes or a "path") and crop one image: float32."""
    raw = tf.io.read_file(raw) if source.image_kind == "path" else tf.constant(raw)
    image = augment.decode(raw)
    shape = tf.shape(image)
    boxes = _boxes(source, shape[None, 0], shape[None, 1], tf.constant(u[None]), train)
    return augment.crop_resize(image[None], boxes, source.image_size)[0].numpy()


def _images(source, images: np.ndarray, u: np.ndarray, train: bool) -> np.ndarray:
    """Cropped, resized images ``[B, S, S, 3]`` (uint8 or float32) of a host batch."""
    size = source.image_size
    if source.image_kind != "array":
        with ThreadPoolExecutor(_DECODE_THREADS) as pool:  # TF releases the GIL in its kernels
            return np.stack(list(pool.map(lambda r, v: _one_image(source, r, v, train), images, u)))
    same_size = images.shape[1:3] == (size, size)
    if train and source.style == "crop_flip" and same_size:  # exact integer shifts
        cfg = source.config
        return pad_crop_flip(images, u, cfg.crop_padding, cfg.crop_padding_mode)
    if not train and same_size and source.eval_crop_fraction == 1.0:
        return images  # the whole image at its size: nothing to resample
    n, h, w = images.shape[:3]
    boxes = _boxes(source, tf.fill([n], h), tf.fill([n], w), tf.constant(u), train)
    return augment.crop_resize(tf.constant(images), boxes, size).numpy()


def finish(source, batch: dict[str, np.ndarray], train: bool) -> dict[str, np.ndarray]:
    """A host batch of raw rows (with uniforms ``u``) -> the delivered batch: images cropped
    and normalised, padded rows zeroed, ``u`` dropped."""
    batch = dict(batch)
    u = batch.pop("u")
    image = normalize(
        _images(source, batch["image"], u, train),
        source.mean,
        source.std,
        image_dtype(source.config),
    )
    if not train:  # padded rows (training batches have none)
        image = np.where(batch["mask"][:, None, None, None], image, np.zeros((), image.dtype))
    batch["image"] = image
    return batch


def decode_captions(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Caption bytes (as TensorFlow gives them) -> ``str`` objects."""
    if "caption" in batch:
        batch["caption"] = np.array([t.decode("utf-8") for t in batch["caption"]], STRING)
    return batch
