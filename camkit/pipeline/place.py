"""The place step: maps go onto the input grid or onto the original images, normalised.

Maps stay on the model's device until they are asked for; each function works on a whole
batch at once, with one matrix product per distinct placement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

from camkit.geometry import Placement, maps_to_original, normalize_maps

__all__ = ["POSTPROCESS_ELEMENTS", "maps_on_input", "maps_on_originals", "to_input_grid"]

POSTPROCESS_ELEMENTS = 1 << 24
"""Most map pixels resized at once on the device (64 MiB of float32)."""


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
            mapped = normalize_maps(maps_to_original(raw[chunk].float(), placement))
            arrays = mapped.cpu().numpy()
            for index, cam in zip(chunk, arrays, strict=True):
                cams[index] = cam if len(chunk) == 1 else cam.copy()
    return [cam for cam in cams if cam is not None]
