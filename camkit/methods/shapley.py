"""ShapleyCAM: channel weights from a second-order Taylor expansion of the score's Shapley
values, using the gradient and a Hessian-vector product at the layer."""

from __future__ import annotations

import torch
from torch import Tensor

from camkit.methods.base import CAMMethod
from camkit.methods.context import MethodContext

__all__ = ["ShapleyCAM"]


class ShapleyCAM(CAMMethod):
    """ShapleyCAM (Cai, "CAMs as Shapley Value-based Explainers", arXiv 2501.06261, 2025).

    The score ``y`` is seen as a cooperative game among the activations ``A``. Expanding
    ``y`` to second order around ``A`` gives each activation the closed-form Shapley value
    ``A ⊙ (g − ½ H·A)``, with ``g = ∂y/∂A`` and ``H = ∂²y/∂A²``. ShapleyCAM averages the
    bracket over positions, as Grad-CAM averages the gradient::

        w_k = mean_ij ( g^k_ij − ½ (H·A)^k_ij )
        CAM = ReLU( Σ_k w_k · A^k )

    ``H·A`` is a Hessian-vector product through the part of the model after the layer
    (:meth:`~camkit.methods.MethodContext.hessian_vector_product`): one more backward pass
    through the head, with the graph of the first kept. Where that part is piecewise linear
    in ``A`` (ReLU and max-pooling heads with the raw logit as the score) ``H·A = 0`` and
    ShapleyCAM equals Grad-CAM; smooth activations (SiLU, GELU), normalisations or a softmax
    in the score give it a second-order term.

    Departures. The paper also proposes a "residual softmax target-class" (ReST) score; the
    reference implementation (pytorch-grad-cam 1.5.5+) explains whatever target it is given,
    the raw logit by default, and so does camkit: pass a callable target to explain another
    score. camkit's maps equal pytorch-grad-cam's ShapleyCAM.
    """

    name = "shapleycam"
    needs_higher_order = True

    def compute(self, context: MethodContext) -> Tensor:
        activations, gradients = context.activations, context.gradients
        curvature = context.hessian_vector_product(activations)
        weights = (gradients - 0.5 * curvature).mean(dim=(2, 3))
        return torch.relu(torch.einsum("bc,bchw->bhw", weights, activations))
