"""The :class:`CAMMethod` abstraction: from what was captured at a layer to a map."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import attrs
import torch
from torch import Tensor

__all__ = ["CAMMethod", "GradientWeightedCAM", "LayerCapture"]


def _is_spatial(_: object, attribute: attrs.Attribute[Tensor], value: Tensor) -> None:
    if not isinstance(value, Tensor) or value.ndim != 4:
        raise ValueError(
            f"LayerCapture.{attribute.name} must be a (B, C, H, W) tensor, "
            f"got {type(value).__name__} with shape {tuple(getattr(value, 'shape', ()))}"
        )


@attrs.frozen(eq=False)
class LayerCapture:
    """What an explainer recorded at the target layer for one batch.

    Attributes:
        activations: the layer's output ``A``, shape ``(B, C, H, W)``, detached.
        gradients: ``∂y/∂A`` of each sample's target score ``y``, same shape, detached.
        scores: the target score of each sample, shape ``(B,)``, detached.
        layer: dotted name of the layer in the model.
    """

    activations: Tensor = attrs.field(validator=_is_spatial)
    gradients: Tensor = attrs.field(validator=_is_spatial)
    scores: Tensor
    layer: str

    def __attrs_post_init__(self) -> None:
        if self.activations.shape != self.gradients.shape:
            raise ValueError(
                "LayerCapture.activations and .gradients must have the same shape, got "
                f"{tuple(self.activations.shape)} and {tuple(self.gradients.shape)}"
            )


class CAMMethod(ABC):
    """A class-activation-map method.

    A method receives a :class:`LayerCapture` and returns one non-negative map per sample,
    shape ``(B, H, W)``, at the layer's resolution (before any normalisation or resizing,
    which the :class:`~camkit.Explainer` does).

    Subclasses set :attr:`name` (the registry name) and implement :meth:`compute`.
    Gradient-weighted methods should subclass :class:`GradientWeightedCAM` instead and only
    override :meth:`GradientWeightedCAM.channel_weights`.
    """

    name: ClassVar[str] = ""
    """Name under which the method is registered (``Explainer(method=name)``)."""
    needs_gradients: ClassVar[bool] = True
    """Whether the explainer must compute ``∂y/∂A``; methods that do not need it may say so."""

    @abstractmethod
    def compute(self, capture: LayerCapture) -> Tensor:
        """Return the raw maps, shape ``(B, H, W)``, non-negative."""

    def __call__(self, capture: LayerCapture) -> Tensor:
        return self.compute(capture)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GradientWeightedCAM(CAMMethod):
    """Base of the methods that weight activation channels: ``ReLU(Σ_k w_k · A^k)``.

    Override :meth:`channel_weights` to define a new method; everything else (capture,
    ReLU, normalisation, resizing, rendering) is shared.

    Half-precision captures (``float16``, ``bfloat16``) are computed in ``float32``: the
    squares and cubes of small gradients, as in Grad-CAM++, underflow to zero in ``float16``
    and would give empty maps.
    """

    @abstractmethod
    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """Return the weight ``w_k`` of each channel, shape ``(B, C)``."""

    def compute(self, capture: LayerCapture) -> Tensor:
        activations, gradients = _at_least_float32(capture.activations, capture.gradients)
        weights = self.channel_weights(activations, gradients)
        expected = activations.shape[:2]
        if weights.shape != expected:
            raise ValueError(
                f"{type(self).__name__}.channel_weights returned shape {tuple(weights.shape)}, "
                f"expected (B, C) = {tuple(expected)}"
            )
        cam = torch.einsum("bc,bchw->bhw", weights.to(activations.dtype), activations)
        return torch.relu(cam)


def _at_least_float32(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors, with floating types narrower than ``float32`` upcast to it."""
    return tuple(
        t.float() if t.is_floating_point() and torch.finfo(t.dtype).bits < 32 else t
        for t in tensors
    )
