"""Gradient-free methods that run the model again: Score-CAM, SS-CAM, IS-CAM, Ablation-CAM.

None of them reads a gradient (``needs_gradients = False``: the explanation's own forward runs
under ``no_grad``); each declares ``extra_passes = True`` and scores many versions of the batch
through its :class:`~camkit.methods.MethodContext`:

- the Score-CAM family masks the input with each activation channel and scores the masked
  inputs (:meth:`~camkit.methods.MethodContext.score_inputs`);
- Ablation-CAM zeroes one channel at a time at the layer and scores the rest of the model
  (:meth:`~camkit.methods.MethodContext.score_activations`, which runs the part before the
  layer once per chunk when the model allows it).

The versions are made chunk by chunk (the function form of the passes), at most
``batch_size`` inputs per forward pass, so memory stays bounded whatever the number of
channels. Channels that need no pass (constant ones for the Score-CAM family, all-zero ones for
Ablation-CAM) get the score they would get without being scored; each class says how.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from camkit.errors import ConfigurationError
from camkit.methods.base import CAMMethod

if TYPE_CHECKING:
    from camkit.methods.context import MethodContext

__all__ = ["ISCAM", "SSCAM", "AblationCAM", "ScoreCAM"]

Perturb = Callable[[Tensor, Tensor], Tensor]
"""``(masks (B, m, H, W), sample (m,)) -> masks``: what a Score-CAM variant does to the
normalised masks of ``m`` versions, ``sample`` being each version's sample index."""


def _batch_size(owner: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{owner} batch_size must be None (the explainer's batch_size) or an int >= 1, "
            f"got {value!r}"
        )
    return value


def _flag(owner: str, name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{owner} {name} must be True or False, got {value!r}")
    return value


def _samples(owner: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{owner} num_samples must be an int >= 1, got {value!r}")
    return value


def _scoring_order(skipped: Tensor) -> Tensor:
    """Per image, the channels to score, in ascending order, then the skipped ones: ``(B, J)``
    with ``J`` the largest number of channels any image needs scored. Images that need fewer
    are padded with skipped channels (scored like the others, their scores discarded)."""
    order = torch.argsort(skipped.to(torch.int32), dim=1, stable=True)
    needed = int((~skipped).sum(dim=1).max()) if skipped.numel() else 0
    return order[:, :needed]


def _channel_masks(
    activations: Tensor, channels: Tensor, size: tuple[int, int], align_corners: bool
) -> Tensor:
    """``norm(up(A^k))`` for the channels ``(B, u)`` of each image: ``(B, u, H, W)``.

    ``up`` is bilinear to the input size, ``norm`` min-max scaling of each map to ``[0, 1]``; a
    constant map gives 0 (its span is exactly 0).
    """
    rows = torch.arange(activations.shape[0], device=activations.device)[:, None]
    maps = F.interpolate(
        activations[rows, channels], size=size, mode="bilinear", align_corners=align_corners
    )
    low = maps.amin(dim=(2, 3), keepdim=True)
    span = maps.amax(dim=(2, 3), keepdim=True) - low
    return (maps - low) / torch.where(span > 0, span, torch.ones_like(span))


class _MaskScoringCAM(CAMMethod):
    """The Score-CAM family: ``CAM = ReLU(Σ_k softmax_k(s_k) · A^k)`` with ``s_k`` the mean
    target score of ``N`` inputs masked by a version of ``M^k = norm(up(A^k))``.

    Subclasses say what a version is (:meth:`_perturbation`), how many samples each channel
    gets (:attr:`_sample_count`) and how many versions stand for every constant channel
    (:attr:`_constant_versions`).

    Versions are ordered channel by channel, then sample by sample: version ``j·N + n`` is
    sample ``n`` of the ``j``-th channel scored (in ascending channel order, per image), and the
    versions standing for the constant channels come last.
    """

    needs_gradients = False
    extra_passes = True
    align_corners: ClassVar[bool] = False
    """How the masks are upsampled: ``False`` aligns pixel centres (PyTorch's default, and how
    camkit places every map on the image); ``True`` aligns the corner pixels, as
    pytorch-grad-cam's Score-CAM does. A subclass may set it."""

    def __init__(self, batch_size: int | None, skip_constant: bool, channels_last: bool) -> None:
        label = type(self).__name__
        self.batch_size = _batch_size(label, batch_size)
        self.skip_constant = _flag(label, "skip_constant", skip_constant)
        self.channels_last = _flag(label, "channels_last", channels_last)

    @property
    def _sample_count(self) -> int:
        return 1

    @property
    def _constant_versions(self) -> int:
        return 1

    def _perturbation(self, context: MethodContext) -> Perturb:
        return lambda masks, _sample: masks

    def compute(self, context: MethodContext) -> Tensor:
        activations = context.activations
        inputs = context.inputs
        batch, channels = activations.shape[:2]
        flat = activations.flatten(2)
        constant = flat.amax(dim=2) == flat.amin(dim=2)
        skip = self.skip_constant and bool(constant.any())
        if skip:
            order = _scoring_order(constant)
        else:
            order = torch.arange(channels, device=activations.device).expand(batch, channels)
        masked = ~constant.gather(1, order)  # the slots whose mask comes from the activation
        slots, samples = order.shape[1], self._sample_count
        regular = slots * samples
        shared = self._constant_versions if skip else 0
        perturb = self._perturbation(context)
        size = context.input_size

        def versions(start: int, stop: int) -> Tensor:
            index = torch.arange(start, stop, device=activations.device)
            is_regular = index < regular
            masks = activations.new_zeros(batch, stop - start, *size)
            if bool(is_regular.any()):
                slot = torch.div(index[is_regular], samples, rounding_mode="floor")
                wanted, position = torch.unique(slot, return_inverse=True)
                maps = _channel_masks(activations, order[:, wanted], size, self.align_corners)
                maps = maps * masked[:, wanted, None, None]
                masks[:, is_regular] = maps[:, position]
            sample = torch.where(is_regular, index % samples, index - regular)
            masks = perturb(masks, sample)
            return inputs[:, None] * masks[:, :, None].to(inputs.dtype)

        scores = context.score_inputs(
            versions,
            count=regular + shared,
            batch_size=self.batch_size,
            channels_last=self.channels_last,
        ).float()
        per_slot = scores[:, :regular].reshape(batch, slots, samples).mean(dim=2)
        if skip:
            constant_score = scores[:, regular:].mean(dim=1, keepdim=True)
            values = torch.where(masked, per_slot, constant_score)
            channel_scores = constant_score.expand(batch, channels).clone()
            channel_scores.scatter_(1, order, values)
        else:
            channel_scores = per_slot
        weights = torch.softmax(channel_scores, dim=1)
        return torch.relu(torch.einsum("bc,bchw->bhw", weights, activations))


class ScoreCAM(_MaskScoringCAM):
    """Score-CAM (Wang et al., CVPR Workshops 2020, arXiv 1910.01279).

    Each channel, upsampled to the input and scaled to ``[0, 1]``, masks the input; the softmax
    over the channels of the masked inputs' target scores weights the activations::

        M^k = norm(up(A^k))                    up: bilinear to H × W; norm: per map to [0, 1]
        w_k = softmax_k( y(x ⊙ M^k) )
        CAM = ReLU( Σ_k w_k · A^k )

    The paper subtracts the baseline's score ``y(x_b)`` from every ``y(x ⊙ M^k)``; that
    constant does not change the softmax, so camkit, like pytorch-grad-cam, leaves it out.
    camkit upsamples with ``align_corners=False`` (PyTorch's default and torchcam's; camkit
    places its maps on the image the same way) where pytorch-grad-cam uses
    ``align_corners=True``. On the coarse grids of small inputs (4 × 4 to 8 × 8) the two
    conventions' maps correlate at 0.976 to 0.999; a subclass that sets
    :attr:`align_corners` to ``True`` gives pytorch-grad-cam's maps to within 1e-5.

    A constant channel (all values equal at the layer, such as an all-zero channel after a
    ReLU) has the mask 0 everywhere, so its masked input is the zero image whatever the
    channel: camkit scores the zero image once per batch and gives that score to every constant
    channel instead of scoring each. The weights are exactly those of scoring them all
    (``skip_constant=False`` does). camkit sets such masks to exactly 0; pytorch-grad-cam divides
    by ``max − min + 1e-8``, which can turn a nonzero constant's rounding noise after
    upsampling into a mask of large values.

    Args:
        batch_size: inputs per forward pass; ``None`` takes the explainer's ``batch_size``.
        skip_constant: score the zero image once for all constant channels (above).
        channels_last: on the CPU, score with a channels-last twin of the model (faster;
            see :meth:`~camkit.methods.MethodContext.score_inputs`). ``False`` scores with
            the model itself.
    """

    name = "scorecam"

    def __init__(
        self,
        batch_size: int | None = None,
        skip_constant: bool = True,
        channels_last: bool = True,
    ) -> None:
        super().__init__(batch_size, skip_constant, channels_last)

    def __repr__(self) -> str:
        return (
            f"ScoreCAM(batch_size={self.batch_size!r}, skip_constant={self.skip_constant!r}, "
            f"channels_last={self.channels_last!r})"
        )


class SSCAM(_MaskScoringCAM):
    """SS-CAM, Smoothed Score-CAM (Wang, Naidu et al., arXiv 2006.14255, 2020; with IS-CAM in
    "Improved variants of Score-CAM via smoothing and integrating", CVPR Workshops 2021).

    Score-CAM whose channel scores are averaged over ``N`` noisy copies of each mask::

        M^k   = norm(up(A^k))
        s_k   = (1/N) Σ_n y( x ⊙ (M^k + δ_n) ),     δ_n ~ N(0, σ²) at each input pixel
        CAM   = ReLU( Σ_k softmax_k(s_k) · A^k )

    The defaults, ``N = 35`` and ``σ = 2``, are the paper's and torchcam 0.5.0's. The noise is
    one map per mask, shared by the colour channels, drawn at the input's resolution as
    torchcam does. torchcam scales each channel to ``[0, 1]`` at the layer's resolution and
    then upsamples; camkit upsamples first (as the Score-CAM paper writes ``norm(up(A^k))``).
    torchcam also subtracts the baseline score, which does not change the softmax.

    Noise is drawn per version, in order: version ``j·N + n`` (sample ``n`` of the ``j``-th
    channel scored, per image in ascending channel order) takes the next draw of shape
    ``(B, H, W)``. The result therefore does not depend on ``batch_size``, and a fixed ``seed``
    gives the same map for the same batch on the same device.

    Constant channels: their mask is 0, so each noisy copy is ``x ⊙ δ_n`` whatever the channel.
    camkit scores ``N`` such noise-only inputs once per batch and gives their mean to every
    constant channel. Each constant channel's score has the same distribution as when it is
    scored alone; the constant channels share one draw instead of each having its own.
    ``skip_constant=False`` scores each.

    Args:
        num_samples: ``N``, noisy copies per channel.
        std: ``σ``, standard deviation of the noise added to the ``[0, 1]`` masks.
        seed: seeds a generator made afresh for every call (on the model's device), so each
            call is reproducible. ``None`` draws from torch's default generator (seeded by
            ``torch.manual_seed``).
        generator: a :class:`torch.Generator` to draw from instead, whose state advances from
            call to call. Give ``seed`` or ``generator``, not both.
        batch_size: inputs per forward pass; ``None`` takes the explainer's ``batch_size``.
        skip_constant: score the noise-only inputs once for all constant channels (above).
        channels_last: score with a channels-last twin of the model on the CPU (as
            :class:`ScoreCAM`).
    """

    name = "sscam"
    stochastic = True

    def __init__(
        self,
        num_samples: int = 35,
        std: float = 2.0,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
        skip_constant: bool = True,
        channels_last: bool = True,
    ) -> None:
        super().__init__(batch_size, skip_constant, channels_last)
        self.num_samples = _samples("SSCAM", num_samples)
        if (
            isinstance(std, bool)
            or not isinstance(std, (int, float))
            or not math.isfinite(std)
            or std < 0
        ):
            raise ConfigurationError(f"SSCAM std must be a finite number >= 0, got {std!r}")
        self.std = float(std)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigurationError(f"SSCAM seed must be None or an int, got {seed!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ConfigurationError(
                f"SSCAM generator must be None or a torch.Generator, got {type(generator).__name__}"
            )
        if seed is not None and generator is not None:
            raise ConfigurationError(
                "SSCAM takes a seed or a generator, not both: a seed makes every call "
                "reproducible, a generator continues its own stream"
            )
        self.seed = seed
        self.generator = generator

    @property
    def _sample_count(self) -> int:
        return self.num_samples

    @property
    def _constant_versions(self) -> int:
        return self.num_samples

    def _perturbation(self, context: MethodContext) -> Perturb:
        device = context.inputs.device
        generator = self.generator
        if self.seed is not None:
            generator = torch.Generator(device=device)
            generator.manual_seed(self.seed)
        source = device if generator is None else generator.device
        std = self.std

        def perturb(masks: Tensor, _sample: Tensor) -> Tensor:
            if std == 0.0:
                return masks
            shape = (masks.shape[0], *masks.shape[2:])
            draws = [
                torch.randn(shape, generator=generator, device=source, dtype=masks.dtype)
                for _ in range(masks.shape[1])
            ]
            return masks + std * torch.stack(draws, dim=1).to(masks.device)

        return perturb

    def __repr__(self) -> str:
        return (
            f"SSCAM(num_samples={self.num_samples!r}, std={self.std!r}, seed={self.seed!r}, "
            f"generator={self.generator!r}, batch_size={self.batch_size!r}, "
            f"skip_constant={self.skip_constant!r}, channels_last={self.channels_last!r})"
        )


class ISCAM(_MaskScoringCAM):
    """IS-CAM, Integrated Score-CAM (Naidu et al., arXiv 2010.03023, 2020; with SS-CAM in
    "Improved variants of Score-CAM via smoothing and integrating", CVPR Workshops 2021).

    Score-CAM whose channel scores are averaged along a path of growing masks::

        M^k  = norm(up(A^k))
        c_n  = Σ_{i=1..n} i / N = n (n + 1) / (2N)          n = 1 … N
        s_k  = (1/N) Σ_n y( x ⊙ c_n M^k )
        CAM  = ReLU( Σ_k softmax_k(s_k) · A^k )

    The mask accumulates ``i/N`` of itself at step ``i``, as in the paper's algorithm and in
    torchcam 0.5.0's code (whose docstring writes the sum from 0 to ``n − 1`` instead, one
    step behind the code; camkit follows the code). The path therefore ends at ``(N + 1)/2``
    times the mask, not at the mask. ``N = 10`` by default, as in torchcam. IS-CAM is
    deterministic. As for SS-CAM, camkit upsamples before scaling to ``[0, 1]`` where torchcam
    scales first, and leaves out the baseline score, which does not change the softmax.

    A constant channel has the mask 0, so every step of its path is the zero image: camkit
    scores the zero image once per batch and gives that score to every constant channel, which
    is exactly what scoring each gives (``skip_constant=False``).

    Args:
        num_samples: ``N``, steps of the path.
        batch_size: inputs per forward pass; ``None`` takes the explainer's ``batch_size``.
        skip_constant: score the zero image once for all constant channels (above).
        channels_last: score with a channels-last twin of the model on the CPU (as
            :class:`ScoreCAM`).
    """

    name = "iscam"

    def __init__(
        self,
        num_samples: int = 10,
        batch_size: int | None = None,
        skip_constant: bool = True,
        channels_last: bool = True,
    ) -> None:
        super().__init__(batch_size, skip_constant, channels_last)
        self.num_samples = _samples("ISCAM", num_samples)

    @property
    def _sample_count(self) -> int:
        return self.num_samples

    def _perturbation(self, context: MethodContext) -> Perturb:
        steps = self.num_samples

        def perturb(masks: Tensor, sample: Tensor) -> Tensor:
            step = (sample + 1).to(masks.dtype)
            coefficient = step * (step + 1) / (2 * steps)
            return masks * coefficient[None, :, None, None]

        return perturb

    def __repr__(self) -> str:
        return (
            f"ISCAM(num_samples={self.num_samples!r}, batch_size={self.batch_size!r}, "
            f"skip_constant={self.skip_constant!r}, channels_last={self.channels_last!r})"
        )


class AblationCAM(CAMMethod):
    """Ablation-CAM (Desai and Ramaswamy, WACV 2020; no arXiv version).

    The weight of a channel is the relative drop of the target score when that channel is set
    to zero at the layer::

        w_k = (y − y_k) / y          y_k: the score with A^k = 0
        CAM = ReLU( Σ_k w_k · A^k )

    Where ``y = 0`` camkit uses ``y − y_k``: dividing by ``y`` only scales (and, for ``y < 0``,
    flips) every weight of the image, so this keeps the map finite and its orientation as for
    a small positive ``y``.

    camkit zeroes the channel, as the paper does. pytorch-grad-cam 1.5.7 zeroes it only when the
    layer's minimum is exactly 0 (after a ReLU); elsewhere it writes a large negative value
    (the minimum minus 1e7, lowered again for each channel of a forward pass), which makes its
    maps depend on the chunking. The two agree after a ReLU, where the parity tests compare
    them.

    The part of the model before the layer runs once per chunk of versions, not once per
    channel, when the model allows it (see
    :meth:`~camkit.methods.MethodContext.score_activations`). A channel that is already zero
    everywhere is unchanged by ablation, so its score is ``y`` and its weight 0: camkit gives it
    that without a pass (``skip_zero=False`` scores it).

    Args:
        batch_size: ablated versions per forward pass, counted in images; ``None`` takes the
            explainer's ``batch_size``.
        skip_zero: give all-zero channels the weight 0 without scoring them.
    """

    name = "ablationcam"
    needs_gradients = False
    extra_passes = True

    def __init__(self, batch_size: int | None = None, skip_zero: bool = True) -> None:
        self.batch_size = _batch_size("AblationCAM", batch_size)
        self.skip_zero = _flag("AblationCAM", "skip_zero", skip_zero)

    def compute(self, context: MethodContext) -> Tensor:
        activations = context.activations
        batch, channels = activations.shape[:2]
        zero = (activations.flatten(2) == 0).all(dim=2)
        skip = self.skip_zero and bool(zero.any())
        if skip:
            order = _scoring_order(zero)
        else:
            order = torch.arange(channels, device=activations.device).expand(batch, channels)

        def versions(start: int, stop: int) -> Tensor:
            ablated = order[:, start:stop]
            keep = torch.ones(batch, stop - start, channels, device=activations.device)
            keep.scatter_(2, ablated[..., None], 0.0)
            return activations[:, None] * keep[..., None, None].to(activations.dtype)

        original = context.scores.float()
        scores = context.score_activations(
            versions, count=order.shape[1], batch_size=self.batch_size
        ).float()
        channel_scores = original[:, None].expand(batch, channels).clone()
        if skip:
            scores = torch.where(zero.gather(1, order), original[:, None], scores)
        channel_scores.scatter_(1, order, scores)
        scale = torch.where(original != 0, original, torch.ones_like(original))
        weights = (original[:, None] - channel_scores) / scale[:, None]
        return torch.relu(torch.einsum("bc,bchw->bhw", weights, activations))

    def __repr__(self) -> str:
        return f"AblationCAM(batch_size={self.batch_size!r}, skip_zero={self.skip_zero!r})"
