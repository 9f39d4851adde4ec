"""Checks of the maps shared by the localisation and the faithfulness metrics."""

from __future__ import annotations

import torch
from torch import Tensor

from camkit.errors import InputError

__all__ = ["check_cams"]


def check_cams(cams: Tensor) -> Tensor:
    """Return ``cams`` detached after checking it is a finite floating ``(B, H, W)`` tensor.

    Raises:
        InputError: not a tensor, not 3-D, empty, not floating or not finite.
    """
    if not isinstance(cams, Tensor):
        raise InputError(f"cams must be a torch.Tensor, got {type(cams).__name__}")
    if cams.ndim != 3 or cams.numel() == 0:
        raise InputError(
            f"cams must have shape (B, H, W) with no empty dimension, got {tuple(cams.shape)}"
        )
    if not cams.is_floating_point():
        raise InputError(f"cams must be a floating-point tensor, got dtype {cams.dtype}")
    if not bool(torch.isfinite(cams).all()):
        raise InputError("cams contain NaN or infinite values")
    return cams.detach()
