"""Shared helpers for camkit's tests (models, BatchNorm recalibration, reference maps)."""

from __future__ import annotations

import warnings

import numpy as np
import timm
import torch
import torchvision
from torch import nn


def build(source: str, name: str, seed: int = 0, **kwargs: object) -> nn.Module:
    """A random-init model from torchvision or timm, deterministic by ``seed``."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if source == "timm":
            return timm.create_model(name, pretrained=False, **kwargs)
        return getattr(torchvision.models, name)(weights=None, **kwargs)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, size: int = 224, batches: int = 3) -> nn.Module:
    """Give a random-init model sensible BatchNorm statistics, then put it in eval mode.

    Random-init networks have running statistics (0, 1) that saturate or kill activations;
    a few train-mode forwards on random images make the maps non-degenerate.
    """
    generator = torch.Generator().manual_seed(1234)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    model.train()
    for _ in range(batches):
        model(torch.randn(4, 3, size, size, generator=generator))
    return model.eval()


def minmax(x: np.ndarray) -> np.ndarray:
    """Per-image min-max normalisation of (B, H, W) maps, as pytorch-grad-cam does."""
    x = x - x.min(axis=(1, 2), keepdims=True)
    return x / (1e-7 + x.max(axis=(1, 2), keepdims=True))


def reference_gradcampp(
    model: nn.Module,
    layer: nn.Module,
    batch: torch.Tensor,
    targets: list[int],
    *,
    eigen_smooth: bool = False,
    relu: bool = True,
) -> np.ndarray:
    """pytorch-grad-cam's GradCAMPlusPlus map at the layer's resolution (B, h, w), ReLU'd
    unless ``relu=False``; with ``eigen_smooth``, its first-principal-component map."""
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wanted = [ClassifierOutputTarget(t) for t in targets]
    with GradCAMPlusPlus(model=model, target_layers=[layer]) as cam:
        cam(input_tensor=batch, targets=wanted)
        store = cam.activations_and_grads
        activations = store.activations[-1].numpy()
        gradients = store.gradients[-1].numpy()
        raw = cam.get_cam_image(batch, layer, wanted, activations, gradients, eigen_smooth)
    return np.maximum(raw, 0) if relu else raw
