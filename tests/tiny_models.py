"""Tiny hand-built models whose CAMs have closed-form values."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

# Activations A (2 channels, 2x2) and the gradient g of class 0's score with respect to A.
A = torch.tensor(
    [
        [[1.0, 2.0], [3.0, 4.0]],  # S_1 = 10
        [[0.0, 1.0], [0.0, 0.0]],  # S_2 = 1
    ]
)
G0 = torch.tensor(
    [
        [[1.0, 0.0], [-1.0, 0.5]],
        [[2.0, 2.0], [2.0, 2.0]],
    ]
)
# Hand-computed from Eq. 19 with eps = 0:
#  channel 1: alpha = 1/(2+10) = 1/12 at g=1; 0 at g=0; 1/(2-10) = -1/8 at g=-1;
#             0.25/(0.5+1.25) = 1/7 at g=0.5;  w_1 = 1/12*1 + 1/7*0.5 = 13/84
#  channel 2: alpha = 4/(8+8) = 1/4 everywhere; w_2 = 4 * 1/4 * 2 = 2
GRADCAMPP_CLASS0 = torch.tensor([[13 / 84, 26 / 84 + 2.0], [39 / 84, 52 / 84]])
# Grad-CAM: w_1 = mean(g_1) = 0.125, w_2 = 2
GRADCAM_CLASS0 = torch.tensor([[0.125, 2.25], [0.375, 0.5]])


class ConstantFeatures(nn.Module):
    """Outputs the fixed activations A for every input image (tied to the input for grad)."""

    def __init__(self, activations: Tensor = A) -> None:
        super().__init__()
        self.register_buffer("activations", activations.clone())

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        return self.activations.expand(batch, -1, -1, -1) + 0.0 * x.mean()


def linear_head_model(class0: Tensor = G0, other: float = -0.5) -> nn.Module:
    """``score_c = Σ W_c · A``: the gradient of class 0 w.r.t. A is exactly ``class0``."""
    head = nn.Linear(class0.numel(), 2, bias=True)
    with torch.no_grad():
        head.weight[0] = class0.flatten()
        head.weight[1] = torch.full((class0.numel(),), other)
        head.bias.zero_()
    return nn.Sequential(OrderedDict(features=ConstantFeatures(), flatten=nn.Flatten(), fc=head))


class SmallCNN(nn.Module):
    """A small CNN unknown to camkit's architecture table."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.body = nn.Sequential(
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)  # keeps a spatial 4x4 shape: must not be picked
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(16 * 16, classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.body(self.stem(x))))


def signed_head_model(activations: Tensor, gradient: Tensor | None = None) -> nn.Module:
    """Layer ``features`` outputs ``activations``; class 0's score is ``Σ gradient · A`` and
    class 1's its negation, so class 0's gradient at the layer is exactly ``gradient``
    (all ones by default)."""
    gradient = torch.ones_like(activations) if gradient is None else gradient
    head = nn.Linear(gradient.numel(), 2)
    with torch.no_grad():
        head.weight[0] = gradient.flatten()
        head.weight[1] = -gradient.flatten()
        head.bias.zero_()
    return nn.Sequential(
        OrderedDict(features=ConstantFeatures(activations), flatten=nn.Flatten(), fc=head)
    )
