"""Projecting channel maps on their first principal component (Eigen-CAM, ``eigen_smooth``)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["principal_projection"]


def principal_projection(maps: Tensor) -> Tensor:
    """Project each image's maps ``(B, C, h, w)`` on their first principal component:
    ``(B, h, w)``.

    Per image, the ``h·w`` positions are the samples and the ``C`` channels the features: the
    ``(h·w, C)`` matrix is centred over the positions (each channel minus its mean), its first
    right singular vector ``v`` is found by SVD, and each position's centred vector is
    projected on ``v``. Computed in float64 on the maps' device, batched; returned in the
    float32 (float64 for float64 maps).

    **Sign rule.** A singular vector's sign is arbitrary (``v`` and ``-v`` are both right), so
    the projection's sign is fixed by camkit: it is chosen so that the projection correlates
    positively with the channel sum ``Σ_k maps_k`` (the map without the projection), that is,
    so that the component points where the maps are strong. pytorch-grad-cam leaves the sign
    to LAPACK; its maps equal camkit's or their negation.
    """
    batch, _, height, width = maps.shape
    samples = maps.detach().double().flatten(2).transpose(1, 2)  # (B, hw, C)
    centred = samples - samples.mean(dim=1, keepdim=True)
    _, _, right = torch.linalg.svd(centred, full_matrices=False)
    projection = (centred @ right[:, 0, :, None])[..., 0]  # (B, hw)
    channel_sum = samples.sum(dim=2)
    agreement = (
        (projection - projection.mean(1, keepdim=True))
        * (channel_sum - channel_sum.mean(1, keepdim=True))
    ).sum(dim=1)
    projection = projection * torch.where(agreement < 0, -1.0, 1.0).to(projection)[:, None]
    dtype = torch.float64 if maps.dtype == torch.float64 else torch.float32
    result: Tensor = projection.reshape(batch, height, width).to(dtype)
    return result
