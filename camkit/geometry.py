"""Where the original image lies in the model's input, and mapping maps back onto it."""

from __future__ import annotations

import attrs
import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

__all__ = ["Placement", "maps_to_original", "normalize_maps"]


@attrs.frozen
class Placement:
    """An axis-aligned map from original-image coordinates to model-input coordinates.

    With continuous coordinates (pixel ``i`` spans ``[i, i + 1)``), the original point
    ``(x, y)`` lies at ``(scale_x · x + offset_x, scale_y · y + offset_y)`` in the input of
    size ``input_size`` ``(H, W)``. A plain resize has zero offsets; a centre crop has negative
    offsets (parts of the original fall outside the input); a letterbox has positive ones.

    Attributes:
        original_size: ``(H, W)`` of the original image.
        input_size: ``(H, W)`` of the model input.
    """

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    scale_x: float
    scale_y: float
    offset_x: float = 0.0
    offset_y: float = 0.0

    @classmethod
    def stretch(cls, original_size: tuple[int, int], input_size: tuple[int, int]) -> Placement:
        """The whole original resized to the whole input."""
        return cls(
            original_size,
            input_size,
            input_size[1] / original_size[1],
            input_size[0] / original_size[0],
        )


def _axis_matrix(
    out_len: int, raw_len: int, input_len: int, scale: float, offset: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Linear-interpolation weights ``(out_len, raw_len)`` and the in-input mask."""
    centres = scale * (np.arange(out_len) + 0.5) + offset  # in input coordinates
    inside = (centres >= 0.0) & (centres <= input_len)
    source = centres * (raw_len / input_len) - 0.5  # index in the raw map
    source = np.clip(source, 0.0, raw_len - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, raw_len - 1)
    frac = source - low
    weights = np.zeros((out_len, raw_len))
    rows = np.arange(out_len)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    return weights, inside


def maps_to_original(raw: Tensor, placement: Placement) -> Tensor:
    """Resample a batch of maps ``(B, h, w)`` that cover the model input uniformly onto the
    original image ``(B, H, W)`` of ``placement``.

    Each original pixel takes the map's bilinear interpolation (as OpenCV's ``INTER_LINEAR``
    with half-pixel centres) at its position in the input; pixels that fall outside the
    input (cropped away) get 0. Computed on the maps' device and in their dtype, as two
    matrix products. Not normalised. With ``Placement.stretch(size, size)`` it resizes the
    maps to the input grid itself.
    """
    height, width = placement.original_size
    raw_h, raw_w = raw.shape[-2:]
    rows, inside_rows = _axis_matrix(
        height, raw_h, placement.input_size[0], placement.scale_y, placement.offset_y
    )
    cols, inside_cols = _axis_matrix(
        width, raw_w, placement.input_size[1], placement.scale_x, placement.offset_x
    )
    # pixels outside the input get 0: their rows of the interpolation weights are zeroed
    # (arrays made here, in pageable memory: their copies are staged at once and need not
    # wait for the device)
    left = torch.from_numpy(rows * inside_rows[:, None]).to(
        raw.device, raw.dtype, non_blocking=True
    )
    right = torch.from_numpy(cols * inside_cols[:, None]).to(
        raw.device, raw.dtype, non_blocking=True
    )
    return left @ raw @ right.T


def normalize_maps(maps: Tensor) -> Tensor:
    """Min-max normalise each map of a ``(B, H, W)`` batch into ``[0, 1]`` in place, on its
    device; a constant map becomes all zeros. Returns ``maps``."""
    maps.sub_(maps.amin(dim=(1, 2), keepdim=True))
    peak = maps.amax(dim=(1, 2), keepdim=True)
    return maps.div_(torch.where(peak > 0, peak, 1.0))
