"""The model's evaluation view of an image as pixels: for pictures, and for image files.

The evaluation pipeline hands the model ``(crop_resize(image) / 255 - mean) / std``: a central
square crop of side ``eval_crop_fraction * min(H, W)`` resized (bilinear) to ``S x S``
(:func:`jaxhash.data.augment.eval_boxes`), then normalised. This module gives

* :func:`example_pixels`: the cropped, **unnormalised** uint8 pixels of chosen examples of a
  split, by id (the rows of :func:`jaxhash.data.load_split`), for retrieval pictures. In-memory
  data sets (the usual case, and image folders held as paths) are read back by id and only
  those rows are cropped; streamed ones take one pass over the evaluation batches, undoing the
  normalisation (:func:`denormalize`) on the wanted rows and stopping once all are found.
* :func:`file_view`: an image file of any size and format Pillow reads (JPEG, PNG, BMP, GIF,
  WebP, TIFF, ...) cropped and resized the same way, float32 in [0, 255]; normalise it with
  :func:`jaxhash.data.preprocess.normalize` to feed the model.
"""

from __future__ import annotations

import os

import numpy as np

from jaxhash.data import augment, sources
from jaxhash.data.preprocess import _images
from jaxhash.data.tf_setup import tf


def denormalize(images, mean, std) -> np.ndarray:
    """Normalised images ``(x / 255 - mean) / std`` -> uint8 pixels ``round(255 (x std +
    mean))``, clipped to [0, 255] (the inverse of :func:`jaxhash.data.preprocess.normalize`)."""
    x = np.asarray(images, np.float32)
    x = (x * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) * np.float32(255.0)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def to_uint8(images) -> np.ndarray:
    """Pixels in [0, 255] (any real dtype) -> uint8, rounded and clipped."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images.astype(np.float32)), 0, 255).astype(np.uint8)


def example_pixels(config, split: str, ids) -> np.ndarray:
    """uint8 ``[n, S, S, 3]``: the evaluation view of examples ``ids`` of ``split``, unnormalised.

    ``config``: an experiment config or data block (see :func:`jaxhash.data.data_config`).
    """
    source = sources.open_source(config)
    ids = np.asarray(ids, np.int64).ravel()
    if ids.size == 0:
        size = source.image_size
        return np.zeros((0, size, size, 3), np.uint8)
    if source.in_memory:
        rows = source.load(split).images[ids]
        u = np.zeros((len(ids), augment.NUM_UNIFORMS), np.float32)  # unused by eval crops
        return to_uint8(_images(source, rows, u, train=False))
    return _streamed_pixels(source, split, ids)


def _streamed_pixels(source, split: str, ids: np.ndarray) -> np.ndarray:
    from jaxhash.data.pipeline import host_eval_batches

    wanted = set(ids.tolist())
    found: dict[int, np.ndarray] = {}
    batches = host_eval_batches(source.config, split, process_index=0, process_count=1)
    try:
        for batch in batches:
            rows = [i for i, id_ in enumerate(np.asarray(batch["id"]).tolist()) if id_ in wanted]
            for i in rows:
                found[int(batch["id"][i])] = denormalize(batch["image"][i], source.mean, source.std)
            if len(found) == len(wanted):
                break
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"ids {missing[:5]} are not examples of split {split!r}.")
    return np.stack([found[int(i)] for i in ids])


def file_view(path: str | os.PathLike, image_size: int, crop_fraction: float) -> np.ndarray:
    """float32 ``[S, S, 3]`` in [0, 255]: the image file at ``path`` as the evaluation pipeline
    crops it (central square of side ``crop_fraction * min(H, W)``, bilinear to ``S``).

    Raises ValueError naming the file when Pillow cannot read it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), np.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    h, w = pixels.shape[:2]
    boxes = augment.eval_boxes(tf.constant([h]), tf.constant([w]), crop_fraction)
    return augment.crop_resize(tf.constant(pixels[None]), boxes, image_size)[0].numpy()


__all__ = ["denormalize", "example_pixels", "file_view", "to_uint8"]
