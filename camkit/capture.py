"""Running the model once and capturing a layer's activations and gradients.

The forward pass runs under ``torch.no_grad()`` up to the target layer. A forward hook on the
layer replaces its output by a fresh leaf tensor that requires grad and switches grad mode on
for the rest of the forward, so autograd records only the layers after the target (usually
a pooling and a linear head). ``torch.autograd.grad`` then computes ``∂score/∂A`` and nothing
else: no parameter ``.grad`` is written and nothing before the layer is kept for backward.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from camkit.errors import EmptyMapWarning, LayerResolutionError
from camkit.methods.base import LayerCapture
from camkit.plugins.manager import advice
from camkit.targets import OutputSelector, TargetSpec, target_scores

__all__ = ["CaptureResult", "capture_layer", "explanation_mode"]


@contextmanager
def explanation_mode(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode and restore each module's own flag afterwards.

    Also leaves inference mode and restores the caller's grad mode, whatever happens inside.
    """
    flags = [(module, module.training) for module in model.modules()]
    grad_enabled = torch.is_grad_enabled()
    try:
        with torch.inference_mode(False):
            for module, _ in flags:
                module.training = False
            yield
    finally:
        for module, flag in flags:
            module.training = flag
        torch.set_grad_enabled(grad_enabled)


@attrs.frozen(eq=False)
class CaptureResult:
    """What one capture pass produced: the layer capture, the logits and the targets."""

    capture: LayerCapture
    logits: Tensor
    targets: list[int | None]


def capture_layer(
    model: nn.Module,
    layer: str,
    inputs: Tensor,
    target: TargetSpec,
    select: OutputSelector,
    *,
    to_spatial: Any,
    needs_gradients: bool = True,
) -> CaptureResult:
    """Run ``model`` on ``inputs`` and capture layer ``layer`` for ``target``.

    Must be called inside :func:`explanation_mode`. If the layer is called several times in
    one forward, its last call is used.

    Args:
        to_spatial: ``(tensor) -> (B, C, H, W) tensor or None``, applied to the activations
            and to the gradients.

    Raises:
        LayerResolutionError: the layer is not called, does not return a tensor, does not
            influence the score, or its output cannot be made spatial.
    """
    module = dict(model.named_modules())[layer]
    leaves: list[Tensor] = []

    def hook(_module: nn.Module, _args: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor):
            raise LayerResolutionError(
                f"layer {layer!r} returns {type(output).__name__}, not a tensor; choose a "
                "layer whose output is a single (B, C, H, W) tensor"
            )
        leaf = output.detach().requires_grad_(needs_gradients)
        leaves.append(leaf)
        if needs_gradients:
            torch.set_grad_enabled(True)
        return leaf.clone()  # later in-place ops (ReLU(inplace=True)) must not hit the leaf

    handle = module.register_forward_hook(hook)
    try:
        torch.set_grad_enabled(False)
        logits = select(model(inputs))
        scores, targets = target_scores(logits, target)
    finally:
        handle.remove()
    if not leaves:
        raise LayerResolutionError(
            f"layer {layer!r} was not called during the forward pass; choose a layer on the "
            "path from the input to the class scores"
        )
    activation = leaves[-1]
    if needs_gradients:
        gradient = None
        if scores.requires_grad:
            (gradient,) = torch.autograd.grad(scores.sum(), activation, allow_unused=True)
        if gradient is None:
            which = f"the last of the {len(leaves)} calls of" if len(leaves) > 1 else ""
            raise LayerResolutionError(
                f"the target score does not depend on {which or 'layer'} {layer!r}; choose "
                "a layer on the path from the input to the class scores"
            )
    else:
        gradient = torch.zeros_like(activation)
    torch.set_grad_enabled(False)
    activation_map = to_spatial(activation.detach())
    gradient_map = to_spatial(gradient.detach())
    if activation_map is None or gradient_map is None:
        raise LayerResolutionError(
            f"layer {layer!r} returns shape {tuple(activation.shape)}, which no "
            "camkit_to_spatial hook turns into a spatial map (B, C, H, W). "
            f"{advice(model, layer, 'layout')}"
        )
    if activation_map.shape[0] != inputs.shape[0]:
        raise LayerResolutionError(
            f"layer {layer!r} gives maps of shape {tuple(activation_map.shape)} for a batch "
            f"of {inputs.shape[0]} images: its first dimension is not the batch (attention "
            "windows or heads, for instance). Choose a layer whose output has one map per "
            "image."
        )
    if needs_gradients:
        _warn_if_empty(gradient_map, layer, model)
    capture = LayerCapture(activation_map, gradient_map, scores.detach(), layer)
    return CaptureResult(capture, logits.detach(), targets)


def _warn_if_empty(gradients: Tensor, layer: str, model: nn.Module) -> None:
    """Warn when some sample's gradient is zero everywhere on the layer's spatial map."""
    empty = int((gradients.flatten(1) == 0).all(dim=1).sum())
    if empty:
        warnings.warn(
            f"the gradient of the target score is zero everywhere on the map of layer "
            f"{layer!r} for {empty} of {gradients.shape[0]} images, so their explanations "
            "are empty. The score does not read this layer's spatial positions: choose an "
            "earlier layer. "
            f"{advice(model, layer, 'empty-map')}",
            EmptyMapWarning,
            stacklevel=4,
        )
