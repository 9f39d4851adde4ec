"""Structural fallback: find the last spatial map that feeds the classifier."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor, nn

from camkit.errors import LayerResolutionError
from camkit.layers.base import LayerResolver

__all__ = [
    "StructuralResolver",
    "TracedCall",
    "declared_layout",
    "declares_channels_last",
    "trace_calls",
]


def _layout_advice(model: nn.Module) -> str:
    """The plugins' advice (or camkit's generic advice) for a model whose maps camkit cannot
    read. Imported here: the plugin manager imports this module through the built-ins."""
    from camkit.plugins.manager import advice

    return advice(model, None, "layout")


_PASS_THROUGH_MARKERS = ("Pool", "Dropout", "Identity", "Flatten", "DropPath")
"""Module types whose output is never a useful target: it only pools, drops or passes
through what another module produced. Matched by class name so that timm's
``SelectAdaptivePool2d`` and similar wrappers are covered too.
"""


def _is_pass_through(module: nn.Module) -> bool:
    return any(marker in type(module).__name__ for marker in _PASS_THROUGH_MARKERS)


def declared_layout(module: nn.Module) -> str | None:
    """The layout a module declares for its 4-D outputs.

    Read from the module's own ``output_fmt`` attribute, the convention of timm (a string or
    an enum whose ``value`` is one), case-insensitively. Only the module itself is read, not
    its children or its parents. camkit's built-in ``camkit_to_spatial`` uses it to refuse
    channels-last maps; plugins use it to tell which way round a 4-D output is.

    Args:
        module: any module (a model, a stage, a patch embedding).

    Returns:
        ``"NHWC"`` (channels-last ``(B, H, W, C)``), ``"NCHW"`` (channels-first
        ``(B, C, H, W)``), or ``None`` when the module declares neither.
    """
    fmt = getattr(module, "output_fmt", None)
    if fmt is None:
        return None
    name = str(getattr(fmt, "value", fmt)).upper()
    return name if name in ("NHWC", "NCHW") else None


def declares_channels_last(model: nn.Module) -> bool:
    """Whether ``model`` declares channels-last ``(B, H, W, C)`` maps.

    That is, :func:`declared_layout` is ``"NHWC"`` (timm's ``output_fmt == "NHWC"``, which
    some timm models and patch embeddings set). Such 4-D outputs must not be read as
    ``(B, C, H, W)``: the structural resolver refuses such a model, and the built-in
    ``camkit_to_spatial`` leaves their maps to plugins.

    Args:
        model: any module, a whole model or one of its layers.
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

    A model that declares channels-last maps (:func:`declares_channels_last`), or whose last
    spatial map is followed by :attr:`token_outputs_threshold` or more token sequences
    ``(B, N, C)``, raises :class:`~camkit.errors.LayerResolutionError` instead: its maps are
    not ``(B, C, H, W)``, and only a plugin knows their layout. The message ends with the
    plugins' advice for the problem ``"layout"`` (:func:`camkit.plugins.advice`).
    """

    name = "structural"

    token_outputs_threshold = 3
    """Number of token-sequence outputs ``(B, N, C)`` after the last spatial map from which on
    the model's maps are taken to be token sequences, which camkit does not read as spatial
    maps: :class:`~camkit.errors.LayerResolutionError` is raised, with the plugins' advice.
    """

    def resolve(self, model: nn.Module, example: Tensor | None) -> str | None:
        if declares_channels_last(model):
            raise LayerResolutionError(
                f"{type(model).__name__} declares channels-last (B, H, W, C) feature maps "
                "(output_fmt='NHWC'), which camkit does not guess the layout of. "
                f"{_layout_advice(model)}"
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
                f"{type(model).__name__}: its last layers produce token sequences (B, N, C), "
                "not spatial maps (B, C, H, W), and camkit does not guess how the tokens lie "
                f"on a grid. {_layout_advice(model)}"
            )
        return calls[last].name
