"""CAM, the original class activation map, from the weights of the model's linear head."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from camkit.errors import MethodNotApplicableError, TargetError
from camkit.methods.base import CAMMethod

if TYPE_CHECKING:
    from camkit.methods.context import MethodContext

__all__ = ["CAM", "find_linear_head"]


class CAM(CAMMethod):
    """CAM (Zhou et al., CVPR 2016, arXiv 1512.04150): the linear head's weights of the target
    class weight the channels of the layer that global average pooling reads.

    For a model whose logits are ``y_c = Σ_k w^c_k · mean_ij A^k_ij + b_c``::

        CAM = ReLU( Σ_k w^c_k · A^k )

    so that the mean of the map before the ReLU is the logit less its bias. It reads no
    gradient and runs no extra pass.

    The paper's map has no ReLU, and neither has torchcam 0.5.0's; camkit keeps the positive
    part as for every method (a map is non-negative), as pytorch-grad-cam does for all of its
    methods. The bias is left out of the map, as in the paper.

    It applies only where the logits are exactly that: the layer's output, globally average
    pooled, then one linear layer, nothing in between. So it does for torchvision ResNets,
    MobileNetV2, EfficientNets and RegNets at their last block, and timm ResNets and
    EfficientNets (``bn2``); not for VGG (three linear layers after a 7 × 7 pooling), DenseNet
    (a ReLU after the last block), MobileNetV3 (two linear layers), ConvNeXt (a normalisation
    after the pooling), or average-plus-max pooling (camkit's demo model). The head is found by
    :func:`find_linear_head`, which checks this against the model's logits.

    Raises:
        MethodNotApplicableError: the model has no such head after the layer.
        TargetError: the target is a callable: CAM explains classes, through their row of
            the head.
    """

    name = "cam"
    needs_gradients = False

    def compute(self, context: MethodContext) -> Tensor:
        indices = context.score.indices
        if indices is None:
            raise TargetError(
                "cam explains a class through that class's weights in the linear head, so it "
                "cannot explain a callable target: give class indices, or use a method that "
                "explains any score (gradcam, scorecam)"
            )
        activations = context.activations
        weight, _ = find_linear_head(context)
        weights = weight.detach()[indices.to(weight.device)].to(activations)
        return torch.relu(torch.einsum("bc,bchw->bhw", weights, activations))


def find_linear_head(context: MethodContext) -> tuple[Tensor, str]:
    """The weight ``(K, C)`` and dotted name of the ``nn.Linear`` that turns the global average
    of the context's layer into the model's logits.

    Candidates are the model's ``nn.Linear`` modules with ``in_features`` = the layer's channels
    ``C`` and ``out_features`` = the number of classes ``K``, tried from the last registered to
    the first. The first whose ``W · mean_ij(A) + b`` gives the explanation's logits (to a
    relative ``1e-3``, more for half-precision models) is the head.

    Raises:
        MethodNotApplicableError: no ``nn.Linear`` fits, or none gives the logits from this
            layer; the message names what was found and what to do.
    """
    activations, logits = context.activations, context.logits
    channels, classes = activations.shape[1], logits.shape[1]
    linears = [
        (name, module)
        for name, module in context.model.named_modules()
        if isinstance(module, nn.Linear)
    ]
    fitting = [
        (name, module)
        for name, module in linears
        if module.in_features == channels and module.out_features == classes
    ]
    advice = (
        "Choose the layer right before the global average pooling that feeds the head, or a "
        "method that needs no linear head (gradcam, scorecam)."
    )
    if not fitting:
        found = ", ".join(f"{n} ({m.in_features} → {m.out_features})" for n, m in linears[-4:])
        raise MethodNotApplicableError(
            f"cam needs a linear head after layer {context.layer!r}: an nn.Linear with "
            f"in_features = {channels} (the layer's channels) and out_features = {classes} "
            "(the classes) applied to the layer's global average. The model has "
            + (f"no such layer; its last nn.Linear layers are {found}. " if found else "none. ")
            + advice
        )
    pooled = activations.mean(dim=(2, 3))
    expected = logits.float()
    bits = torch.finfo(logits.dtype).bits if logits.is_floating_point() else 32
    tolerance = 1e-3 if bits >= 32 else 5e-2
    scale = 1.0 + expected.abs().amax(dim=1, keepdim=True)
    for name, module in reversed(fitting):
        weight = module.weight.detach()
        predicted = pooled.to(weight.device, torch.float32) @ weight.float().T
        if module.bias is not None:
            predicted = predicted + module.bias.detach().float()
        if bool(((predicted.to(expected.device) - expected).abs() <= tolerance * scale).all()):
            return weight, name
    names = ", ".join(name for name, _ in fitting)
    raise MethodNotApplicableError(
        f"cam needs the logits to be the linear head applied to the global average of layer "
        f"{context.layer!r}, with nothing in between; {names} has the right shape but does not "
        "give the model's logits from that average (another layer, a normalisation or another "
        "pooling lies between them). " + advice
    )
