"""Smooth Grad-CAM++: Grad-CAM++ with its derivatives averaged over noisy copies of the input."""

from __future__ import annotations

import torch
from torch import Tensor

from camkit.errors import ConfigurationError
from camkit.methods.base import CAMMethod
from camkit.methods.context import MethodContext

__all__ = ["SmoothGradCAMPlusPlus"]


class SmoothGradCAMPlusPlus(CAMMethod):
    """Smooth Grad-CAM++ (Omeiza, Speakman, Cintas & Weldemariam, "Smooth Grad-CAM++: An
    Enhanced Inference Level Visualization Technique for Deep Convolutional Neural Network
    Models", IntelliSys 2019, arXiv 1908.01224); the reference is torchcam 0.5.0's
    ``SmoothGradCAMpp``.

    Each input gets ``n`` noisy copies ``x + ε_m``, ``ε_m ~ N(0, std²)`` drawn independently
    for every value of the preprocessed input. With ``g_m = ∂y/∂A`` on copy ``m`` (the
    explanation's own target on every copy) and SmoothGrad's averages
    ``D_p = (1/n) Σ_m g_m^p``, the Grad-CAM++ weights (Eq. 19 of its paper) are formed from
    the averaged derivatives and the activations ``A`` of the original input
    (``S_k = Σ_ab A^k_ab``)::

        α^k_ij = D_2 / (2·D_2 + S_k·D_3 + ε)      (α = 0 where D_2 = 0)
        w_k    = Σ_ij α^k_ij · ReLU(D_1)
        CAM    = ReLU( Σ_k w_k · A^k )

    Cost: the pipeline's plain forward, then ``n`` forward passes with gradients through the
    part after the layer (several copies per pass, ``context.batch_size`` inputs at most).

    Args:
        num_samples: ``n``, the number of noisy copies (torchcam's default, 4).
        std: the standard deviation of the noise, in the units of the preprocessed input
            (torchcam's default, 0.3, not scaled by the input's range). SmoothGrad's paper
            states its noise as a fraction of the input's range; with ImageNet
            normalisation (a range of about 4.5) 0.3 is about 7 %.
        eps: added to the denominator of α (torchcam's 1e-8).
        seed: ``None`` draws from torch's global CPU generator, as torchcam does (seed it
            with ``torch.manual_seed`` for repeatable maps); an int seeds a fresh generator
            on every call, so every call gives the same map; a ``torch.Generator`` is used
            and advanced. The noise is drawn on the generator's device (the CPU unless a
            device generator is given) and moved to the model's, so a seed gives the same
            noise on every device, and the same draws as torchcam after
            ``torch.manual_seed(seed)``.

    Departures. The paper's α has the averaged first derivative in its numerator; torchcam
    corrects it to the second, which makes α Grad-CAM++'s, and camkit follows. torchcam
    0.5.0's code then departs from the formula in three places, where camkit keeps to it: its
    denominator sums ``D_3 · A`` over the map instead of ``S_k · D_3`` at each position (the
    formula its documentation gives; the two agree when the gradient is constant over the
    map, as right before a global average pool and a linear head); it takes the ReLU of the
    LAST noisy copy's gradient instead of the averaged ``D_1``; and it weights the
    activations of the LAST noisy copy instead of the original input's (its hook keeps the
    latest forward). camkit's map is a smoothed Grad-CAM++ map of the input itself, not of
    one noisy copy, and it varies less from seed to seed than torchcam's.
    """

    name = "smoothgradcam++"
    stochastic = True
    needs_gradients = False  # only the noisy copies' gradients are used
    extra_passes = True

    def __init__(
        self,
        num_samples: int = 4,
        std: float = 0.3,
        eps: float = 1e-8,
        seed: int | torch.Generator | None = None,
    ) -> None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ConfigurationError(
                f"SmoothGradCAMPlusPlus num_samples must be an int >= 1, got {num_samples!r}"
            )
        if not std >= 0.0:
            raise ConfigurationError(f"SmoothGradCAMPlusPlus std must be >= 0, got {std!r}")
        if not eps >= 0.0:
            raise ConfigurationError(f"SmoothGradCAMPlusPlus eps must be >= 0, got {eps!r}")
        is_int = isinstance(seed, int) and not isinstance(seed, bool)
        if seed is not None and not is_int and not isinstance(seed, torch.Generator):
            raise ConfigurationError(
                "SmoothGradCAMPlusPlus seed must be None, an int or a torch.Generator, "
                f"got {seed!r}"
            )
        self.num_samples = num_samples
        self.std = float(std)
        self.eps = float(eps)
        self.seed = seed

    def _generator(self) -> torch.Generator | None:
        if isinstance(self.seed, int):
            return torch.Generator().manual_seed(self.seed)
        return self.seed

    def compute(self, context: MethodContext) -> Tensor:
        inputs = context.inputs
        generator = self._generator()
        device = generator.device if generator is not None else torch.device("cpu")
        shape = tuple(inputs.shape)

        def noisy(start: int, stop: int) -> Tensor:
            # one draw of the whole batch per copy, in order: torchcam's order of draws
            noise = torch.stack(
                [
                    torch.randn(shape, generator=generator, device=device)
                    for _ in range(start, stop)
                ],
                dim=1,
            )
            return inputs[:, None].float() + self.std * noise.to(inputs.device)

        activations = context.activations
        d1 = torch.zeros_like(activations)
        d2 = torch.zeros_like(activations)
        d3 = torch.zeros_like(activations)
        for capture in context.capture_inputs(noisy, count=self.num_samples):
            gradient = capture.gradients
            assert gradient is not None
            squared = gradient * gradient
            d1 += gradient
            d2 += squared
            d3 += squared * gradient
        d1, d2, d3 = (d / self.num_samples for d in (d1, d2, d3))
        sums = activations.sum(dim=(2, 3), keepdim=True)
        denominator = 2.0 * d2 + sums * d3 + self.eps
        valid = (d2 > 0) & (denominator != 0)
        alpha = torch.where(valid, d2 / denominator.masked_fill(~valid, 1.0), 0.0)
        weights = (alpha * d1.clamp(min=0)).sum(dim=(2, 3))
        return torch.relu(torch.einsum("bc,bchw->bhw", weights, activations))

    def __repr__(self) -> str:
        return (
            f"SmoothGradCAMPlusPlus(num_samples={self.num_samples!r}, std={self.std!r}, "
            f"eps={self.eps!r}, seed={self.seed!r})"
        )
