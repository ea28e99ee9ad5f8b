"""``synthetic_hierarchy``: the embedded default data set, generated on the machine (no download).

64 classes on a known three-level tree, carried visually by 32x32 RGB images:

    root -> shape family (4: round, box, triangle, star)            = coarse_label
         -> colour family (4 per shape: red, green, blue, yellow)   = mid_label (16)
         -> texture (4 per colour: solid, striped, dotted, checkered) = label (64 leaves)

Class ``k`` is ``SHAPES[k // 16] / COLOURS[k // 4 % 4] / TEXTURES[k % 4]``, e.g.
``"star/blue/dotted"``. Each image shows one main object of its class (radius 8-12 px, random
position, rotation, aspect ratio, hue/saturation/value jitter inside the colour family,
texture period and phase) over a cluttered background (colour gradient, low-frequency noise,
1-3 smaller distractor objects of random shape, hue and texture), then contrast and brightness
jitter and pixel noise. Measured on the default build: ridge regression on raw pixels gets 6%
of the 64 leaves right (chance 1.6%), a 6-layer CNN (16-32-64 channels, 3,000 Adam steps of
64 images with this package's pipeline) 93.5% (95.4% of the shapes); see
jaxhash/data/README.md.

Rendering is vectorised NumPy (:func:`render`), a pure function of the seed; the TFDS builder
:class:`SyntheticHierarchy` (name ``"synthetic_hierarchy"``) stores it as a regular TFDS data
set. Default size: 256 train + 64 test images per class (16,384 + 4,096).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from jaxhash.semantics.hierarchy import ClassHierarchy

SHAPES = ("round", "box", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow")
TEXTURES = ("solid", "striped", "dotted", "checkered")
IMAGE_SIZE = 32
NUM_CLASSES = len(SHAPES) * len(COLOURS) * len(TEXTURES)
ROOT = "root"

#: Hue centre (degrees) of each colour family; a main object's hue is within +-HUE_JITTER.
HUE_CENTRES = (0.0, 120.0, 225.0, 55.0)
HUE_JITTER = 14.0
# Images are rendered in chunks with their own random streams: the chunk size is part of the
# data set's definition (changing it changes the images), so it is a constant.
_CHUNK = 1024
_MAX_DISTRACTORS = 3
# Distractors are drawn on an 18 x 18 window: it holds a whole one (radius <= 6 px, times the
# largest aspect stretch 1.25, plus the anti-aliased edge). The main object uses the image.
_DISTRACTOR_WINDOW = 18


def class_names() -> tuple[str, ...]:
    """The 64 leaf names in label order: ``"shape/colour/texture"``."""
    return tuple(f"{s}/{c}/{t}" for s in SHAPES for c in COLOURS for t in TEXTURES)


def coarse_names() -> tuple[str, ...]:
    """The 4 shape families (``coarse_label``)."""
    return SHAPES


def mid_names() -> tuple[str, ...]:
    """The 16 ``shape/colour`` nodes (``mid_label``)."""
    return tuple(f"{s}/{c}" for s in SHAPES for c in COLOURS)


def coarse_of(label):
    """Shape family of a leaf label (array or int): ``label // 16``."""
    return label // (len(COLOURS) * len(TEXTURES))


def mid_of(label):
    """``shape/colour`` node of a leaf label: ``label // 4``."""
    return label // len(TEXTURES)


@functools.cache
def hierarchy() -> ClassHierarchy:
    """The shipped three-level tree, classes in label order (height 3)."""
    edges = []
    for shape in SHAPES:
        edges.append((ROOT, shape))
        for colour in COLOURS:
            edges.append((shape, f"{shape}/{colour}"))
            edges.extend(
                (f"{shape}/{colour}", f"{shape}/{colour}/{texture}") for texture in TEXTURES
            )
    return ClassHierarchy.from_parent_child(edges, class_names())


# ----------------------------------------------------------------------------- rendering


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Output of :func:`render`; the extra fields let tests check what the pixels carry.

    Attributes:
      images: ``[N, 32, 32, 3]`` uint8.
      labels: ``[N]`` int64 leaf labels (as given).
      object_mask: ``[N, 32, 32]`` bool, pixels where the main object is opaque (>= 0.5).
      object_rgb: ``[N, 3]`` float32 in [0, 1], the main object's base colour.
    """

    images: np.ndarray
    labels: np.ndarray
    object_mask: np.ndarray
    object_rgb: np.ndarray


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB; ``h`` in degrees, s and v in [0, 1]; returns ``[..., 3]``."""
    h = np.mod(h, 360.0) / 60.0
    c = v * s
    x = c * (1.0 - np.abs(np.mod(h, 2.0) - 1.0))
    m = v - c
    sector = np.floor(h).astype(np.int64) % 6
    zero = np.zeros_like(c)
    r = np.choose(sector, [c, x, zero, zero, x, c])
    g = np.choose(sector, [x, c, c, x, zero, zero])
    b = np.choose(sector, [zero, zero, x, c, c, x])
    return np.stack([r + m, g + m, b + m], axis=-1).astype(np.float32)


def _shape_level(shape, u, v, aspect):
    """Level function of a unit-radius shape: < 1 inside, 1 on the edge.

    ``shape`` ``[N]`` int, ``u, v`` ``[N, H, W]`` object coordinates (radius units), ``aspect``
    ``[N, 1, 1]``. Each image's family is computed on its rows only.
    """
    out = np.empty_like(u)
    for family in range(len(SHAPES)):
        rows = np.flatnonzero(shape == family)
        if rows.size == 0:
            continue
        pu, pv, a = u[rows], v[rows], aspect[rows]
        if family == 0:  # round: an ellipse
            level = np.sqrt((pu / a) ** 2 + (pv * a) ** 2)
        elif family == 1:  # box: a rectangle of half-sides 0.8 a, 0.8 / a
            level = np.maximum(np.abs(pu) / a, np.abs(pv) * a) * np.float32(1.25)
        elif family == 2:  # triangle: equilateral, inradius 0.5
            level = np.maximum(
                np.maximum(pv, pu * np.float32(-0.8660254) - pv * np.float32(0.5)),
                pu * np.float32(0.8660254) - pv * np.float32(0.5),
            ) * np.float32(2.0)
        else:  # star: five points at radius 1, inner radius 0.45
            radius = np.sqrt(pu * pu + pv * pv)
            phase = np.mod(np.arctan2(pv, pu) * np.float32(5.0 / (2.0 * np.pi)), 1.0)
            spike = 1.0 - 2.0 * np.abs(phase - 0.5)  # 1 at a point, 0 between points
            level = radius / (0.45 + 0.55 * (1.0 - spike))
        out[rows] = level
    return out


def _texture(texture, pu, pv, period):
    """Texture intensity in [0, 1] (0 = base colour) at pixel offsets ``pu, pv`` (object frame).

    ``texture`` ``[N]`` int, ``pu, pv`` ``[N, H, W]``, ``period`` ``[N, 1, 1]`` pixels.
    """
    out = np.zeros_like(pu)
    w = np.float32(2.0 * np.pi) / period
    for kind in range(1, len(TEXTURES)):  # 0 (solid) stays 0
        rows = np.flatnonzero(texture == kind)
        if rows.size == 0:
            continue
        su, sv = np.sin(w[rows] * pu[rows]), np.sin(w[rows] * pv[rows])
        if kind == 1:  # striped
            value = 3.0 * su
        elif kind == 2:  # dotted: peaks of cos + cos (sin shifted by a quarter period)
            cu, cv = np.sin(w[rows] * pu[rows] + np.pi / 2), np.sin(w[rows] * pv[rows] + np.pi / 2)
            value = 4.0 * (cu + cv - 1.0)
        else:  # checkered
            value = 3.0 * su * sv
        out[rows] = 0.5 + 0.5 * np.clip(value, -1.0, 1.0)
    return out


def _draw(canvas, rng, *, shape, rgb, texture, centre, radius, angle, aspect, active, window):
    """Alpha-blend one object per image onto ``canvas`` ``[N, S, S, 3]`` (in place).

    Per-image parameters are ``[N]`` (``centre`` ``[N, 2]`` as (y, x) in pixels, ``rgb``
    ``[N, 3]``); ``active`` ``[N]`` bool skips images. Only a ``window`` x ``window`` square
    around each centre is computed, shifted to lie inside the image (it still holds the part of
    the object that is inside, as long as ``window`` exceeds the object's diameter). Returns the
    object's alpha on that window, ``[N, window, window]``, and the window's corner ``[N, 2]``.
    """
    n = canvas.shape[0]
    col = lambda a: np.asarray(a, np.float32).reshape(n, 1, 1)  # noqa: E731
    corner = np.clip(np.floor(centre).astype(np.int64) - window // 2, 0, IMAGE_SIZE - window)
    grid = np.arange(window, dtype=np.float32) + 0.5
    dy = grid[None, :, None] + col(corner[:, 0] - centre[:, 0])
    dx = grid[None, None, :] + col(corner[:, 1] - centre[:, 1])
    cos, sin = col(np.cos(angle)), col(np.sin(angle))
    pu, pv = cos * dx + sin * dy, -sin * dx + cos * dy  # pixel offsets in the object frame
    r = col(radius)
    level = _shape_level(np.asarray(shape), pu / r, pv / r, col(aspect))
    # ~1 px anti-aliased edge: the level function grows by about 1/radius per pixel.
    alpha = np.clip((1.0 - level) * r + 0.5, 0.0, 1.0) * col(active)
    period = col(rng.uniform(3.6, 5.0, n))
    phase_u, phase_v = col(rng.uniform(0, 10, n)), col(rng.uniform(0, 10, n))
    shade = _texture(np.asarray(texture), pu + phase_u, pv + phase_v, period)
    colour = rgb[:, None, None, :] * (1.0 - 0.6 * shade[..., None])
    if window == IMAGE_SIZE:
        canvas += alpha[..., None] * (colour - canvas)
    else:
        rows = np.arange(n)[:, None, None]
        ys = corner[:, 0, None, None] + np.arange(window)[None, :, None]
        xs = corner[:, 1, None, None] + np.arange(window)[None, None, :]
        patch = canvas[rows, ys, xs]  # [N, window, window, 3]
        patch += alpha[..., None] * (colour - patch)
        canvas[rows, ys, xs] = patch
    return alpha


def _render_chunk(labels: np.ndarray, rng: np.random.Generator) -> Rendered:
    n = labels.shape[0]
    size = IMAGE_SIZE
    shape = coarse_of(labels)
    colour = mid_of(labels) % len(COLOURS)
    texture = labels % len(TEXTURES)

    # Background: a random low-saturation gradient plus low-frequency colour noise.
    yy, xx = np.meshgrid(
        np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij"
    )
    c0 = _hsv_to_rgb(rng.uniform(0, 360, n), rng.uniform(0, 0.4, n), rng.uniform(0.25, 0.85, n))
    c1 = _hsv_to_rgb(rng.uniform(0, 360, n), rng.uniform(0, 0.4, n), rng.uniform(0.25, 0.85, n))
    phi = rng.uniform(0, 2 * np.pi, n).astype(np.float32).reshape(n, 1, 1)
    t = ((xx - size / 2) * np.cos(phi) + (yy - size / 2) * np.sin(phi)) / size + 0.5
    canvas = c0[:, None, None] + (c1 - c0)[:, None, None] * np.clip(t, 0, 1)[..., None]
    coarse_noise = rng.normal(0.0, 0.07, (n, 4, 4, 3)).astype(np.float32)
    canvas += np.repeat(np.repeat(coarse_noise, size // 4, axis=1), size // 4, axis=2)

    # Distractors: smaller objects of any shape, hue and texture, under the main object.
    count = rng.integers(1, _MAX_DISTRACTORS + 1, n)
    for k in range(_MAX_DISTRACTORS):
        _draw(
            canvas,
            rng,
            shape=rng.integers(0, len(SHAPES), n),
            rgb=_hsv_to_rgb(rng.uniform(0, 360, n), rng.uniform(0.3, 1, n), rng.uniform(0.3, 1, n)),
            texture=rng.integers(0, len(TEXTURES), n),
            centre=rng.uniform(0, size, (n, 2)),
            radius=rng.uniform(3.0, 6.0, n),
            angle=rng.uniform(0, 2 * np.pi, n),
            aspect=rng.uniform(0.8, 1.25, n),
            active=k < count,
            window=_DISTRACTOR_WINDOW,
        )

    # The main object of the class.
    radius = rng.uniform(8.0, 12.0, n)
    margin = 0.6 * radius[:, None]
    centre = margin + rng.uniform(0, 1, (n, 2)) * (size - 2 * margin)
    hue = np.asarray(HUE_CENTRES)[colour] + rng.uniform(-HUE_JITTER, HUE_JITTER, n)
    rgb = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0, n), rng.uniform(0.6, 1.0, n))
    alpha = _draw(
        canvas,
        rng,
        shape=shape,
        rgb=rgb,
        texture=texture,
        centre=centre,
        radius=radius,
        angle=rng.uniform(0, 2 * np.pi, n),
        aspect=rng.uniform(0.8, 1.25, n),
        active=np.ones(n, bool),
        window=IMAGE_SIZE,
    )

    # Camera: contrast and brightness jitter, pixel noise.
    contrast = rng.uniform(0.8, 1.2, (n, 1, 1, 1)).astype(np.float32)
    brightness = rng.uniform(-0.08, 0.08, (n, 1, 1, 1)).astype(np.float32)
    canvas = (canvas - 0.5) * contrast + (0.5 + brightness)
    canvas += np.float32(0.04) * rng.standard_normal(canvas.shape, dtype=np.float32)
    images = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
    return Rendered(images, labels.astype(np.int64), alpha >= 0.5, rgb)


def render(labels, seed: int, stream: int = 0) -> Rendered:
    """Images of the given leaf labels; a pure function of ``(labels, seed, stream)``.

    Args:
      labels: ``[N]`` ints in ``[0, 64)``.
      seed: the data set's seed.
      stream: independent random stream (the builder uses 0 for train, 1 for test).

    Returns:
      :class:`Rendered` (``images`` ``[N, 32, 32, 3]`` uint8). Chunk ``k`` of 1,024 images
      draws from the random stream ``(seed, stream, k)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array; got {labels.dtype} {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(
            f"labels must lie in [0, {NUM_CLASSES}); got {labels.min()}..{labels.max()}."
        )
    parts = [
        _render_chunk(labels[i : i + _CHUNK], np.random.default_rng([seed, stream, i // _CHUNK]))
        for i in range(0, max(labels.size, 1), _CHUNK)
    ]
    return Rendered(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Rendered))
    )


def split_labels(num_per_class: int) -> np.ndarray:
    """Labels of a balanced split in generation order: example ``i`` has label ``i % 64``."""
    return np.arange(num_per_class * NUM_CLASSES, dtype=np.int64) % NUM_CLASSES
