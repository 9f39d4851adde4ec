"""Structural fallback: find the last spatial map that feeds the classifier."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from camkit.errors import LayerResolutionError
from camkit.layers.base import LayerResolver

__all__ = [
    "TRANSFORMER_HINT",
    "TRANSFORMER_HINT_INSTALLED",
    "StructuralResolver",
    "TracedCall",
    "declared_layout",
    "declares_channels_last",
    "trace_calls",
    "transformer_hint",
]

TRANSFORMER_HINT = (
    "ViT, DeiT and Swin models need the camkit-vit plugin package: pip install camkit-vit "
    "(in a checkout of camkit: pip install -e plugins/camkit-vit). Other transformers need "
    "layer= and a camkit_to_spatial hook that reshapes that layer's output "
    "(docs/plugins.md)."
)
"""What to do about a vision transformer when no plugin handles it."""
TRANSFORMER_HINT_INSTALLED = (
    "camkit-vit is installed but does not handle this model or layer: it covers timm's "
    "ViT, DeiT and Swin, at the layers it picks when layer= is left out or at layers whose "
    "output is a token sequence or a channels-last map. For other transformers, pass layer= "
    "and register a camkit_to_spatial hook that reshapes that layer's output "
    "(docs/plugins.md)."
)
"""The same advice when camkit-vit is installed but did not handle the model or layer."""

VIT_PLUGIN = "camkit-vit"
"""The distribution name of the vision-transformer plugin."""


def transformer_hint() -> str:
    """What to do about a transformer layout camkit cannot read, depending on whether the
    camkit-vit plugin is loaded."""
    from camkit.plugins.manager import DISABLE_AUTOLOAD_ENV, _autoload_disabled, list_plugins

    if any(plugin.distribution == VIT_PLUGIN for plugin in list_plugins()):
        return TRANSFORMER_HINT_INSTALLED
    if _autoload_disabled() and _installed(VIT_PLUGIN):
        return (
            f"camkit-vit is installed but not loaded, because {DISABLE_AUTOLOAD_ENV} is set: "
            "unset it, or register camkit_vit.plugin with camkit.register_plugin."
        )
    return TRANSFORMER_HINT


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


_PASS_THROUGH_MARKERS = ("Pool", "Dropout", "Identity", "Flatten", "DropPath")
"""Module types whose output is never a useful target: it only pools, drops or passes
through what another module produced. Matched by class name so that timm's
``SelectAdaptivePool2d`` and similar wrappers are covered too.
"""


def _is_pass_through(module: nn.Module) -> bool:
    return any(marker in type(module).__name__ for marker in _PASS_THROUGH_MARKERS)


def declared_layout(module: nn.Module) -> str | None:
    """The layout ``module`` declares for its 4-D outputs, ``"NHWC"`` or ``"NCHW"``, read
    from timm's ``output_fmt`` (a string or a ``Format`` enum); ``None`` if it declares
    neither."""
    fmt = getattr(module, "output_fmt", None)
    if fmt is None:
        return None
    name = str(getattr(fmt, "value", fmt)).upper()
    return name if name in ("NHWC", "NCHW") else None


def declares_channels_last(model: nn.Module) -> bool:
    """Whether ``model`` declares channels-last ``(B, H, W, C)`` feature maps.

    timm's Swin-style models say so with ``output_fmt == "NHWC"``, and so do timm patch
    embeddings that output channels-last maps; such 4-D outputs must not be read as
    ``(B, C, H, W)``.
    """
    return declared_layout(model) == "NHWC"


def _is_spatial(value: Any) -> bool:
    return isinstance(value, Tensor) and value.ndim == 4 and value.shape[-1] * value.shape[-2] > 1


@attrs.frozen
class TracedCall:
    """One module call seen by :func:`trace_calls`.

    Attributes:
        name: dotted module name.
        kind: the module's class name.
        shape: output shape, or ``None`` when the output is not a tensor.
        candidate: whether the output is a spatial map a CAM can use (see
            :class:`StructuralResolver`).
    """

    name: str
    kind: str
    shape: tuple[int, ...] | None
    candidate: bool


def trace_calls(model: nn.Module, example: Tensor) -> list[TracedCall]:
    """Run ``model`` once on ``example`` under ``torch.no_grad`` and record every submodule
    call, in the order the calls end. The caller puts the model in eval mode."""
    names = {id(module): name for name, module in model.named_modules()}
    producer: dict[int, nn.Module] = {}
    keep_alive: list[Tensor] = []
    calls: list[TracedCall] = []

    def record(module: nn.Module, args: Any, output: Any) -> None:
        name = names.get(id(module))
        if not name:
            return
        origin: nn.Module | None = None
        shape: tuple[int, ...] | None = None
        if isinstance(output, Tensor):
            keep_alive.append(output)
            shape = tuple(output.shape)
            if not any(output is arg for arg in args):
                producer.setdefault(id(output), module)
            origin = producer.get(id(output))
        candidate = (
            _is_spatial(output)
            and not _is_pass_through(module)
            and (origin is None or not _is_pass_through(origin))
        )
        calls.append(TracedCall(name, type(module).__name__, shape, candidate))

    handles = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
        keep_alive.clear()
    return calls


class StructuralResolver(LayerResolver):
    """Picks the target layer of any CNN from one dry forward pass.

    Every module's output is recorded in the order the calls end. The result is the last
    module whose output is a spatial map ``(B, C, H, W)`` with ``H·W > 1`` and was not merely
    produced by a pooling, dropout or identity module (so torchvision VGG's 7×7 adaptive
    ``avgpool`` or a container that returns a pooling output is never picked). A module called
    several times counts by its last call. Among modules returning the very same tensor
    (a block and its last activation), the outermost one — whose call ends last — wins.
    """

    name = "structural"

    token_outputs_threshold = 3
    """Number of token-sequence outputs ``(B, N, C)`` after the last spatial map above which
    the model is taken for a transformer.
    """

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        if declares_channels_last(model):
            raise LayerResolutionError(
                f"{type(model).__name__} looks like a vision transformer: it declares "
                "channels-last (B, H, W, C) feature maps (output_fmt='NHWC'), which camkit "
                f"does not guess the layout of. {transformer_hint()}"
            )
        if example is None:
            return None
        calls = trace_calls(model, example[:1])
        last = max((i for i, call in enumerate(calls) if call.candidate), default=None)
        if last is None:
            return None
        tokens_after = sum(
            call.shape is not None and len(call.shape) == 3 for call in calls[last + 1 :]
        )
        if tokens_after >= self.token_outputs_threshold:
            raise LayerResolutionError(
                f"{type(model).__name__} looks like a vision transformer: its last layers "
                f"produce token sequences (B, N, C), not spatial maps. {transformer_hint()}"
            )
        return calls[last].name
