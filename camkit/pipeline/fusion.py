"""Fusing the maps of several layers on the input grid.

Each layer's map is min-max normalised on its own grid, resized bilinearly to the input's
resolution (as pytorch-grad-cam does with ``cv2.resize``), and the normalised maps are then
combined pixel by pixel by a fusion chosen by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import torch
from torch import Tensor

from camkit.errors import ConfigurationError
from camkit.geometry import normalize_maps
from camkit.pipeline.place import to_input_grid

__all__ = ["FUSIONS", "check_fusion", "fuse_layers"]

FUSIONS: Mapping[str, Callable[[Tensor], Tensor]] = MappingProxyType(
    {
        "mean": lambda stacked: stacked.mean(dim=0),
        "max": lambda stacked: stacked.amax(dim=0),
        "product": lambda stacked: stacked.prod(dim=0),
    }
)
"""The fusions by name, each ``(L, B, H, W) -> (B, H, W)`` over normalised maps:

- ``"mean"`` (default): the mean of the layers' maps, pytorch-grad-cam's fusion;
- ``"max"``: each pixel's strongest layer (a region found by any layer);
- ``"product"``: each pixel's product (a region found by every layer).
"""


def check_fusion(name: str) -> str:
    """Return ``name`` if it is a known fusion.

    Raises:
        ConfigurationError: unknown fusion; the message lists the known ones.
    """
    if name not in FUSIONS:
        raise ConfigurationError(
            f"unknown fusion {name!r}; choose one of {', '.join(map(repr, FUSIONS))}"
        )
    return name


def fuse_layers(
    maps: Sequence[Tensor], input_size: tuple[int, int], fusion: str = "mean"
) -> Tensor:
    """Fuse per-layer maps ``(B, h_l, w_l)`` into one map ``(B, H, W)`` on the input grid.

    Each map is min-max normalised on its grid (a constant map becomes zeros), resized to
    ``input_size``, clipped at 0, and the layers are combined by :data:`FUSIONS` ``[fusion]``.
    """
    combine = FUSIONS[check_fusion(fusion)]
    resized = [to_input_grid(normalize_maps(m.clone()), input_size).clamp_(min=0) for m in maps]
    return combine(torch.stack(resized))
