"""The TensorFlow image ops (jaxhash.data.augment): resized-crop boxes."""

import numpy as np

from jaxhash.data import augment


def test_resized_crop_boxes_respect_scale_and_ratio():
    """Inside the image, area fraction in [0.08, 1] and aspect ratio in [3/4, 4/3] (up to
    pixel rounding), mirrored exactly when the flip uniform is below 1/2."""
    rng = np.random.default_rng(0)
    n = 2000
    heights, widths = rng.integers(100, 500, n), rng.integers(100, 500, n)
    u = rng.uniform(size=(n, augment.NUM_UNIFORMS)).astype(np.float32)
    boxes = np.asarray(
        augment.train_boxes(
            "resized_crop_flip",
            heights,
            widths,
            u,
            padding=0,
            scale=(0.08, 1.0),
            ratio=(0.75, 4 / 3),
            crop_fraction=1.0,
        )
    )
    y1, x1, y2, x2 = boxes.T
    np.testing.assert_array_equal(x1 > x2, u[:, augment.U_FLIP] < 0.5)
    x1, x2 = np.minimum(x1, x2), np.maximum(x1, x2)
    eps = 1e-6
    assert np.all((y1 >= -eps) & (x1 >= -eps) & (y2 <= 1 + eps) & (x2 <= 1 + eps))
    ch = np.round((y2 - y1) * (heights - 1)) + 1
    cw = np.round((x2 - x1) * (widths - 1)) + 1
    area = ch * cw / (heights * widths)
    assert np.all((area >= 0.08 * 0.95) & (area <= 1 + eps))
    aspect = cw / ch
    assert np.all((aspect >= 0.75 * 0.97) & (aspect <= 4 / 3 * 1.03))
    assert np.std(area) > 0.2  # spread over the range, not stuck at a fallback
