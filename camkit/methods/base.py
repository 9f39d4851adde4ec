"""The :class:`CAMMethod` abstraction: from a :class:`~camkit.methods.MethodContext` to a map.

A method is stateless between calls. The pipeline hands it a context (what was captured at
one layer, the preprocessed inputs, the logits and targets, and the extra passes it may run)
and takes back one non-negative map per image. Normalisation, fusion of several layers,
placement on the original images and rendering are the pipeline's, identical for every
method.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import torch
from torch import Tensor

from camkit.errors import MethodError

if TYPE_CHECKING:
    from camkit.methods.context import MethodContext

__all__ = [
    "CAMMethod",
    "GradientWeightedCAM",
    "LayerCapture",
    "at_least_float32",
    "output_values_error",
    "output_values_ok",
]


def _is_spatial(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name == "gradients":
        return
    if not isinstance(value, Tensor) or value.ndim != 4:
        raise MethodError(
            f"LayerCapture.{attribute.name} must be a (B, C, H, W) tensor, "
            f"got {type(value).__name__} with shape {tuple(getattr(value, 'shape', ()))}"
        )


@attrs.frozen(eq=False)
class LayerCapture:
    """What the pipeline recorded at one layer for one batch and one set of targets.

    Attributes:
        activations: the layer's output ``A`` as a channels-first map ``(B, C, H, W)``,
            detached, at least ``float32`` (half-precision models are upcast).
        gradients: ``∂y/∂A`` of each image's target score ``y``, same shape and dtype,
            detached; ``None`` when the method declared ``needs_gradients = False``.
        scores: the target score of each image, shape ``(B,)``, detached.
        layer: dotted name of the layer in the model.
    """

    activations: Tensor = attrs.field(validator=_is_spatial)
    gradients: Tensor | None = attrs.field(validator=_is_spatial)
    scores: Tensor
    layer: str

    def __attrs_post_init__(self) -> None:
        if self.gradients is not None and self.activations.shape != self.gradients.shape:
            raise MethodError(
                "LayerCapture.activations and .gradients must have the same shape, got "
                f"{tuple(self.activations.shape)} and {tuple(self.gradients.shape)}"
            )


class CAMMethod(ABC):
    """A class-activation-map method.

    Subclasses set :attr:`name` (the registry name), declare what they need, and implement
    :meth:`compute`, which receives a :class:`~camkit.methods.MethodContext` and returns one
    non-negative map per image, shape ``(B, h, w)``: at the layer's resolution, or on any
    grid that covers the model input uniformly (the input's own resolution, for instance).
    The pipeline checks the result in one place (:meth:`check_output`).

    Channel-weighting methods subclass :class:`GradientWeightedCAM` instead and only override
    :meth:`GradientWeightedCAM.channel_weights`.

    A registered method is built with no arguments for ``Explainer(method="name")``, so every
    constructor argument needs a default; users who want other values pass an instance.
    """

    name: ClassVar[str] = ""
    """Name under which the method is registered (``Explainer(method=name)``)."""
    needs_gradients: ClassVar[bool] = True
    """Whether the pipeline computes ``∂y/∂A`` at the layer. ``False``: one forward under
    ``no_grad``, and ``context.gradients`` raises."""
    needs_higher_order: ClassVar[bool] = False
    """Whether the gradient graph after the layer is kept for
    :meth:`~camkit.methods.MethodContext.hessian_vector_product` (ShapleyCAM-style methods)."""
    stochastic: ClassVar[bool] = False
    """Whether the maps depend on random draws (noise samples): such methods take a seed,
    and ``camkit evaluate`` leaves them out of its default table."""
    extra_passes: ClassVar[bool] = False
    """Whether the method runs the model again through the context (scoring perturbed inputs
    or replaced activations, captures on other inputs, full gradients). A method that does so
    without declaring it gets a :class:`~camkit.errors.MethodError`."""

    @abstractmethod
    def compute(self, context: MethodContext) -> Tensor:
        """Return the raw maps, shape ``(B, h, w)``, non-negative."""

    def weighted_activations(self, context: MethodContext) -> Tensor:
        """The method's per-channel contributions ``(B, C, h, w)`` before they are summed
        over channels (``w_k · A^k`` for a channel-weighting method), or
        ``NotImplementedError``.

        A method that implements it supports ``eigen_smooth``: the map is then the first
        principal component of these contributions
        (:func:`~camkit.methods.eigen.principal_projection`) after ReLU, instead of
        :meth:`compute`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define weighted_activations")

    @classmethod
    def supports_eigen_smooth(cls) -> bool:
        """Whether the method defines :meth:`weighted_activations`, so ``eigen_smooth``
        applies to it."""
        return cls.weighted_activations is not CAMMethod.weighted_activations

    def __call__(self, context: MethodContext) -> Tensor:
        return self.compute(context)

    def check_output(self, maps: object, batch: int) -> Tensor:
        """Validate what :meth:`compute` returned: a floating ``(B, h, w)`` tensor, finite and
        non-negative. Returns it detached, at least ``float32``.

        The pipeline runs the same checks, split in two so as not to wait for the device
        mid-call: :meth:`check_output_layout` at once, and the values' check
        (``output_values_ok`` and ``output_values_error`` of ``camkit.methods.base``) read
        with the rest of the call; a subclass that overrides this method gets it called
        instead.

        Raises:
            MethodError: naming the method, what it returned and what was expected.
        """
        result = self.check_output_layout(maps, batch)
        if not bool(output_values_ok(result)):
            raise output_values_error(type(self).__name__ + ".compute", result)
        return result

    def check_output_layout(self, maps: object, batch: int) -> Tensor:
        """The checks of :meth:`check_output` that need no values (no device
        synchronisation): a floating ``(B, h, w)`` tensor with a non-empty grid. Returns it
        detached, at least ``float32``.

        Raises:
            MethodError: naming the method, what it returned and what was expected.
        """
        label = type(self).__name__
        if not isinstance(maps, Tensor) or maps.ndim != 3 or maps.shape[0] != batch:
            shape = tuple(getattr(maps, "shape", ())) or type(maps).__name__
            raise MethodError(
                f"{label}.compute returned {shape}; it must return a tensor of shape "
                f"(B, h, w) with B = {batch}, one map per image"
            )
        if not maps.is_floating_point() or min(maps.shape[1:]) < 1:
            raise MethodError(
                f"{label}.compute returned a {maps.dtype} tensor of shape {tuple(maps.shape)}; "
                "it must be floating point with a non-empty grid"
            )
        (result,) = at_least_float32(maps.detach())
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GradientWeightedCAM(CAMMethod):
    """Base of the methods that weight activation channels: ``ReLU(Σ_k w_k · A^k)``.

    Override :meth:`channel_weights` to define a new method; everything else (capture,
    ReLU, normalisation, resizing, rendering) is shared.
    """

    @abstractmethod
    def channel_weights(self, activations: Tensor, gradients: Tensor) -> Tensor:
        """Return the weight ``w_k`` of each channel, shape ``(B, C)``."""

    def _weights(self, context: MethodContext) -> Tensor:
        activations, gradients = context.activations, context.gradients
        weights = self.channel_weights(activations, gradients)
        expected = activations.shape[:2]
        if not isinstance(weights, Tensor) or weights.shape != expected:
            shape = tuple(getattr(weights, "shape", ())) or type(weights).__name__
            raise MethodError(
                f"{type(self).__name__}.channel_weights returned {shape}, "
                f"expected (B, C) = {tuple(expected)}"
            )
        return weights.to(activations.dtype)

    def compute(self, context: MethodContext) -> Tensor:
        cam = torch.einsum("bc,bchw->bhw", self._weights(context), context.activations)
        return torch.relu(cam)

    def weighted_activations(self, context: MethodContext) -> Tensor:
        return self._weights(context)[:, :, None, None] * context.activations


def output_values_ok(maps: Tensor) -> Tensor:
    """Whether every value of ``maps`` is finite and non-negative: a 0-d bool tensor on the
    maps' device (reading it waits for the device)."""
    if maps.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=maps.device)
    low, high = torch.aminmax(maps.detach())  # NaN reaches both, and fails both tests
    return (low >= 0) & (high < math.inf)


def output_values_error(label: str, maps: Tensor) -> MethodError:
    """The error of :meth:`CAMMethod.check_output` for maps whose values are not all finite
    and non-negative; ``label`` names what returned them (``"GradCAM.compute"``)."""
    if not bool(torch.isfinite(maps).all()):
        return MethodError(
            f"{label} returned NaN or infinite values; check the model's "
            "activations and gradients at the layer (and the method's divisions)"
        )
    return MethodError(
        f"{label} returned negative values (minimum {float(maps.min()):g}); "
        "a CAM is non-negative: apply torch.relu to the map before returning it"
    )


def at_least_float32(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors, with floating types narrower than ``float32`` upcast to it.

    Half-precision captures are computed in ``float32``: the squares and cubes of small
    gradients, as in Grad-CAM++, underflow to zero in ``float16`` and would give empty maps.
    """
    return tuple(
        t.float() if t.is_floating_point() and torch.finfo(t.dtype).bits < 32 else t
        for t in tensors
    )
