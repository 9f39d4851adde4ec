"""Models, inputs and reference maps shared by the method-family parity tests.

The three architectures every method is compared on: torchvision ResNet-18, torchvision
VGG-11-BN after its in-place ReLU (at the BN output pytorch-grad-cam's stored tensor is
overwritten by that ReLU), and timm's EfficientNet-B0 (BatchNormAct2d, SiLU). All at 112 px,
where each layer below gives a 7 x 7 map. Random-init models with recalibrated BatchNorm
statistics, built once per test session: the tests never modify them.

(timm's ConvNeXt is no good here at random init: its layer scales start at 1e-6, so its maps
at ``stages.2`` are of the order of 1e-6 and the comparison measures float32 noise.)
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from helpers import build, recalibrate_batchnorm
from torch import nn

from camkit import Explainer
from camkit.methods import CAMMethod

SIZE = 112
TOLERANCE = 2e-3

ARCHITECTURES = [
    ("torchvision", "resnet18", "layer3"),
    ("torchvision", "vgg11_bn", "features.27"),
    ("timm", "efficientnet_b0", "blocks.4"),
]
IDS = [name for _, name, _ in ARCHITECTURES]


@functools.cache
def model(source: str, name: str) -> nn.Module:
    """The random-init model, recalibrated at :data:`SIZE`, in eval mode (cached)."""
    return recalibrate_batchnorm(build(source, name), size=SIZE)


def inputs(seed: int = 7, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def camkit_maps(
    net: nn.Module, method: CAMMethod, layer: str, x: torch.Tensor
) -> tuple[np.ndarray, list[int]]:
    """camkit's raw maps ``(B, h, w)`` at the layer and the classes explained (predicted)."""
    batch = Explainer(net, method=method, layer=layer, device="cpu").explain_batch(x)
    targets = batch.targets
    assert all(t is not None for t in targets)
    return batch.raws(), [int(t) for t in targets if t is not None]


def reference_maps(
    cls: Any, net: nn.Module, layer: str, x: torch.Tensor, targets: list[int], **kwargs: Any
) -> np.ndarray:
    """pytorch-grad-cam's map of ``cls`` at the layer's resolution, before its clipping at 0
    and its resizing: ``get_cam_image`` on the activations and gradients it captured."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = net.get_submodule(layer)
    wanted = [ClassifierOutputTarget(t) for t in targets]
    with cls(model=net, target_layers=[module], **kwargs) as cam:
        cam(input_tensor=x, targets=wanted)
        store = cam.activations_and_grads
        activations = store.activations[-1].numpy()
        gradients = store.gradients[-1].numpy() if store.gradients else None
        raw = cam.get_cam_image(x, module, wanted, activations, gradients, False)
    return np.asarray(raw, dtype=np.float32)
