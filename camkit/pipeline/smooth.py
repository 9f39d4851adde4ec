"""Smoothing that works with any method: test-time augmentation (``aug_smooth``).

pytorch-grad-cam's semantics: the batch is explained under six augmentations, a horizontal
flip or not times a brightness factor of 0.9, 1 or 1.1 (the normalised input multiplied by
the factor); each map is normalised, brought to the input grid, flipped back, and the six
maps are averaged. camkit runs the six augmented batches as one batch through one forward,
and explains the same targets in each (the predicted class of the un-augmented image when
no target is given; pytorch-grad-cam takes each augmented image's own prediction).

``eigen_smooth``, the other smoothing option, is a per-method projection
(:meth:`camkit.CAMMethod.weighted_activations`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from camkit.geometry import normalize_maps
from camkit.pipeline.fusion import FUSIONS, check_fusion
from camkit.pipeline.place import to_input_grid

__all__ = ["AUGMENTATIONS", "augment", "smooth_maps"]

AUGMENTATIONS: tuple[tuple[bool, float], ...] = (
    (False, 1.0),  # the original first: its logits give the predicted classes
    (False, 0.9),
    (False, 1.1),
    (True, 0.9),
    (True, 1.0),
    (True, 1.1),
)
"""``(horizontal flip, brightness factor)`` of each augmentation, in the order they are
stacked along the batch dimension."""


def augment(inputs: Tensor) -> Tensor:
    """The ``(A·B, C, H, W)`` batch of every augmentation of ``inputs``, augmentation by
    augmentation."""
    return torch.cat(
        [(inputs.flip(-1) if flip else inputs) * factor for flip, factor in AUGMENTATIONS]
    )


def _unaugmented_mean(maps: Tensor, batch: int) -> Tensor:
    """Flip each augmentation's maps ``(A·B, H, W)`` back and average them: ``(B, H, W)``."""
    parts = [
        maps[a * batch : (a + 1) * batch].flip(-1) if flip else maps[a * batch : (a + 1) * batch]
        for a, (flip, _) in enumerate(AUGMENTATIONS)
    ]
    return torch.stack(parts).mean(dim=0)


def smooth_maps(
    maps: Sequence[Tensor], input_size: tuple[int, int], fusion: str, batch: int
) -> tuple[Tensor, list[Tensor]]:
    """Average the maps of every augmentation.

    Args:
        maps: each layer's raw maps ``(A·B, h_l, w_l)`` of the augmented batch.

    Returns:
        The smoothed map ``(B, H, W)`` on the input grid, and each layer's smoothed map.
        Per augmentation, each layer's map is normalised and resized to the input grid, the
        layers are fused (:data:`~camkit.pipeline.fusion.FUSIONS`) and normalised again;
        these maps are flipped back and averaged.
    """
    combine = FUSIONS[check_fusion(fusion)]
    on_grid = [
        to_input_grid(normalize_maps(m.float().clone()), input_size).clamp_(min=0) for m in maps
    ]
    fused = normalize_maps(combine(torch.stack(on_grid)).contiguous())
    layers = [_unaugmented_mean(m, batch) for m in on_grid]
    return _unaugmented_mean(fused, batch), layers
