"""Procedurally drawn demo scenes: filled shapes on textured, noisy backgrounds.

Every scene is a pure function of its seed. It shows one or two *filled* shapes of its
class (``circle``, ``square``, ``triangle`` or ``star``; upright, tilted by up to 20°) in
random colours, sizes and places, and sometimes a *hollow* (outlined) shape of another class
as a distractor: the label is the class of the filled shapes. Backgrounds mix a random colour
gradient, a blotchy low-frequency texture, sometimes stripes, and pixel noise over everything.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from camkit.errors import ConfigurationError

__all__ = ["CLASS_NAMES", "SCENE_SIZE", "Box", "make_scene"]

SCENE_SIZE = 128
"""Side of every scene in pixels (scenes are ``SCENE_SIZE × SCENE_SIZE`` RGB)."""
CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star")
"""The shape classes, in label order."""
Box = tuple[int, int, int, int]
"""A pixel box ``(x0, y0, x1, y1)``; ``x1`` and ``y1`` are exclusive."""

TWO_INSTANCES_P = 0.25
"""Probability of two instances of the labelled class (when not overridden)."""
DISTRACTOR_P = 0.3
"""Probability of a hollow distractor of another class (when not overridden)."""
MIN_SIZE, MAX_SIZE = 18, 40
"""Smallest and largest shape extent (circumscribed-circle diameter) in pixels."""
MAX_TILT = math.radians(20.0)
"""Largest tilt of a polygon away from upright, in radians (20°)."""
_GAP = 3
"""Free pixels kept between the boxes of any two shapes."""
_SHIFT = 4
"""Sub-pixel bits of the coordinates given to OpenCV's drawing functions."""
_MIN_CONTRAST = 90.0
"""Smallest RGB distance between a shape's colour and the background under it."""


def _background(rng: np.random.Generator) -> NDArray[np.float32]:
    size = SCENE_SIZE
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / np.float32(size - 1)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ramp = (math.cos(angle) * xs + math.sin(angle) * ys).astype(np.float32)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    start = rng.uniform(0.0, 255.0, 3).astype(np.float32)
    end = rng.uniform(0.0, 255.0, 3).astype(np.float32)
    image = start + ramp[:, :, None] * (end - start)
    # Blotchy texture: coarse random noise, smoothly upsampled.
    cells = int(rng.integers(3, 10))
    coarse = rng.normal(0.0, rng.uniform(5.0, 30.0), (cells, cells, 3)).astype(np.float32)
    image += cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        period = rng.uniform(5.0, 24.0)
        stripe_angle = rng.uniform(0.0, math.pi)
        phase = rng.uniform(0.0, 2.0 * math.pi)
        wave = np.sin(
            (math.cos(stripe_angle) * xs + math.sin(stripe_angle) * ys)
            * (2.0 * math.pi * (size - 1) / period)
            + phase
        ).astype(np.float32)
        tint = rng.uniform(-1.0, 1.0, 3).astype(np.float32)
        image += wave[:, :, None] * (tint * np.float32(rng.uniform(8.0, 35.0)))
    return np.asarray(image, dtype=np.float32)


def _vertices(
    kind: int, cx: float, cy: float, radius: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Polygon vertices ``(N, 2)`` of an upright, slightly tilted square, triangle or star of
    circumradius ``radius``."""
    tilt = rng.uniform(-MAX_TILT, MAX_TILT)
    if kind == 1:  # square, sides axis-aligned before the tilt
        angles = tilt + math.pi / 4.0 + np.arange(4) * (math.pi / 2.0)
        radii = np.full(4, radius)
    elif kind == 2:  # equilateral triangle, apex up
        angles = tilt - math.pi / 2.0 + np.arange(3) * (2.0 * math.pi / 3.0)
        radii = np.full(3, radius)
    else:  # five-pointed star, a point up
        angles = tilt - math.pi / 2.0 + np.arange(10) * (math.pi / 5.0)
        inner = radius * rng.uniform(0.38, 0.5)
        radii = np.where(np.arange(10) % 2 == 0, radius, inner)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def _shape_mask(
    kind: int, cx: float, cy: float, radius: float, hollow: bool, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """Anti-aliased coverage mask (0-255) of one shape."""
    mask = np.zeros((SCENE_SIZE, SCENE_SIZE), dtype=np.uint8)
    scale = 1 << _SHIFT
    thickness = int(rng.integers(2, 4)) if hollow else -1
    if kind == 0:
        centre = (round(cx * scale), round(cy * scale))
        cv2.circle(mask, centre, round(radius * scale), 255, thickness, cv2.LINE_AA, _SHIFT)
        return mask
    # Outlines are drawn inside the polygon so that they stay within the shape's extent.
    inset = radius - (thickness / 2.0 if hollow else 0.0)
    points = np.rint(_vertices(kind, cx, cy, inset, rng) * scale).astype(np.int32)
    if hollow:
        cv2.polylines(mask, [points], True, 255, thickness, cv2.LINE_AA, _SHIFT)
    else:
        cv2.fillPoly(mask, [points], 255, cv2.LINE_AA, _SHIFT)
    return mask


def _place(
    rng: np.random.Generator, taken: list[tuple[float, float, float, float]]
) -> tuple[float, float, float]:
    """Pick a centre and circumradius whose square extent keeps ``_GAP`` from ``taken``."""
    size = float(rng.integers(MIN_SIZE, MAX_SIZE + 1))
    while True:
        radius = size / 2.0
        for _ in range(100):
            cx = rng.uniform(radius + 1.0, SCENE_SIZE - 1.0 - radius)
            cy = rng.uniform(radius + 1.0, SCENE_SIZE - 1.0 - radius)
            box = (cx - radius, cy - radius, cx + radius, cy + radius)
            if all(
                box[0] >= other[2] + _GAP
                or other[0] >= box[2] + _GAP
                or box[1] >= other[3] + _GAP
                or other[1] >= box[3] + _GAP
                for other in taken
            ):
                taken.append(box)
                return cx, cy, radius
        size = max(size - 2.0, 8.0)


def _colour(
    rng: np.random.Generator, background: NDArray[np.float32], mask: NDArray[np.uint8]
) -> NDArray[np.float32]:
    """A random colour that stands out from the background under ``mask``."""
    under = background[mask > 0].mean(axis=0) if mask.any() else background.mean(axis=(0, 1))
    best = rng.uniform(0.0, 255.0, 3).astype(np.float32)
    for _ in range(30):
        if float(np.linalg.norm(best - under)) >= _MIN_CONTRAST:
            return best
        best = rng.uniform(0.0, 255.0, 3).astype(np.float32)
    # Fall back to the colour opposite the background (always far enough from it).
    return np.where(under < 128.0, 255.0, 0.0).astype(np.float32)


def make_scene(
    seed: int, *, instances: int | None = None, distractor: bool | None = None
) -> tuple[NDArray[np.uint8], int, list[Box]]:
    """Draw demo scene ``seed``.

    The scene depends on ``seed`` alone (not on any global random state): the same seed
    always gives the same bytes. The random choices are drawn in the same order whatever the
    overrides, so overriding ``instances`` or ``distractor`` keeps the label and background.

    Args:
        seed: any non-negative integer. Seeds ``0 … 999_999`` are reserved for training
            (see :mod:`camkit.demo.train`); demos and tests use seeds from ``1_000_000`` up.
        instances: number of filled shapes of the labelled class (1 or 2); ``None`` draws
            2 with probability 0.25.
        distractor: whether to add a hollow shape of another class; ``None`` draws it with
            probability 0.3.

    Returns:
        ``(image, label, boxes)``: an RGB uint8 image ``(SCENE_SIZE, SCENE_SIZE, 3)``, the class
        index into :data:`CLASS_NAMES` and the tight pixel box ``(x0, y0, x1, y1)`` (exclusive
        ends) of every drawn pixel of each labelled instance. Shapes never overlap, and their
        boxes keep a gap of a few pixels.

    Raises:
        ValueError: ``seed`` is negative or ``instances`` is not 1 or 2.
    """
    if seed < 0:
        raise ConfigurationError(f"seed must be non-negative, got {seed}")
    if instances is not None and instances not in (1, 2):
        raise ConfigurationError(f"instances must be 1, 2 or None, got {instances!r}")
    rng = np.random.default_rng(seed)
    label = int(rng.integers(len(CLASS_NAMES)))
    drawn_instances = 2 if rng.random() < TWO_INSTANCES_P else 1
    drawn_distractor = bool(rng.random() < DISTRACTOR_P)
    other = int((label + rng.integers(1, len(CLASS_NAMES))) % len(CLASS_NAMES))
    count = drawn_instances if instances is None else instances
    with_distractor = drawn_distractor if distractor is None else distractor

    background = _background(rng)
    image = background.copy()
    taken: list[tuple[float, float, float, float]] = []
    shapes = [(label, False)] * count + ([(other, True)] if with_distractor else [])
    order = rng.permutation(len(shapes))
    boxes: list[Box] = []
    for index in order:
        kind, hollow = shapes[index]
        cx, cy, radius = _place(rng, taken)
        mask = _shape_mask(kind, cx, cy, radius, hollow, rng)
        colour = _colour(rng, background, mask)
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        alpha = (mask[y0:y1, x0:x1].astype(np.float32) / np.float32(255.0))[:, :, None]
        patch = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = patch + (colour - patch) * alpha
        if not hollow:
            boxes.append((x0, y0, x1, y1))
    boxes.sort()
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image += noise * np.float32(rng.uniform(3.0, 18.0))
    scene = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return scene, label, boxes
