"""The demo CNN and its shipped weights."""

from __future__ import annotations

from importlib import resources
from typing import Any

import torch
from torch import Tensor, nn

from camkit.demo.scenes import CLASS_NAMES, SCENE_SIZE

__all__ = ["DEMO_CFG", "WEIGHTS_FILE", "DemoNet", "load_model"]

WEIGHTS_FILE = "demonet.pt"
"""Name of the shipped state dict inside the ``camkit.demo`` package."""

DEMO_CFG: dict[str, Any] = {
    "architecture": "camkit_demonet",
    "input_size": (3, SCENE_SIZE, SCENE_SIZE),
    "mean": (0.5, 0.5, 0.5),
    "std": (0.25, 0.25, 0.25),
    "interpolation": "bilinear",
    "num_classes": len(CLASS_NAMES),
}
"""timm-style preprocessing config: :meth:`camkit.DataConfig.from_model` reads it, so an
:class:`~camkit.Explainer` preprocesses demo scenes correctly with no transform.
"""


def _conv_bn(in_channels: int, out_channels: int, stride: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """Conv-BN: 3×3 at stride 1, 4×4 at stride 2.

    A 4×4 stride-2 conv with padding 1 centres output pixel ``i`` on input ``2i + 0.5``, the
    half-pixel grid camkit (and OpenCV) assume when they upsample a map; a 3×3 one would
    centre it on ``2i`` and shift every map half an input pixel per stage (3.5 px at 16×16).
    """
    kernel = 4 if stride == 2 else 3
    return (
        nn.Conv2d(in_channels, out_channels, kernel, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two conv-BN layers, a shortcut, then ReLU.

    When the block changes the size or width, the shortcut is average pooling (grid-aligned,
    as in ResNet-D) and a 1×1 conv-BN.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_channels, out_channels, stride)
        self.conv2, self.bn2 = _conv_bn(out_channels, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + self.shortcut(x))
        return result


class AvgMaxPool2d(nn.Module):
    """Global average-plus-max pooling, ``(avg + max) / 2`` per channel (timm's ``avgmax``).

    The max term lets a small shape's response stand out of a mostly-background map; plain
    average pooling dilutes it and trains far slower on the demo scenes.
    """

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = 0.5 * (x.mean(dim=(2, 3), keepdim=True) + x.amax(dim=(2, 3), keepdim=True))
        return out


class DemoNet(nn.Module):
    """A small ResNet-style CNN for the 128×128 demo scenes (about 0.15 M parameters).

    ``stem`` (two stride-2 conv-BN-ReLU, 16 and 32 channels) → ``layer1`` (residual block,
    64 channels, stride 2, 16×16) → ``layer2`` (residual block, 64 channels, 16×16) → global
    average-plus-max pooling → ``fc`` (4 classes). camkit's structural resolver picks
    ``layer2``, the last spatial map, on its own.

    Attributes:
        pretrained_cfg: the timm-style preprocessing config (:data:`DEMO_CFG`).
        class_names: the class names, in logit order.
    """

    def __init__(self, num_classes: int = len(CLASS_NAMES)) -> None:
        super().__init__()
        self.pretrained_cfg: dict[str, Any] = {**DEMO_CFG, "num_classes": num_classes}
        self.class_names: list[str] = list(CLASS_NAMES[:num_classes])
        self.stem = nn.Sequential(
            *_conv_bn(3, 16, 2), nn.ReLU(inplace=True), *_conv_bn(16, 32, 2), nn.ReLU(inplace=True)
        )
        self.layer1 = BasicBlock(32, 64, stride=2)
        self.layer2 = BasicBlock(64, 64)
        self.pool = AvgMaxPool2d()
        self.fc = nn.Linear(64, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last spatial feature map ``(B, 64, H/8, W/8)``."""
        out: Tensor = self.layer2(self.layer1(self.stem(x)))
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` of a normalised batch ``(B, 3, H, W)``."""
        out: Tensor = self.fc(torch.flatten(self.pool(self.forward_features(x)), 1))
        return out


def load_model() -> DemoNet:
    """The demo model with camkit's shipped weights, in eval mode, on the CPU.

    The weights (``camkit/demo/demonet.pt``, package data) were trained by
    ``python -m camkit.demo.train`` on scenes of :func:`camkit.demo.make_scene`.
    """
    weights = resources.files("camkit.demo").joinpath(WEIGHTS_FILE)
    with weights.open("rb") as handle:
        state = torch.load(handle, map_location="cpu", weights_only=True)
    model = DemoNet()
    model.load_state_dict(state)
    return model.eval()
