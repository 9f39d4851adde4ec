"""Localisation metrics against ground-truth boxes; they use the maps alone, not the model."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from camkit.errors import InputError
from camkit.metrics._checks import check_cams

__all__ = ["Box", "Boxes", "energy_pointing_game", "pointing_game"]

Box = tuple[int, int, int, int]
"""A box ``(x0, y0, x1, y1)`` in pixels; ``x1`` and ``y1`` are exclusive."""
Boxes = Sequence[Sequence[Box] | Tensor | NDArray[np.integer[Any]]] | Tensor
"""The boxes of a batch: per image, a sequence of boxes or an int ``(N, 4)`` tensor/array."""


def _as_list(value: Any) -> list[Any] | None:
    """``list(value)`` for a sequence, tensor or array; ``None`` for anything else."""
    if isinstance(value, (str, bytes)) or (isinstance(value, Tensor) and value.ndim == 0):
        return None
    if isinstance(value, (Sequence, Tensor)) or hasattr(value, "__array__"):
        return list(value)
    return None


def _check_boxes(boxes: Boxes, batch: int, height: int, width: int) -> list[list[Box]]:
    per_image = _as_list(boxes)
    if per_image is None:
        raise InputError(
            f"boxes must be a sequence with one sequence of boxes per image, got "
            f"{type(boxes).__name__}"
        )
    if len(per_image) != batch:
        raise InputError(f"got boxes for {len(per_image)} images but {batch} maps")
    checked: list[list[Box]] = []
    for image, given in enumerate(per_image):
        image_boxes = _as_list(given)
        if image_boxes is None:
            raise InputError(
                f"boxes[{image}] must be a sequence of (x0, y0, x1, y1) boxes, got "
                f"{type(given).__name__}"
            )
        if not image_boxes:
            raise InputError(
                f"image {image} has no box; the pointing games are defined only for images "
                "that contain the target object, so leave such images out"
            )
        row: list[Box] = []
        for box in image_boxes:
            try:
                if len(box) != 4:
                    raise TypeError
                x0, y0, x1, y1 = (operator.index(v) for v in box)
            except TypeError:
                raise InputError(
                    f"a box must be four ints (x0, y0, x1, y1), got {box!r} for image {image}"
                ) from None
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise InputError(
                    f"box {(x0, y0, x1, y1)} of image {image} is empty or outside the "
                    f"{height}x{width} map: need 0 <= x0 < x1 <= {width} and "
                    f"0 <= y0 < y1 <= {height} (x1, y1 exclusive)"
                )
            row.append((x0, y0, x1, y1))
        checked.append(row)
    return checked


def pointing_game(cams: Tensor, boxes: Boxes, *, tolerance: int = 0) -> Tensor:
    """Pointing game of Zhang et al., "Top-down Neural Attention by Excitation Backprop"
    (ECCV 2016).

    Definition: an image is a *hit* when the map's maximum point lies on the object, that
    is inside one of its boxes, and a *miss* otherwise; the accuracy is
    ``hits / (hits + misses)``, here ``pointing_game(...).float().mean()``. The maximum
    point is the **first** maximal pixel in row-major order (``torch.argmax`` on the
    flattened map), so ties, including a constant map (pixel ``(0, 0)``), are broken
    deterministically. With ``tolerance = r > 0`` the point also hits when some box pixel
    lies within Euclidean distance ``r`` of it (the disc of radius ``r`` around the maximum
    meets a box); the paper used ``r = 15`` pixels at the image resolution.

    Args:
        cams: ``(B, H, W)`` maps; any finite values, any floating dtype, any device.
        boxes: one non-empty sequence of ``(x0, y0, x1, y1)`` boxes per image, in map
            pixels, ``x1`` and ``y1`` exclusive (an int tensor or array of shape ``(N, 4)``
            works too). Several boxes are several instances.
        tolerance: the radius ``r`` in pixels, ``>= 0``.

    Returns:
        A ``(B,)`` bool tensor, ``True`` for a hit, on the maps' device.

    Raises:
        InputError: malformed maps, boxes or tolerance.
    """
    cams = check_cams(cams)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise InputError(f"tolerance must be an int >= 0 (pixels), got {tolerance!r}")
    batch, height, width = cams.shape
    checked = _check_boxes(boxes, batch, height, width)
    peaks = cams.reshape(batch, -1).argmax(dim=1).tolist()
    hits = []
    for peak, image_boxes in zip(peaks, checked, strict=True):
        row, col = divmod(int(peak), width)
        hit = False
        for x0, y0, x1, y1 in image_boxes:
            dx = max(x0 - col, 0, col - (x1 - 1))
            dy = max(y0 - row, 0, row - (y1 - 1))
            hit = hit or dx * dx + dy * dy <= tolerance * tolerance
        hits.append(hit)
    return torch.tensor(hits, dtype=torch.bool, device=cams.device)


def energy_pointing_game(cams: Tensor, boxes: Boxes) -> Tensor:
    """Energy-based pointing game of Wang et al., "Score-CAM: Score-Weighted Visual
    Explanations for Convolutional Neural Networks" (CVPR Workshops 2020).

    Definition: the share of the map's energy (its sum) that falls inside the object,
    ``Σ_{p ∈ boxes} cam(p) / Σ_p cam(p)``, where the boxes of one image count as their
    union (a pixel in two boxes counts once). It lies in ``[0, 1]``; an all-zero map scores
    ``0``. The maps are used as given: scaling a map leaves the value unchanged but adding
    a constant does not, so normalise the maps consistently (e.g. min-max) before calling.

    Args:
        cams: ``(B, H, W)`` non-negative maps, any floating dtype, any device.
        boxes: one non-empty sequence of ``(x0, y0, x1, y1)`` boxes per image, in map
            pixels, ``x1`` and ``y1`` exclusive (an int tensor or array of shape ``(N, 4)``
            works too).

    Returns:
        A ``(B,)`` tensor of proportions, of the maps' dtype and device.

    Raises:
        InputError: malformed or negative maps, or malformed boxes.
    """
    cams = check_cams(cams)
    if bool((cams < 0).any()):
        raise InputError(
            f"energy_pointing_game needs non-negative maps, got a minimum of {float(cams.min()):g}"
        )
    batch, height, width = cams.shape
    checked = _check_boxes(boxes, batch, height, width)
    inside = torch.zeros_like(cams, dtype=torch.bool)
    for image, image_boxes in enumerate(checked):
        for x0, y0, x1, y1 in image_boxes:
            inside[image, y0:y1, x0:x1] = True
    # sums of float16/bfloat16 maps overflow or round: add up in float32 at least
    work = cams.to(torch.promote_types(cams.dtype, torch.float32))
    total = work.sum(dim=(1, 2))
    within = (work * inside).sum(dim=(1, 2))
    share = torch.where(total > 0, within / total.clamp_min(torch.finfo(work.dtype).tiny), 0.0)
    return share.to(cams.dtype)
