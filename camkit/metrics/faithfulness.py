"""Quantitative evaluation of class-activation maps, batched on torch tensors.

Two families of metrics:

* **Localisation** against ground-truth boxes, model-free: :func:`pointing_game` (Zhang et
  al., 2016) and :func:`energy_pointing_game` (Wang et al., 2020).
* **Faithfulness**, which run the model on images changed according to the map:
  :func:`confidence_drop`, :func:`average_drop` and :func:`increase_in_confidence`
  (Chattopadhay et al., 2018), :func:`deletion_auc` and :func:`insertion_auc` (Petsiuk et
  al., 2018).

Conventions shared by every function:

* ``cams`` is a ``(B, H, W)`` floating tensor, one map per image. The faithfulness metrics
  need it at the input resolution, ``(H, W)`` of ``images``.
* ``images`` is the ``(B, C, H, W)`` batch exactly as the model takes it (preprocessed).
* A box is ``(x0, y0, x1, y1)`` in pixels of the map: columns ``x0 <= x < x1`` and rows
  ``y0 <= y < y1`` (``x1`` and ``y1`` exclusive), with ``0 <= x0 < x1 <= W`` and
  ``0 <= y0 < y1 <= H``.
* The class score is always the **softmax probability** of the target class, never the
  logit, as in both papers.
* The model runs under ``torch.no_grad()`` with every module in eval mode; each module's
  training flag and the caller's grad mode are restored afterwards, and no ``.grad`` is
  written. The model must already be on the images' device.
* Per-image values come back as tensors of shape ``(B,)``; :func:`average_drop` and
  :func:`increase_in_confidence`, defined by their paper as aggregates, return scalars.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from camkit.capture import explanation_mode
from camkit.errors import InputError, TargetError
from camkit.targets import OutputSelector, select_logits

__all__ = [
    "Box",
    "Boxes",
    "average_drop",
    "confidence_drop",
    "deletion_auc",
    "energy_pointing_game",
    "increase_in_confidence",
    "insertion_auc",
    "pointing_game",
]

Box = tuple[int, int, int, int]
"""A box ``(x0, y0, x1, y1)`` in pixels; ``x1`` and ``y1`` are exclusive."""
Boxes = Sequence[Sequence[Box] | Tensor | NDArray[np.integer[Any]]] | Tensor
"""The boxes of a batch: per image, a sequence of boxes or an int ``(N, 4)`` tensor/array."""

BLUR_SIZE = 11
"""Side and standard deviation (pixels) of the Gaussian blur that starts the insertion
curve, the values of the RISE authors' evaluation code.
"""
BLUR_SIGMA = 5.0


# ---- validation ----------------------------------------------------------------------------


def _check_cams(cams: Tensor) -> Tensor:
    if not isinstance(cams, Tensor):
        raise InputError(f"cams must be a torch.Tensor, got {type(cams).__name__}")
    if cams.ndim != 3 or cams.numel() == 0:
        raise InputError(
            f"cams must have shape (B, H, W) with no empty dimension, got {tuple(cams.shape)}"
        )
    if not cams.is_floating_point():
        raise InputError(f"cams must be a floating-point tensor, got dtype {cams.dtype}")
    if not bool(torch.isfinite(cams).all()):
        raise InputError("cams contain NaN or infinite values")
    return cams.detach()


def _as_list(value: Any) -> list[Any] | None:
    """``list(value)`` for a sequence, tensor or array; ``None`` for anything else."""
    if isinstance(value, (str, bytes)) or (isinstance(value, Tensor) and value.ndim == 0):
        return None
    if isinstance(value, (Sequence, Tensor)) or hasattr(value, "__array__"):
        return list(value)
    return None


def _check_boxes(boxes: Boxes, batch: int, height: int, width: int) -> list[list[Box]]:
    per_image = _as_list(boxes)
    if per_image is None:
        raise InputError(
            f"boxes must be a sequence with one sequence of boxes per image, got "
            f"{type(boxes).__name__}"
        )
    if len(per_image) != batch:
        raise InputError(f"got boxes for {len(per_image)} images but {batch} maps")
    checked: list[list[Box]] = []
    for image, given in enumerate(per_image):
        image_boxes = _as_list(given)
        if image_boxes is None:
            raise InputError(
                f"boxes[{image}] must be a sequence of (x0, y0, x1, y1) boxes, got "
                f"{type(given).__name__}"
            )
        if not image_boxes:
            raise InputError(
                f"image {image} has no box; the pointing games are defined only for images "
                "that contain the target object, so leave such images out"
            )
        row: list[Box] = []
        for box in image_boxes:
            try:
                if len(box) != 4:
                    raise TypeError
                x0, y0, x1, y1 = (operator.index(v) for v in box)
            except TypeError:
                raise InputError(
                    f"a box must be four ints (x0, y0, x1, y1), got {box!r} for image {image}"
                ) from None
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise InputError(
                    f"box {(x0, y0, x1, y1)} of image {image} is empty or outside the "
                    f"{height}x{width} map: need 0 <= x0 < x1 <= {width} and "
                    f"0 <= y0 < y1 <= {height} (x1, y1 exclusive)"
                )
            row.append((x0, y0, x1, y1))
        checked.append(row)
    return checked


def _check_images(images: Tensor, cams: Tensor) -> tuple[Tensor, Tensor]:
    cams = _check_cams(cams)
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
    return images.detach(), cams.to(device=images.device, dtype=images.dtype)


def _check_unit_range(cams: Tensor) -> None:
    low, high = float(cams.min()), float(cams.max())
    if low < 0.0 or high > 1.0:
        raise InputError(
            f"cams must lie in [0, 1] to multiply the images, got values in [{low:g}, {high:g}]; "
            "min-max normalise each map first"
        )


def _check_targets(targets: Tensor | Sequence[int], batch: int, device: torch.device) -> Tensor:
    try:
        values = torch.as_tensor(targets)
    except (TypeError, ValueError, RuntimeError):
        raise TargetError(
            f"targets must be a (B,) tensor or sequence of class indices, got {targets!r}"
        ) from None
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise TargetError(f"targets must hold integer class indices, got dtype {values.dtype}")
    if tuple(values.shape) != (batch,):
        raise TargetError(
            f"targets must have shape ({batch},), one class index per image, got "
            f"{tuple(values.shape)}"
        )
    if batch and int(values.min()) < 0:
        raise TargetError(f"targets must be non-negative class indices, got {values.tolist()}")
    return values.to(device=device, dtype=torch.long)


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}")
    return value


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


# ---- localisation --------------------------------------------------------------------------


def pointing_game(cams: Tensor, boxes: Boxes, *, tolerance: int = 0) -> Tensor:
    """Pointing game of Zhang et al., "Top-down Neural Attention by Excitation Backprop"
    (ECCV 2016).

    Definition: an image is a *hit* when the map's maximum point lies on the object, that
    is inside one of its boxes, and a *miss* otherwise; the accuracy is
    ``hits / (hits + misses)``, here ``pointing_game(...).float().mean()``. The maximum
    point is the **first** maximal pixel in row-major order (``torch.argmax`` on the
    flattened map), so ties, including a constant map (pixel ``(0, 0)``), are broken
    deterministically. With ``tolerance = r > 0`` the point also hits when some box pixel
    lies within Euclidean distance ``r`` of it (the disc of radius ``r`` around the maximum
    meets a box); the paper used ``r = 15`` pixels at the image resolution.

    Args:
        cams: ``(B, H, W)`` maps; any finite values.
        boxes: one non-empty sequence of ``(x0, y0, x1, y1)`` boxes per image, in map
            pixels, ``x1`` and ``y1`` exclusive (an int tensor or array of shape ``(N, 4)``
            works too). Several boxes are several instances.
        tolerance: the radius ``r`` in pixels, ``>= 0``.

    Returns:
        A ``(B,)`` bool tensor, ``True`` for a hit, on the maps' device.

    Raises:
        InputError: malformed maps, boxes or tolerance.
    """
    cams = _check_cams(cams)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise InputError(f"tolerance must be an int >= 0 (pixels), got {tolerance!r}")
    batch, height, width = cams.shape
    checked = _check_boxes(boxes, batch, height, width)
    peaks = cams.reshape(batch, -1).argmax(dim=1).tolist()
    hits = []
    for peak, image_boxes in zip(peaks, checked, strict=True):
        row, col = divmod(int(peak), width)
        hit = False
        for x0, y0, x1, y1 in image_boxes:
            dx = max(x0 - col, 0, col - (x1 - 1))
            dy = max(y0 - row, 0, row - (y1 - 1))
            hit = hit or dx * dx + dy * dy <= tolerance * tolerance
        hits.append(hit)
    return torch.tensor(hits, dtype=torch.bool, device=cams.device)


def energy_pointing_game(cams: Tensor, boxes: Boxes) -> Tensor:
    """Energy-based pointing game of Wang et al., "Score-CAM: Score-Weighted Visual
    Explanations for Convolutional Neural Networks" (CVPR Workshops 2020).

    Definition: the share of the map's energy (its sum) that falls inside the object,
    ``Σ_{p ∈ boxes} cam(p) / Σ_p cam(p)``, where the boxes of one image count as their
    union (a pixel in two boxes counts once). It lies in ``[0, 1]``; an all-zero map scores
    ``0``. The maps are used as given: scaling a map leaves the value unchanged but adding
    a constant does not, so normalise the maps consistently (e.g. min-max) before calling.

    Args:
        cams: ``(B, H, W)`` non-negative maps.
        boxes: one non-empty sequence of ``(x0, y0, x1, y1)`` boxes per image, in map
            pixels, ``x1`` and ``y1`` exclusive (an int tensor or array of shape ``(N, 4)``
            works too).

    Returns:
        A ``(B,)`` tensor of proportions, of the maps' dtype and device.

    Raises:
        InputError: malformed or negative maps, or malformed boxes.
    """
    cams = _check_cams(cams)
    if bool((cams < 0).any()):
        raise InputError(
            f"energy_pointing_game needs non-negative maps, got a minimum of {float(cams.min()):g}"
        )
    batch, height, width = cams.shape
    checked = _check_boxes(boxes, batch, height, width)
    inside = torch.zeros_like(cams, dtype=torch.bool)
    for image, image_boxes in enumerate(checked):
        for x0, y0, x1, y1 in image_boxes:
            inside[image, y0:y1, x0:x1] = True
    total = cams.sum(dim=(1, 2))
    within = (cams * inside).sum(dim=(1, 2))
    return torch.where(total > 0, within / total.clamp_min(torch.finfo(cams.dtype).tiny), 0.0)


# ---- running the model ---------------------------------------------------------------------


def _target_probabilities(
    model: nn.Module,
    count: int,
    make_chunk: Callable[[int, int], tuple[Tensor, Tensor]],
    batch_size: int,
    select: OutputSelector,
) -> Tensor:
    """Softmax probability of the target class for ``count`` inputs, built in chunks.

    ``make_chunk(start, stop)`` returns the inputs ``start..stop-1`` and their targets.
    """
    chunks: list[Tensor] = []
    with explanation_mode(model), torch.no_grad():
        for start in range(0, count, batch_size):
            inputs, targets = make_chunk(start, min(start + batch_size, count))
            logits = select(model(inputs))
            if logits.ndim != 2 or logits.shape[0] != inputs.shape[0]:
                raise InputError(
                    f"the model's class scores must have shape ({inputs.shape[0]}, K), got "
                    f"{tuple(logits.shape)}; pass output=<callable returning the logits>"
                )
            classes = logits.shape[1]
            if int(targets.max()) >= classes:
                raise TargetError(
                    f"target {int(targets.max())} is out of range: the model has {classes} "
                    f"classes (valid targets are 0..{classes - 1})"
                )
            probabilities = torch.softmax(logits.detach().float(), dim=1)
            chunks.append(probabilities.gather(1, targets[:, None])[:, 0])
    return torch.cat(chunks)


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


def confidence_drop(
    model: nn.Module,
    images: Tensor,
    cams: Tensor,
    targets: Tensor | Sequence[int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    output: OutputSelector | None = None,
    batch_size: int = 64,
) -> tuple[Tensor, Tensor]:
    """Per-image class confidences ``(Y, O)`` behind Average Drop and Increase in Confidence.

    Definitions (Chattopadhay et al., "Grad-CAM++: Generalized Gradient-Based Visual
    Explanations for Deep Convolutional Networks", WACV 2018): ``Y_c`` is the model's
    **softmax probability** of the target class ``c`` on the image; ``O_c`` is the same
    probability on the *explanation map*, the image multiplied pixel by pixel by the map
    (the same map value for every channel of a pixel).

    Where the multiplication happens:

    * default (``mean`` and ``std`` both ``None``): on ``images`` as given, ``x · cam``. For
      mean/std-normalised inputs this pulls hidden pixels towards ``0``, the mean colour.
    * ``mean`` and ``std`` given: in ``[0, 1]`` pixel space, as in the paper, and normalised
      again: ``((x · std + mean) · cam − mean) / std``. Hidden pixels become black.

    Aggregate the result yourself with ``100 * (relu(Y − O) / Y).mean()`` (Average Drop) and
    ``100 * (O > Y).float().mean()`` (Increase in Confidence), or call
    :func:`average_drop` and :func:`increase_in_confidence`.

    Args:
        model: the classifier, on the images' device.
        images: ``(B, C, H, W)`` preprocessed batch.
        cams: ``(B, H, W)`` maps at the input resolution, values in ``[0, 1]``.
        targets: ``(B,)`` class indices, one per image.
        mean: per-channel normalisation mean of ``images`` (1 or ``C`` values), to
            multiply in pixel space.
        std: per-channel normalisation standard deviation of ``images`` (1 or ``C``
            values).
        output: ``model output -> (B, K) logits``; default :func:`camkit.targets.select_logits`.
        batch_size: the most images per forward pass.

    Returns:
        ``(Y, O)``, two ``(B,)`` float32 tensors of probabilities on the images' device.

    Raises:
        InputError: shapes do not match, maps outside ``[0, 1]``, bad ``mean``/``std``.
        TargetError: malformed targets or a class index out of range.
    """
    images, cams = _check_images(images, cams)
    _check_unit_range(cams)
    batch = images.shape[0]
    labels = _check_targets(targets, batch, images.device)
    _positive_int("batch_size", batch_size)
    with torch.no_grad():
        masked = _apply_map(images, cams, mean, std)
    inputs = torch.cat([images, masked])
    labels2 = torch.cat([labels, labels])

    def make_chunk(start: int, stop: int) -> tuple[Tensor, Tensor]:
        return inputs[start:stop], labels2[start:stop]

    probabilities = _target_probabilities(
        model, 2 * batch, make_chunk, batch_size, output or select_logits
    )
    return probabilities[:batch], probabilities[batch:]


def average_drop(
    model: nn.Module,
    images: Tensor,
    cams: Tensor,
    targets: Tensor | Sequence[int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    output: OutputSelector | None = None,
    batch_size: int = 64,
) -> Tensor:
    """Average Drop % of Chattopadhay et al. (Grad-CAM++, WACV 2018); lower is better.

    Definition: ``100 · (1/N) Σ_i max(0, Y_c^i − O_c^i) / Y_c^i``, in **percent**, with
    ``Y`` and ``O`` the softmax probabilities of :func:`confidence_drop` (see there for how
    the map multiplies the image). An image whose ``Y_c`` underflows to ``0`` contributes
    ``0``.

    Returns:
        A scalar float32 tensor in ``[0, 100]``.

    Raises:
        InputError, TargetError: as :func:`confidence_drop`.
    """
    y, o = confidence_drop(
        model, images, cams, targets, mean=mean, std=std, output=output, batch_size=batch_size
    )
    drop = torch.where(y > 0, (y - o).clamp_min(0) / y.clamp_min(torch.finfo(y.dtype).tiny), 0.0)
    return 100.0 * drop.mean()


def increase_in_confidence(
    model: nn.Module,
    images: Tensor,
    cams: Tensor,
    targets: Tensor | Sequence[int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    output: OutputSelector | None = None,
    batch_size: int = 64,
) -> Tensor:
    """% Increase in Confidence of Chattopadhay et al. (Grad-CAM++, WACV 2018); higher is
    better.

    Definition: ``100 · (1/N) Σ_i [O_c^i > Y_c^i]``, the **percentage** of images whose
    target probability is strictly higher on the explanation map than on the image, with
    ``Y`` and ``O`` from :func:`confidence_drop`.

    Returns:
        A scalar float32 tensor in ``[0, 100]``.

    Raises:
        InputError, TargetError: as :func:`confidence_drop`.
    """
    y, o = confidence_drop(
        model, images, cams, targets, mean=mean, std=std, output=output, batch_size=batch_size
    )
    return 100.0 * (o > y).float().mean()


# ---- deletion and insertion ------------------------------------------------------------------


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


def _causal_auc(
    model: nn.Module,
    start: Tensor,
    finish: Tensor,
    cams: Tensor,
    targets: Tensor,
    steps: int,
    batch_size: int,
    select: OutputSelector,
) -> Tensor:
    """AUC of the target probability while pixels switch from ``start`` to ``finish``.

    Pixels switch in decreasing map order (stable: ties in row-major order); at step ``i``
    the first ``k_i = floor(i · HW / steps)`` have switched.
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
        return torch.where(switched, finish[image], start[image]), targets[image]

    curve = _target_probabilities(model, batch * points, make_chunk, batch_size, select)
    fractions = counts.to(curve.dtype) / pixels
    return torch.trapezoid(curve.view(batch, points), fractions, dim=1)


def _causal_inputs(
    images: Tensor, cams: Tensor, targets: Tensor | Sequence[int], steps: int, batch_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    images, cams = _check_images(images, cams)
    labels = _check_targets(targets, images.shape[0], images.device)
    _positive_int("steps", steps)
    _positive_int("batch_size", batch_size)
    return images, cams, labels


def deletion_auc(
    model: nn.Module,
    images: Tensor,
    cams: Tensor,
    targets: Tensor | Sequence[int],
    *,
    steps: int = 100,
    baseline: Tensor | float = 0.0,
    output: OutputSelector | None = None,
    batch_size: int = 64,
) -> Tensor:
    """Deletion metric of Petsiuk et al., "RISE: Randomized Input Sampling for Explanation
    of Black-box Models" (BMVC 2018); lower is better.

    Definition: starting from the image, pixels are replaced by the ``baseline`` in order
    of decreasing map value (all channels of a pixel at once; equal values in row-major
    order, a stable sort). After step ``i = 0..steps`` the first
    ``k_i = floor(i · HW / steps)`` pixels are deleted, and the target class's **softmax
    probability** ``p_i`` is measured: ``steps + 1`` points, from the intact image
    (``k_0 = 0``) to the full baseline (``k_steps = HW``). The score is the area under
    ``p`` against the deleted fraction ``k_i / HW`` by the trapezoidal rule, so it lies in
    ``[0, 1]`` (the x axis spans ``[0, 1]``). A good map makes the probability fall fast.

    Args:
        model: the classifier, on the images' device.
        images: ``(B, C, H, W)`` preprocessed batch.
        cams: ``(B, H, W)`` maps at the input resolution; only their order matters.
        targets: ``(B,)`` class indices, one per image.
        steps: number of deletion steps (the RISE evaluation code changed 224 pixels per
            step, i.e. 224 steps at 224×224).
        baseline: what deleted pixels become: a number or a tensor broadcastable to
            ``images``. The default ``0`` in the input's space is the mean colour for
            mean/std-normalised inputs (RISE's ``zeros_like`` substrate).
        output: ``model output -> (B, K) logits``; default :func:`camkit.targets.select_logits`.
        batch_size: the most perturbed images per forward pass; the ``B · (steps + 1)``
            inputs are built chunk by chunk, so memory stays bounded.

    Returns:
        A ``(B,)`` float32 tensor of areas on the images' device.

    Raises:
        InputError: mismatched shapes, non-finite maps, bad steps, batch size or baseline.
        TargetError: malformed targets or a class index out of range.
    """
    images, cams, labels = _causal_inputs(images, cams, targets, steps, batch_size)
    substrate = _baseline(baseline, images)
    return _causal_auc(
        model, images, substrate, cams, labels, steps, batch_size, output or select_logits
    )


def insertion_auc(
    model: nn.Module,
    images: Tensor,
    cams: Tensor,
    targets: Tensor | Sequence[int],
    *,
    steps: int = 100,
    baseline: Tensor | float | None = None,
    output: OutputSelector | None = None,
    batch_size: int = 64,
) -> Tensor:
    """Insertion metric of Petsiuk et al., "RISE: Randomized Input Sampling for Explanation
    of Black-box Models" (BMVC 2018); higher is better.

    Definition: starting from the ``baseline`` (by default a blurred copy of the image),
    the original pixels are inserted in order of decreasing map value (all channels of a
    pixel at once; equal values in row-major order, a stable sort). After step
    ``i = 0..steps`` the first ``k_i = floor(i · HW / steps)`` pixels are inserted and the
    target class's **softmax probability** ``p_i`` is measured: ``steps + 1`` points, from
    the baseline (``k_0 = 0``) to the intact image (``k_steps = HW``). The score is the area
    under ``p`` against the inserted fraction ``k_i / HW`` by the trapezoidal rule, in
    ``[0, 1]``. A good map makes the probability rise fast.

    Args:
        baseline: the starting image: ``None`` (default) blurs each image with an 11×11
            Gaussian of σ = 5 pixels (the RISE evaluation's kernel; borders use replicate
            padding where RISE zero-padded), or a number or tensor broadcastable to
            ``images``.
        model: as :func:`deletion_auc`; so are ``images``, ``cams``, ``targets``,
            ``steps``, ``output`` and ``batch_size``.

    Returns:
        A ``(B,)`` float32 tensor of areas on the images' device.

    Raises:
        InputError, TargetError: as :func:`deletion_auc`.
    """
    images, cams, labels = _causal_inputs(images, cams, targets, steps, batch_size)
    if baseline is None:
        with torch.no_grad():
            substrate = _gaussian_blur(images)
    else:
        substrate = _baseline(baseline, images)
    return _causal_auc(
        model, substrate, images, cams, labels, steps, batch_size, output or select_logits
    )
