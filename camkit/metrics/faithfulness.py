"""Faithfulness metrics, which run the model on images changed according to the map.

:class:`Scorer` holds the model, how to read its class scores and how many images go
through it at once; its methods are the metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camkit.capture import explanation_mode
from camkit.errors import InputError
from camkit.metrics._checks import check_cams
from camkit.targets import OutputSelector, select_logits, validate_targets

__all__ = ["BLUR_SIGMA", "BLUR_SIZE", "Scorer"]

BLUR_SIZE = 11
"""Side (pixels) of the Gaussian blur that starts the insertion curve, the value of the
RISE authors' evaluation code.
"""
BLUR_SIGMA = 5.0
"""Standard deviation (pixels) of that blur, the value of the RISE authors' evaluation
code.
"""


# ---- validation ----------------------------------------------------------------------------


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_images(images: Tensor, cams: Tensor) -> tuple[Tensor, Tensor]:
    """``images`` detached, and ``cams`` detached on the images' device, in its own dtype."""
    cams = check_cams(cams)
    if not isinstance(images, Tensor):
        raise InputError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or not images.is_floating_point():
        raise InputError(
            f"images must be a floating (B, C, H, W) tensor, got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    batch, _, height, width = images.shape
    if tuple(cams.shape) != (batch, height, width):
        raise InputError(
            f"cams must have shape (B, H, W) = {(batch, height, width)} to match images "
            f"{tuple(images.shape)}, got {tuple(cams.shape)}; resize the maps to the input "
            "resolution first"
        )
    return images.detach(), cams.to(device=images.device)


def _check_unit_range(cams: Tensor) -> None:
    low, high = float(cams.min()), float(cams.max())
    if low < 0.0 or high > 1.0:
        raise InputError(
            f"cams must lie in [0, 1] to multiply the images, got values in [{low:g}, {high:g}]; "
            "min-max normalise each map first"
        )


def _channel_stats(name: str, values: Sequence[float], channels: int, like: Tensor) -> Tensor:
    stats = torch.as_tensor(values, dtype=like.dtype, device=like.device).flatten()
    if stats.numel() not in (1, channels):
        raise InputError(
            f"{name} must have 1 or {channels} values (one per channel), got {stats.numel()}"
        )
    return stats.expand(channels).reshape(1, channels, 1, 1)


def _baseline(value: Tensor | float, images: Tensor) -> Tensor:
    base = torch.as_tensor(value, dtype=images.dtype, device=images.device)
    try:
        return torch.broadcast_to(base.detach(), images.shape)
    except RuntimeError:
        raise InputError(
            f"baseline of shape {tuple(base.shape)} does not broadcast to the images' shape "
            f"{tuple(images.shape)}"
        ) from None


def _check_model(_: Any, __: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, nn.Module):
        raise InputError(
            f"Scorer needs the classifier as a torch.nn.Module, got {type(value).__name__}"
        )


def _check_output(_: Any, __: attrs.Attribute[Any], value: Any) -> None:
    if not callable(value):
        raise InputError(
            f"output must be a callable mapping the model's output to its (B, K) logits, got "
            f"{type(value).__name__}"
        )


def _check_batch_size(_: Any, __: attrs.Attribute[Any], value: Any) -> None:
    _positive_int("batch_size", value)


def _selector(value: OutputSelector | None) -> OutputSelector:
    return select_logits if value is None else value


# ---- the map applied to the images ---------------------------------------------------------


def _apply_map(
    images: Tensor, cams: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> Tensor:
    if mean is None and std is None:
        return images * cams[:, None]
    if mean is None or std is None:
        raise InputError("give both mean and std (pixel-space masking) or neither")
    channels = images.shape[1]
    mean_t = _channel_stats("mean", mean, channels, images)
    std_t = _channel_stats("std", std, channels, images)
    if bool((std_t <= 0).any()):
        raise InputError(f"std must be positive, got {list(std)}")
    pixels = images * std_t + mean_t
    return (pixels * cams[:, None] - mean_t) / std_t


def _gaussian_blur(images: Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> Tensor:
    """Blur each channel with a ``size × size`` Gaussian (summing to 1), replicate padding."""
    channels = images.shape[1]
    offsets = torch.arange(size, dtype=images.dtype, device=images.device) - size // 2
    kernel = torch.exp(-(offsets**2) / (2.0 * sigma * sigma))
    kernel = kernel / kernel.sum()
    pad = size // 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    rows = F.conv2d(
        padded, kernel.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels
    )
    return F.conv2d(rows, kernel.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


# ---- the scorer ----------------------------------------------------------------------------


@attrs.frozen
class Scorer:
    """The faithfulness metrics of one classifier: Average Drop, Increase in Confidence,
    deletion and insertion.

    A scorer is an immutable value holding the model and how to run it; each method scores
    the maps of one batch::

        scorer = Scorer(model)  # or Scorer(model, output=lambda out: out["logits"], batch_size=16)
        drop = scorer.average_drop(images, cams, targets, mean=config.mean, std=config.std)
        deletion = scorer.deletion_auc(images, cams, targets, steps=20)

    Inputs of every method:

    * ``images``: the ``(B, C, H, W)`` batch exactly as the model takes it (preprocessed),
      on the model's device.
    * ``cams``: one map per image at the input resolution, a floating ``(B, H, W)`` tensor
      of any dtype (float16, bfloat16, float32, float64) on any device. The maps are moved
      to the images' device and used in the images' dtype; deletion and insertion rank the
      pixels in a dtype that holds both, so converting the maps never reorders them.
    * ``targets``: one class index per image, a ``(B,)`` integer tensor or a sequence of
      ints, checked by :func:`camkit.targets.validate_targets`.

    The class score is always the **softmax probability** of the target class, never the
    logit, as in the papers. The model runs under ``torch.no_grad()`` with every module in
    eval mode; each module's training flag and the caller's grad mode are restored
    afterwards, also after an error, and no ``.grad`` is written.

    Attributes:
        model: the classifier, on the images' device.
        output: ``model output -> (B, K) logits``; default (also when given ``None``)
            :func:`camkit.targets.select_logits`.
        batch_size: the most images per forward pass, ``>= 1`` (default 64). Results do
            not depend on it; memory does.

    Raises:
        InputError: ``model`` is not a ``torch.nn.Module``, ``output`` is not callable or
            ``batch_size`` is not a positive int.
    """

    model: nn.Module = attrs.field(validator=_check_model, repr=lambda m: type(m).__name__)
    output: OutputSelector = attrs.field(
        default=select_logits,
        converter=_selector,
        validator=_check_output,
        repr=lambda f: getattr(f, "__qualname__", repr(f)),
    )
    batch_size: int = attrs.field(default=64, validator=_check_batch_size)

    # ---- Average Drop and Increase in Confidence -----------------------------------------

    def confidence_drop(
        self,
        images: Tensor,
        cams: Tensor,
        targets: Tensor | Sequence[int],
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Per-image class confidences ``(Y, O)`` behind Average Drop and Increase in
        Confidence.

        Definitions (Chattopadhay et al., "Grad-CAM++: Generalized Gradient-Based Visual
        Explanations for Deep Convolutional Networks", WACV 2018): ``Y_c`` is the model's
        **softmax probability** of the target class ``c`` on the image; ``O_c`` is the same
        probability on the *explanation map*, the image multiplied pixel by pixel by the map
        (the same map value for every channel of a pixel).

        Where the multiplication happens:

        * default (``mean`` and ``std`` both ``None``): on ``images`` as given, ``x · cam``.
          For mean/std-normalised inputs this pulls hidden pixels towards ``0``, the mean
          colour.
        * ``mean`` and ``std`` given: in ``[0, 1]`` pixel space, as in the paper, and
          normalised again: ``((x · std + mean) · cam − mean) / std``. Hidden pixels become
          black.

        Aggregate the result yourself with ``100 * (relu(Y − O) / Y).mean()`` (Average Drop)
        and ``100 * (O > Y).float().mean()`` (Increase in Confidence), or call
        :meth:`average_drop` and :meth:`increase_in_confidence`.

        Args:
            images: ``(B, C, H, W)`` preprocessed batch.
            cams: ``(B, H, W)`` maps at the input resolution, values in ``[0, 1]``, any
                floating dtype, any device.
            targets: ``(B,)`` class indices, one per image.
            mean: per-channel normalisation mean of ``images`` (1 or ``C`` values), to
                multiply in pixel space.
            std: per-channel normalisation standard deviation of ``images`` (1 or ``C``
                values).

        Returns:
            ``(Y, O)``, two ``(B,)`` float32 tensors of probabilities on the images' device.

        Raises:
            InputError: shapes do not match, maps outside ``[0, 1]``, bad ``mean``/``std``,
                or model scores that are not ``(B, K)``.
            TargetError: malformed targets or a class index out of range.
        """
        images, cams = _check_images(images, cams)
        cams = cams.to(images.dtype)
        _check_unit_range(cams)
        batch = images.shape[0]
        labels = validate_targets(targets, batch=batch).to(images.device)
        with torch.no_grad():
            masked = _apply_map(images, cams, mean, std)
        inputs = torch.cat([images, masked])
        labels2 = torch.cat([labels, labels])

        def make_chunk(start: int, stop: int) -> tuple[Tensor, Tensor]:
            return inputs[start:stop], labels2[start:stop]

        probabilities = self._probabilities(2 * batch, make_chunk, labels)
        return probabilities[:batch], probabilities[batch:]

    def average_drop(
        self,
        images: Tensor,
        cams: Tensor,
        targets: Tensor | Sequence[int],
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> Tensor:
        """Average Drop % of Chattopadhay et al. (Grad-CAM++, WACV 2018); lower is better.

        Definition: ``100 · (1/N) Σ_i max(0, Y_c^i − O_c^i) / Y_c^i``, in **percent**, with
        ``Y`` and ``O`` the softmax probabilities of :meth:`confidence_drop` (see there for
        how the map multiplies the image, and for the arguments). An image whose ``Y_c``
        underflows to ``0`` contributes ``0``.

        Returns:
            A scalar float32 tensor in ``[0, 100]``.

        Raises:
            InputError, TargetError: as :meth:`confidence_drop`.
        """
        y, o = self.confidence_drop(images, cams, targets, mean=mean, std=std)
        drop = torch.where(
            y > 0, (y - o).clamp_min(0) / y.clamp_min(torch.finfo(y.dtype).tiny), 0.0
        )
        return 100.0 * drop.mean()

    def increase_in_confidence(
        self,
        images: Tensor,
        cams: Tensor,
        targets: Tensor | Sequence[int],
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> Tensor:
        """% Increase in Confidence of Chattopadhay et al. (Grad-CAM++, WACV 2018); higher
        is better.

        Definition: ``100 · (1/N) Σ_i [O_c^i > Y_c^i]``, the **percentage** of images whose
        target probability is strictly higher on the explanation map than on the image,
        with ``Y`` and ``O`` from :meth:`confidence_drop` (see there for the arguments).

        Returns:
            A scalar float32 tensor in ``[0, 100]``.

        Raises:
            InputError, TargetError: as :meth:`confidence_drop`.
        """
        y, o = self.confidence_drop(images, cams, targets, mean=mean, std=std)
        return 100.0 * (o > y).float().mean()

    # ---- deletion and insertion ----------------------------------------------------------

    def deletion_auc(
        self,
        images: Tensor,
        cams: Tensor,
        targets: Tensor | Sequence[int],
        *,
        steps: int = 100,
        baseline: Tensor | float = 0.0,
    ) -> Tensor:
        """Deletion metric of Petsiuk et al., "RISE: Randomized Input Sampling for
        Explanation of Black-box Models" (BMVC 2018); lower is better.

        Definition: starting from the image, pixels are replaced by the ``baseline`` in
        order of decreasing map value (all channels of a pixel at once; equal values in
        row-major order, a stable sort). After step ``i = 0..steps`` the first
        ``k_i = floor(i · HW / steps)`` pixels are deleted, and the target class's
        **softmax probability** ``p_i`` is measured: ``steps + 1`` points, from the intact
        image (``k_0 = 0``) to the full baseline (``k_steps = HW``). The score is the area
        under ``p`` against the deleted fraction ``k_i / HW`` by the trapezoidal rule, so it
        lies in ``[0, 1]`` (the x axis spans ``[0, 1]``). A good map makes the probability
        fall fast. The ``B · (steps + 1)`` perturbed inputs are built chunk by chunk, at most
        ``batch_size`` at a time, so memory stays bounded.

        Args:
            images: ``(B, C, H, W)`` preprocessed batch.
            cams: ``(B, H, W)`` maps at the input resolution, any floating dtype, any
                device; only their order matters.
            targets: ``(B,)`` class indices, one per image.
            steps: number of deletion steps (the RISE evaluation code changed 224 pixels per
                step, i.e. 224 steps at 224×224).
            baseline: what deleted pixels become: a number or a tensor broadcastable to
                ``images``. The default ``0`` in the input's space is the mean colour for
                mean/std-normalised inputs (RISE's ``zeros_like`` substrate).

        Returns:
            A ``(B,)`` float32 tensor of areas on the images' device.

        Raises:
            InputError: mismatched shapes, non-finite maps, bad steps or baseline, or model
                scores that are not ``(B, K)``.
            TargetError: malformed targets or a class index out of range.
        """
        images, cams, labels = self._causal_inputs(images, cams, targets, steps)
        substrate = _baseline(baseline, images)
        return self._causal_auc(images, substrate, cams, labels, steps)

    def insertion_auc(
        self,
        images: Tensor,
        cams: Tensor,
        targets: Tensor | Sequence[int],
        *,
        steps: int = 100,
        baseline: Tensor | float | None = None,
    ) -> Tensor:
        """Insertion metric of Petsiuk et al., "RISE: Randomized Input Sampling for
        Explanation of Black-box Models" (BMVC 2018); higher is better.

        Definition: starting from the ``baseline`` (by default a blurred copy of the image),
        the original pixels are inserted in order of decreasing map value (all channels of
        a pixel at once; equal values in row-major order, a stable sort). After step
        ``i = 0..steps`` the first ``k_i = floor(i · HW / steps)`` pixels are inserted and
        the target class's **softmax probability** ``p_i`` is measured: ``steps + 1``
        points, from the baseline (``k_0 = 0``) to the intact image (``k_steps = HW``). The
        score is the area under ``p`` against the inserted fraction ``k_i / HW`` by the
        trapezoidal rule, in ``[0, 1]``. A good map makes the probability rise fast.

        Args:
            images: ``(B, C, H, W)`` preprocessed batch.
            cams: ``(B, H, W)`` maps at the input resolution, any floating dtype, any
                device; only their order matters.
            targets: ``(B,)`` class indices, one per image.
            steps: number of insertion steps, as in :meth:`deletion_auc`.
            baseline: the starting image: ``None`` (default) blurs each image with an 11×11
                Gaussian of σ = 5 pixels (the RISE evaluation's kernel; borders use
                replicate padding where RISE zero-padded), or a number or tensor
                broadcastable to ``images``.

        Returns:
            A ``(B,)`` float32 tensor of areas on the images' device.

        Raises:
            InputError, TargetError: as :meth:`deletion_auc`.
        """
        images, cams, labels = self._causal_inputs(images, cams, targets, steps)
        if baseline is None:
            with torch.no_grad():
                substrate = _gaussian_blur(images)
        else:
            substrate = _baseline(baseline, images)
        return self._causal_auc(substrate, images, cams, labels, steps)

    # ---- running the model ---------------------------------------------------------------

    def _probabilities(
        self,
        count: int,
        make_chunk: Callable[[int, int], tuple[Tensor, Tensor]],
        labels: Tensor,
    ) -> Tensor:
        """Softmax probability of the target class for ``count`` inputs, built in chunks.

        ``make_chunk(start, stop)`` returns the inputs ``start..stop-1`` and their targets,
        taken from ``labels``, which are checked against the number of classes before the
        first gather.
        """
        chunks: list[Tensor] = []
        with explanation_mode(self.model), torch.no_grad():
            for start in range(0, count, self.batch_size):
                inputs, targets = make_chunk(start, min(start + self.batch_size, count))
                logits = self.output(self.model(inputs))
                if logits.ndim != 2 or logits.shape[0] != inputs.shape[0]:
                    raise InputError(
                        f"the model's class scores must have shape ({inputs.shape[0]}, K), got "
                        f"{tuple(logits.shape)}; pass Scorer(model, output=<callable returning "
                        "the logits>)"
                    )
                if not chunks:
                    validate_targets(labels, num_classes=logits.shape[1])
                probabilities = torch.softmax(logits.detach().float(), dim=1)
                chunks.append(probabilities.gather(1, targets[:, None])[:, 0])
        return torch.cat(chunks)

    def _causal_inputs(
        self, images: Tensor, cams: Tensor, targets: Tensor | Sequence[int], steps: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        images, cams = _check_images(images, cams)
        labels = validate_targets(targets, batch=images.shape[0]).to(images.device)
        _positive_int("steps", steps)
        # rank in a dtype that holds both, so casting the maps never reorders them
        cams = cams.to(torch.promote_types(cams.dtype, images.dtype))
        return images, cams, labels

    def _causal_auc(
        self, start: Tensor, finish: Tensor, cams: Tensor, labels: Tensor, steps: int
    ) -> Tensor:
        """AUC of the target probability while pixels switch from ``start`` to ``finish``.

        Pixels switch in decreasing map order (stable: ties in row-major order); at step
        ``i`` the first ``k_i = floor(i · HW / steps)`` have switched.
        """
        batch, _, height, width = start.shape
        pixels = height * width
        order = torch.sort(cams.reshape(batch, pixels), dim=1, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        positions = torch.arange(pixels, device=order.device).expand(batch, pixels)
        rank.scatter_(1, order, positions)
        counts = torch.tensor(
            [i * pixels // steps for i in range(steps + 1)], device=start.device, dtype=torch.long
        )
        points = steps + 1

        def make_chunk(first: int, stop: int) -> tuple[Tensor, Tensor]:
            index = torch.arange(first, stop, device=start.device)
            image, step = index // points, index % points
            switched = (rank[image] < counts[step][:, None]).view(-1, 1, height, width)
            return torch.where(switched, finish[image], start[image]), labels[image]

        curve = self._probabilities(batch * points, make_chunk, labels)
        fractions = counts.to(curve.dtype) / pixels
        return torch.trapezoid(curve.view(batch, points), fractions, dim=1)
