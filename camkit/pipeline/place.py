"""The place step: maps go onto the input grid or onto the original images, normalised.

Maps stay on the model's device until they are asked for; each function works on a whole
batch at once, with one matrix product per distinct placement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from camkit.geometry import Placement, maps_to_original, normalize_maps

__all__ = [
    "OVERLAY_PIXELS",
    "POSTPROCESS_ELEMENTS",
    "maps_on_grid",
    "maps_on_input",
    "maps_on_originals",
    "overlay_grid",
    "to_input_grid",
]

POSTPROCESS_ELEMENTS = 1 << 24
"""Most map pixels resized at once on the device (64 MiB of float32)."""

OVERLAY_PIXELS = 1 << 22
"""Most pixels of the grid an overlay's map is coloured on (4 Mpx, 2048 × 2048): larger
images get their colours upsampled (:meth:`camkit.Explanation.overlay`)."""


def to_input_grid(maps: Tensor, input_size: tuple[int, int]) -> Tensor:
    """Resize maps ``(B, h, w)`` that cover the input to the input grid ``(B, H, W)``,
    bilinearly with half-pixel centres (OpenCV's ``INTER_LINEAR``)."""
    if tuple(maps.shape[-2:]) == tuple(input_size):
        return maps.clone()
    return maps_to_original(maps, Placement.stretch(input_size, input_size))


def maps_on_input(raw: Tensor, input_size: tuple[int, int]) -> Tensor:
    """Normalised maps ``(B, H, W)`` at the input's resolution, on the maps' device: each map
    resized bilinearly to the input grid, then min-max normalised to ``[0, 1]``."""
    return normalize_maps(to_input_grid(raw.float(), input_size))


def maps_on_originals(raw: Tensor, placements: Sequence[Placement]) -> list[NDArray[np.float32]]:
    """Normalised maps on the original images, one ``(H, W)`` float32 array each.

    Computed on the maps' device in batched products, one per distinct placement and chunk,
    each chunk moved to the CPU at once. Chunks hold at most :data:`POSTPROCESS_ELEMENTS`
    pixels, so large photographs are done one by one; every returned map is an array of its
    own.
    """
    cams: list[NDArray[np.float32] | None] = [None] * len(placements)
    for placement in dict.fromkeys(placements):
        group = [i for i, p in enumerate(placements) if p == placement]
        pixels = placement.original_size[0] * placement.original_size[1]
        step = max(1, POSTPROCESS_ELEMENTS // max(pixels, 1))
        for start in range(0, len(group), step):
            chunk = group[start : start + step]
            mapped = normalize_maps(maps_to_original(_rows(raw, chunk).float(), placement))
            arrays = mapped.cpu().numpy()
            for index, cam in zip(chunk, arrays, strict=True):
                cams[index] = cam if len(chunk) == 1 else cam.copy()
    return [cam for cam in cams if cam is not None]


def _rows(values: Tensor, rows: Sequence[int]) -> Tensor:
    """``values[rows]``: a slice when the rows are consecutive (no index tensor to copy to
    the device)."""
    first = rows[0]
    if list(rows) == list(range(first, first + len(rows))):
        return values[first : first + len(rows)]
    return values[list(rows)]


def overlay_grid(original_size: tuple[int, int], max_pixels: int | None = None) -> tuple[int, int]:
    """The grid ``(h, w)`` an overlay's map is coloured on for an image of ``original_size``
    ``(H, W)``: the image's own when it has at most ``max_pixels`` pixels (default
    :data:`OVERLAY_PIXELS`), else the largest grid of about the same aspect ratio with at
    most that many cells."""
    limit = OVERLAY_PIXELS if max_pixels is None else max_pixels
    height, width = original_size
    if height * width <= limit:
        return original_size
    factor = math.sqrt(limit / (height * width))
    rows = max(1, min(height, int(height * factor)))
    return rows, max(1, min(width, int(width * factor), limit // rows))


def _original_range(raw: Tensor, placement: Placement) -> tuple[Tensor, Tensor]:
    """The minimum and maximum ``(B,)`` of each map on the original pixels, as
    :func:`maps_on_originals` computes them, band by band of rows (at most
    :data:`POSTPROCESS_ELEMENTS` values at once) so that no full-size map is held."""
    height, width = placement.original_size
    rows = max(1, POSTPROCESS_ELEMENTS // max(1, width * raw.shape[0]))
    lows: list[Tensor] = []
    highs: list[Tensor] = []
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        band = attrs.evolve(
            placement,
            original_size=(stop - start, width),
            offset_y=placement.offset_y + placement.scale_y * start,
        )
        mapped = maps_to_original(raw, band)
        lows.append(mapped.amin(dim=(1, 2)))
        highs.append(mapped.amax(dim=(1, 2)))
    return torch.stack(lows).amin(dim=0), torch.stack(highs).amax(dim=0)


def maps_on_grid(raw: Tensor, placement: Placement, size: tuple[int, int]) -> NDArray[np.float32]:
    """Normalised maps ``(B, h, w)`` on a coarser grid ``size`` of the original images of
    ``placement``: cell ``(i, j)`` takes the map's value at the centre of the original
    region it covers, as :func:`maps_on_originals` takes it at each pixel's centre, and is
    normalised by the minimum and maximum of the maps on the original pixels, so its values
    are those of :func:`maps_on_originals` at those points (clipped to ``[0, 1]``).

    Computed on the maps' device without a full-size map; what an overlay of a large image
    is coloured from.
    """
    maps = raw.float()
    height, width = placement.original_size
    coarse = attrs.evolve(
        placement,
        original_size=size,
        scale_x=placement.scale_x * width / size[1],
        scale_y=placement.scale_y * height / size[0],
    )
    low, high = _original_range(maps, placement)
    span = high - low
    scale = torch.where(span > 0, span, torch.ones_like(span))
    mapped = maps_to_original(maps, coarse)
    mapped.sub_(low[:, None, None]).div_(scale[:, None, None]).clamp_(0.0, 1.0)
    result: NDArray[np.float32] = mapped.cpu().numpy()
    return result
