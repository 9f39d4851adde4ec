"""Gradient methods beyond Grad-CAM: HiResCAM, element-wise Grad-CAM, XGrad-CAM and LayerCAM.

Notation as in ``docs/methods.md``: ``A^k_ij`` is channel ``k`` of the layer's output at
position ``(i, j)`` and ``g^k_ij = ∂y/∂A^k_ij`` the gradient of the explained score ``y``.
XGrad-CAM weights whole channels (a :class:`~camkit.GradientWeightedCAM`); the three others
weight every activation by its own gradient, so they implement ``compute`` themselves.

Each map is compared in camkit's test suite with pytorch-grad-cam 1.5.7's method of the same
name, at the layer's resolution after min-max normalisation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from camkit.errors import ConfigurationError
from camkit.methods.base import CAMMethod, GradientWeightedCAM
from camkit.methods.gradcam import _where_div

if TYPE_CHECKING:
    from camkit.methods.context import MethodContext

__all__ = ["GradCAMElementWise", "HiResCAM", "LayerCAM", "XGradCAM"]


class HiResCAM(CAMMethod):
    """HiResCAM (Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations
    of convolutional neural networks", arXiv 2011.08891, 2020).

    Every activation is multiplied by its own gradient, and the channels are summed::

        CAM_ij = ReLU( Σ_k g^k_ij · A^k_ij )

    Grad-CAM averages the gradient over the grid first, and can therefore light up positions
    the score does not depend on; HiResCAM does not. When the layer is followed only by global
    average pooling and a linear head, its map is the original CAM's (the paper's proof).

    camkit keeps the positive part, as pytorch-grad-cam does (it clips every map at 0 before
    scaling it): the evidence against the class, where the sum is negative, is not shown.
    """

    name = "hirescam"

    def compute(self, context: MethodContext) -> Tensor:
        return torch.relu(self.weighted_activations(context).sum(dim=1))

    def weighted_activations(self, context: MethodContext) -> Tensor:
        return context.gradients * context.activations


class GradCAMElementWise(CAMMethod):
    """Element-wise Grad-CAM, pytorch-grad-cam's ``GradCAMElementWise``.

    HiResCAM with the positive part taken per channel, before the channels are summed::

        CAM_ij = Σ_k ReLU( g^k_ij · A^k_ij )

    A channel that speaks against the class at a position cannot cancel one that speaks for
    it there. The variant has no paper of its own; it is defined by pytorch-grad-cam, whose
    formula camkit follows exactly.
    """

    name = "gradcamelementwise"

    def compute(self, context: MethodContext) -> Tensor:
        return self.weighted_activations(context).sum(dim=1)

    def weighted_activations(self, context: MethodContext) -> Tensor:
        return torch.relu(context.gradients * context.activations)


class XGradCAM(GradientWeightedCAM):
    """XGrad-CAM (Fu, Hu, Dong, Guo, Gao & Li, "Axiom-based Grad-CAM: Towards Accurate
    Visualization and Explanation of CNNs", BMVC 2020, arXiv 2008.02312).

    Each gradient is weighted by the activation's share of its channel::

        w_k = Σ_ij ( A^k_ij / (Σ_ab A^k_ab + ε) ) · g^k_ij
        CAM = ReLU( Σ_k w_k · A^k )

    The paper derives the weights from its sensitivity and conservation axioms, without ε;
    pytorch-grad-cam adds ``ε = 1e-7`` to the channel sum, and camkit's default does the same
    so that the maps match it. Where the denominator is exactly 0 (a channel that sums to
    ``-ε``, or to 0 with ``eps=0``) the channel's weight is 0, where the reference gives
    infinities. The paper assumes non-negative activations (after a ReLU): at a layer whose
    channels can sum to nearly zero, the weights are unstable.

    Args:
        eps: added to each channel's sum, ``>= 0``. ``0`` is the paper's formula.
    """

    name = "xgradcam"

    def __init__(self, eps: float = 1e-7) -> None:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise ConfigurationError(f"XGradCAM eps must be a number >= 0, got {eps!r}")
        if not (eps >= 0.0 and math.isfinite(eps)):
            raise ConfigurationError(f"XGradCAM eps must be a finite number >= 0, got {eps!r}")
        self.eps = float(eps)

    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        denominator = activations.sum(dim=(2, 3), keepdim=True) + self.eps
        valid = (denominator != 0).expand_as(activations)
        shares = _where_div(activations, denominator.expand_as(activations), valid)
        return (shares * gradients).sum(dim=(2, 3))

    def __repr__(self) -> str:
        return f"XGradCAM(eps={self.eps!r})"


class LayerCAM(CAMMethod):
    """LayerCAM (Jiang, Zhang, Hou, Cheng & Wei, "LayerCAM: Exploring Hierarchical Class
    Activation Maps for Localization", IEEE Transactions on Image Processing 30, 2021,
    pp. 5875-5888).

    Every activation is weighted by its own positive gradient::

        CAM_ij = ReLU( Σ_k ReLU(g^k_ij) · A^k_ij )

    Because the weights are per position, the map stays reliable at shallow layers, where
    Grad-CAM's channel averages blur it. To fuse maps of several layers, the paper first
    rescales the shallow layers' maps by ``tanh(γ · M / max M)`` (γ = 2); pytorch-grad-cam
    does not, and neither does camkit: each layer's map here is the formula above, which
    camkit's pipeline min-max normalises before it fuses layers, so LayerCAM fuses exactly as
    every other method does.
    """

    name = "layercam"

    def compute(self, context: MethodContext) -> Tensor:
        return torch.relu(self.weighted_activations(context).sum(dim=1))

    def weighted_activations(self, context: MethodContext) -> Tensor:
        return context.gradients.clamp(min=0) * context.activations
