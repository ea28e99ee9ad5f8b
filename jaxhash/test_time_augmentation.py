"""The evaluation encoder ``z(variables, images)``, optionally averaged over test-time views.

Codes are ``sign(mean_v z(view_v(x)))``: the mean of the real-valued outputs over the views,
then the sign (``config.eval.tta``):

* ``"none"``: ``z(x)``.
* ``"flip"``: ``(z(x) + z(mirror x)) / 2``.
* ``"flip_translate"``: ``m(x) / 2 + (m(shift_-1 x) + m(shift_+1 x)) / 4`` with ``m`` the flip
  mean and ``shift_s`` a translation by ``s`` pixels on both axes of the image reflect-padded
  by one pixel (six passes; airbench's level-2 test-time augmentation, arXiv 2404.00498).

The views are array operations on the normalised batch inside the jitted encoder, so they work
for every data source and input size.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

VIEWS = ("none", "flip", "flip_translate")


def translations(images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``images`` ``[B, H, W, C]`` shifted by one pixel up-left and down-right (reflect pad)."""
    h, w = images.shape[1:3]
    padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    return padded[:, :h, :w], padded[:, 2 : h + 2, 2 : w + 2]


def encoder(model, views: str = "none") -> Callable[[dict, jax.Array], jax.Array]:
    """``z(variables, images [B, H, W, 3]) -> float32 [B, K]`` of ``model`` in evaluation
    mode, averaged over ``views`` (one of :data:`VIEWS`)."""
    if views not in VIEWS:
        raise ValueError(f"config.eval.tta must be one of {VIEWS}; got {views!r}.")

    def plain(variables, images):
        return model.apply(variables, images, train=False)["z"]

    def mirrored(variables, images):
        return 0.5 * (plain(variables, images) + plain(variables, images[:, :, ::-1]))

    def shifted(variables, images):
        up_left, down_right = translations(images)
        pair = 0.5 * (mirrored(variables, up_left) + mirrored(variables, down_right))
        return 0.5 * mirrored(variables, images) + 0.5 * pair

    return {"none": plain, "flip": mirrored, "flip_translate": shifted}[views]
