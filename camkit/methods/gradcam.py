"""Grad-CAM and Grad-CAM++, the built-in methods."""

from __future__ import annotations

import torch
from torch import Tensor

from camkit.errors import ConfigurationError
from camkit.methods.base import GradientWeightedCAM

__all__ = ["GradCAM", "GradCAMPlusPlus"]


class GradCAM(GradientWeightedCAM):
    """Grad-CAM (Selvaraju et al., ICCV 2017, arXiv 1610.02391).

    ``w_k = mean_ij ∂y/∂A^k_ij`` — the spatially averaged gradient of the target score.
    """

    name = "gradcam"

    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        return gradients.mean(dim=(2, 3))


class GradCAMPlusPlus(GradientWeightedCAM):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018, arXiv 1710.11063), Eq. 19.

    With ``g = ∂y/∂A^k_ij`` and ``S_k = Σ_ab A^k_ab``::

        α^k_ij = g² / (2·g² + S_k·g³ + ε)     (α = 0 wherever g = 0)
        w_k    = Σ_ij α^k_ij · ReLU(g^k_ij)

    Args:
        eps: added to the denominator of α for numerical safety. The default, ``1e-6``,
            matches pytorch-grad-cam; ``0`` gives the formula exactly as printed, with
            α = 0 wherever the denominator vanishes.
    """

    name = "gradcam++"

    def __init__(self, eps: float = 1e-6) -> None:
        if not eps >= 0.0:
            raise ConfigurationError(f"GradCAMPlusPlus eps must be >= 0, got {eps!r}")
        self.eps = float(eps)

    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        g2 = gradients * gradients
        g3 = g2 * gradients
        sums = activations.sum(dim=(2, 3), keepdim=True)
        denominator = 2.0 * g2 + sums * g3 + self.eps
        valid = (gradients != 0) & (denominator != 0)
        alpha = _where_div(g2, denominator, valid)
        return (alpha * gradients.clamp(min=0)).sum(dim=(2, 3))

    def __repr__(self) -> str:
        return f"GradCAMPlusPlus(eps={self.eps!r})"


def _where_div(numerator: Tensor, denominator: Tensor, valid: Tensor) -> Tensor:
    """``numerator / denominator`` where ``valid``, else 0, without inf or nan leaking (the
    quotients of invalid places are computed, and dropped)."""
    return torch.where(valid, numerator / denominator, 0.0)
