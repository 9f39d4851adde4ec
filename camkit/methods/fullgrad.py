"""FullGrad: the input-gradient and the bias-gradients of every layer, on the input grid."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.errors import ConfigurationError, MethodError, MethodNotApplicableError
from camkit.methods.base import CAMMethod
from camkit.methods.context import MethodContext

__all__ = ["FullGrad"]

# Normalisations whose shift and scale come from the input itself: their implicit bias
# (-mean(x) / std(x), plus their own bias) changes with the input, so the full-gradient
# decomposition has no fixed bias term for them.
_INPUT_STATISTICS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


@attrs.frozen
class _BiasSource:
    """A bias of the model: the module it belongs to, where its gradient is read (the
    module's output, or a child that receives the biased tensor) and its value per channel."""

    module: str
    read_at: str
    bias: Callable[[], Tensor]


@attrs.frozen
class _Plan:
    sources: list[_BiasSource]
    linears: list[str]
    unsupported: list[tuple[str, nn.Module, str]]  # (name, module, why)


class FullGrad(CAMMethod):
    """FullGrad (Srinivas & Fleuret, "Full-Gradient Representation for Neural Network
    Visualization", NeurIPS 2019, arXiv 1905.00780).

    A network made of linear maps with biases and piecewise-linear activations decomposes
    exactly as ``y(x) = ∇_x y · x + Σ_b ∂y/∂b · b`` over every bias ``b``. FullGrad maps both
    parts onto the image::

        S(x) = Σ_c ψ( |x ⊙ ∇_x y|_c ) + Σ_layers Σ_c ψ( |b_c · ∂y/∂z_c| )

    where ``z_c`` is channel ``c`` of the layer's (pre-activation) output, ``b_c`` its bias,
    and ``ψ`` rescales one map to ``[0, 1]`` (minus its minimum, divided by its maximum plus
    ``1e-7``) and resizes it bilinearly to the input. The map is returned at the INPUT
    resolution; ``context.layer`` is not used (with several layers the same map is computed
    for each). Cost: one forward and one backward pass down to the input (the pipeline's own
    capture is a plain forward without gradients).

    Biases accounted for (the first two as in the paper's code and pytorch-grad-cam):

    - ``nn.Conv2d`` (and subclasses) with a bias;
    - ``nn.BatchNorm2d`` with running statistics, whose effective bias is
      ``β − μ · γ / sqrt(σ² + eps)`` (``γ = 1``, ``β = 0`` without affine parameters);
    - a ``BatchNorm2d`` subclass that applies a ``drop`` then an ``act`` child after the
      normalisation (timm's ``BatchNormAct2d``): the gradient is read at the output of its
      ``drop`` child, which in eval mode is the normalisation's output;
    - ``nn.Linear`` on a ``(B, F)`` input, after global pooling: its bias-gradient has no
      spatial extent, so it adds nothing to the map (``ψ`` of a constant is 0), as in the
      paper's code, which collects but does not draw it.

    Unsupported, raising :class:`~camkit.errors.MethodError` that names the modules:
    normalisations that use the input's own statistics (``LayerNorm``, ``GroupNorm``,
    ``InstanceNorm``, ``RMSNorm``, ``BatchNorm2d`` without running statistics), whose
    implicit bias changes with the input so the decomposition has no bias term for them;
    ``nn.Linear`` applied at every position (transformer and ConvNeXt blocks); and any other
    module holding a bias (``Conv1d``, ``Conv3d``, ``ConvTranspose2d``, attention,
    ``FrozenBatchNorm2d``, other fused normalisations). ConvNeXt and vision transformers
    are therefore refused; explain them with a gradient method at a layer.

    The decomposition is exact only for piecewise-linear networks (ReLU, max-pooling);
    with smooth activations (SiLU, GELU) FullGrad is an approximation, computed all the same.
    A module called several times in one forward contributes its last call only.

    Departures. The paper's formula applies ``ψ`` to each channel's map; the paper's code
    rescales a whole layer (and the three input channels) at once and resizes with
    ``align_corners=True``. camkit follows the paper's formula and pytorch-grad-cam 1.5: every
    channel, the input's three included, rescaled on its own and resized with half-pixel
    centres (OpenCV's, ``align_corners=False``), so that its maps match pytorch-grad-cam's.
    pytorch-grad-cam takes the modules whose type is exactly ``Conv2d`` or ``BatchNorm2d``
    with a bias and silently skips every other bias; camkit also takes subclasses,
    BatchNorm without affine parameters and fused BatchNorm-activation modules into account,
    and refuses models with biases it cannot account for.

    Args:
        eps: added to the maximum in ``ψ`` (pytorch-grad-cam's ``1e-7``).
    """

    name = "fullgrad"
    needs_gradients = False  # the pipeline's capture is not used: one full pass instead
    extra_passes = True

    def __init__(self, eps: float = 1e-7) -> None:
        if not eps > 0.0:
            raise ConfigurationError(f"FullGrad eps must be > 0, got {eps!r}")
        self.eps = float(eps)

    def compute(self, context: MethodContext) -> Tensor:
        plan = _plan(context.model)
        if plan.unsupported:
            raise MethodNotApplicableError(_unsupported_message(plan.unsupported))
        names = [source.read_at for source in plan.sources] + plan.linears
        full = context.full_gradients(names)
        modules = dict(context.model.named_modules())
        per_position = [
            (name, modules[name], "applied at every position, not after global pooling")
            for name in plan.linears
            if full.outputs[name][0].ndim != 2
        ]
        if per_position:
            raise MethodNotApplicableError(_unsupported_message(per_position))

        size = context.input_size
        inputs = full.input.float()
        total = self._channel_maps(inputs * full.input_gradient.float()).sum(dim=1)
        by_grid: dict[tuple[int, int], Tensor] = {}
        for source in plan.sources:
            gradient = full.outputs[source.read_at][1].float()
            if gradient.ndim != 4:
                raise MethodError(
                    f"FullGrad expected a (B, C, h, w) output from {source.read_at!r}, got "
                    f"{tuple(gradient.shape)}"
                )
            bias = source.bias().detach().float().to(gradient.device)
            maps = self._channel_maps(gradient * bias[None, :, None, None]).sum(dim=1)
            grid = (int(maps.shape[-2]), int(maps.shape[-1]))
            by_grid[grid] = by_grid[grid] + maps if grid in by_grid else maps
        for grid, maps in by_grid.items():  # resizing is linear: once per grid
            if grid != size:
                maps = F.interpolate(maps[:, None], size=size, mode="bilinear")[:, 0]
            total = total + maps
        return total

    def _channel_maps(self, tensor: Tensor) -> Tensor:
        """``ψ`` without the resize: ``|t|`` rescaled to ``[0, 1]`` per image and channel."""
        magnitude = tensor.abs()
        shifted = magnitude - magnitude.amin(dim=(2, 3), keepdim=True)
        return shifted / (shifted.amax(dim=(2, 3), keepdim=True) + self.eps)

    def __repr__(self) -> str:
        return f"FullGrad(eps={self.eps!r})"


def _plan(model: nn.Module) -> _Plan:
    """Where FullGrad reads each bias-gradient, and what it cannot account for."""
    sources: list[_BiasSource] = []
    linears: list[str] = []
    unsupported: list[tuple[str, nn.Module, str]] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.bias is not None:
                sources.append(_BiasSource(name, name, _parameter(module.bias)))
        elif isinstance(module, nn.BatchNorm2d):
            found = _batchnorm_source(name, module)
            if isinstance(found, str):
                unsupported.append((name, module, found))
            else:
                sources.append(found)
        elif isinstance(module, nn.Linear):
            linears.append(name)
        elif isinstance(module, _INPUT_STATISTICS):
            unsupported.append((name, module, "normalises with the input's own statistics"))
        elif _holds_bias(module):
            unsupported.append((name, module, "holds a bias FullGrad cannot place on the image"))
    return _Plan(sources, linears, unsupported)


def _parameter(tensor: Tensor) -> Callable[[], Tensor]:
    return lambda: tensor


def _batchnorm_source(name: str, module: nn.BatchNorm2d) -> _BiasSource | str:
    """The bias source of a BatchNorm2d, or why it cannot be one."""
    if module.running_mean is None or module.running_var is None:
        return "BatchNorm without running statistics normalises with the batch's statistics"
    read_at = name
    if type(module).forward is not nn.BatchNorm2d.forward:
        children = dict(module.named_children())
        if set(children) != {"drop", "act"}:
            return (
                "a BatchNorm2d subclass whose output is not the normalisation's: the "
                "gradient its bias needs cannot be read"
            )
        read_at = f"{name}.drop" if name else "drop"

    def effective_bias() -> Tensor:
        mean, var = module.running_mean, module.running_var
        assert mean is not None and var is not None
        scale = torch.rsqrt(var.float() + module.eps)
        if module.weight is not None:
            scale = scale * module.weight.float()
        shift = -mean.float() * scale
        if module.bias is not None:
            shift = shift + module.bias.float()
        return shift

    return _BiasSource(name, read_at, effective_bias)


def _holds_bias(module: nn.Module) -> bool:
    """Whether the module itself (not its children) has a parameter or buffer named like a
    bias."""
    own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    return any("bias" in key and value is not None for key, value in own)


def _unsupported_message(found: list[tuple[str, nn.Module, str]]) -> str:
    listed = "; ".join(
        f"{name or '<model>'} ({type(module).__name__}: {why})" for name, module, why in found[:8]
    )
    more = f" and {len(found) - 8} more" if len(found) > 8 else ""
    return (
        f"FullGrad cannot account for the biases of {len(found)} module(s): {listed}{more}. "
        "FullGrad decomposes the score into the input-gradient and the bias-gradients of "
        "Conv2d and BatchNorm2d layers (running statistics) and of Linear heads after global "
        "pooling; normalisations with input statistics (LayerNorm, GroupNorm, InstanceNorm), "
        "per-position Linear layers and other biased modules have no such term. Explain this "
        "model with a gradient method at a layer (method='gradcam' or 'gradcam++')."
    )
