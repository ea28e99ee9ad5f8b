"""Image preprocessing in TensorFlow: crops as boxes, one ``crop_and_resize``, normalisation.

Every train and eval transform is a box per image (normalised ``[y1, x1, y2, x2]``; ``x1 > x2``
mirrors the crop) followed by one bilinear ``tf.image.crop_and_resize`` to the output size,
whose ``extrapolation_value=0`` gives the zero padding of padded crops. The boxes are a function
of per-example uniforms ``u`` ``[B, NUM_UNIFORMS]`` in [0, 1), which the pipeline derives from
(seed, epoch, example id), so augmentation is deterministic and restartable.

* "crop_flip" (CIFAR-style, 32x32): zero-pad ``padding`` pixels, random crop of the original
  size, horizontal flip with probability 1/2 (He et al. 2016, sec. 4.2).
* "resized_crop_flip" (ImageNet-style): random crop of area fraction in ``scale`` and aspect
  ratio in ``ratio`` (log-uniform), 10 attempts then a central fallback, resized to the output
  size, flip with probability 1/2 (Szegedy et al. 2015, "Inception"; torchvision's
  ``RandomResizedCrop``).
* eval / "none": central square crop of ``crop_fraction`` of the shorter side, resized
  (0.875: the usual resize-256 / crop-224).
"""

from __future__ import annotations

import math

from jaxhash.data.tf_setup import tf

# Layout of the per-example uniforms.
U_FLIP, U_CAPTION, U_DY, U_DX, U_CROP = 0, 1, 2, 3, 4
CROP_ATTEMPTS = 10
NUM_UNIFORMS = U_CROP + 4 * CROP_ATTEMPTS


def _box(y0, x0, ch, cw, h, w):
    """Normalised box whose samples fall on pixel centres ``y0 .. y0 + ch - 1`` (float32)."""
    hm, wm = tf.maximum(h - 1.0, 1.0), tf.maximum(w - 1.0, 1.0)
    return tf.stack([y0 / hm, x0 / wm, (y0 + ch - 1.0) / hm, (x0 + cw - 1.0) / wm], axis=-1)


def _mirror(boxes, flip):
    """Swap x1 and x2 where ``flip``: crop_and_resize then samples right to left."""
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    return tf.stack([y1, tf.where(flip, x2, x1), y2, tf.where(flip, x1, x2)], axis=-1)


def eval_boxes(heights, widths, crop_fraction: float):
    """Central square crops of side ``crop_fraction * min(h, w)``: ``[B, 4]``."""
    h, w = tf.cast(heights, tf.float32), tf.cast(widths, tf.float32)
    side = tf.maximum(tf.round(crop_fraction * tf.minimum(h, w)), 1.0)
    return _box(tf.floor((h - side) / 2), tf.floor((w - side) / 2), side, side, h, w)


def train_boxes(style: str, heights, widths, u, *, padding: int, scale, ratio, crop_fraction):
    """Random crops ``[B, 4]`` of images ``[B]`` x ``[B]`` pixels, from uniforms ``u``."""
    h, w = tf.cast(heights, tf.float32), tf.cast(widths, tf.float32)
    flip = u[:, U_FLIP] < 0.5
    if style == "none":
        return eval_boxes(heights, widths, crop_fraction)
    if style == "crop_flip":
        span = 2.0 * padding + 1.0
        dy = tf.floor(u[:, U_DY] * span) - padding
        dx = tf.floor(u[:, U_DX] * span) - padding
        return _mirror(_box(dy, dx, h, w, h, w), flip)
    if style != "resized_crop_flip":
        raise ValueError(f"unknown augmentation style {style!r}.")
    attempts = tf.reshape(u[:, U_CROP:], [-1, CROP_ATTEMPTS, 4])
    area = (h * w)[:, None]
    target = area * (scale[0] + (scale[1] - scale[0]) * attempts[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = tf.exp(log_lo + (log_hi - log_lo) * attempts[..., 1])
    cw = tf.round(tf.sqrt(target * aspect))
    ch = tf.round(tf.sqrt(target / aspect))
    fits = (cw >= 1) & (ch >= 1) & (cw <= w[:, None]) & (ch <= h[:, None])
    y0 = tf.floor(attempts[..., 2] * (h[:, None] - ch + 1.0))
    x0 = tf.floor(attempts[..., 3] * (w[:, None] - cw + 1.0))
    first = tf.argmax(tf.cast(fits, tf.int32), axis=1, output_type=tf.int32)  # 0 if none fits
    pick = lambda t: tf.gather(t, first, axis=1, batch_dims=1)  # noqa: E731
    any_fits = tf.reduce_any(fits, axis=1)
    # Fallback (torchvision): the whole image, cut to the nearest allowed aspect ratio, centred.
    in_ratio = w / h
    fw = tf.where(in_ratio > ratio[1], tf.round(h * ratio[1]), w)
    fh = tf.where(in_ratio < ratio[0], tf.round(w / ratio[0]), h)
    fy, fx = tf.floor((h - fh) / 2), tf.floor((w - fw) / 2)
    boxes = _box(
        tf.where(any_fits, pick(y0), fy),
        tf.where(any_fits, pick(x0), fx),
        tf.where(any_fits, pick(ch), fh),
        tf.where(any_fits, pick(cw), fw),
        h,
        w,
    )
    return _mirror(boxes, flip)


def pad_crop_flip(images, u, padding: int):
    """ "crop_flip" at the native size as integer gathers: ``[B, H, W, C]`` -> same shape.

    Equal to :func:`crop_resize` of the "crop_flip" boxes (whose samples fall on pixel
    centres) when the output size is the input size, at half the cost.
    """
    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    span = 2.0 * padding + 1.0
    dy = tf.cast(tf.floor(u[:, U_DY] * span), tf.int32)
    dx = tf.cast(tf.floor(u[:, U_DX] * span), tf.int32)
    rows = dy[:, None] + tf.range(h)[None]
    cols = dx[:, None] + tf.range(w)[None]
    cols = tf.where((u[:, U_FLIP] < 0.5)[:, None], tf.reverse(cols, [1]), cols)
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def crop_resize(images, boxes, size: int):
    """``[B, H, W, C]`` (any real dtype) and boxes ``[B, 4]`` -> float32 ``[B, size, size, C]``."""
    index = tf.range(tf.shape(images)[0])
    return tf.image.crop_and_resize(
        images, boxes, index, [size, size], method="bilinear", extrapolation_value=0.0
    )


def normalize(images, mean, std, dtype):
    """Pixels in [0, 255] -> ``(x / 255 - mean) / std`` in ``dtype``."""
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return tf.cast((images / 255.0 - mean) / std, dtype)


def decode(encoded):
    """JPEG / PNG / GIF / BMP bytes -> uint8 ``[H, W, 3]`` (grey and RGBA converted)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image
