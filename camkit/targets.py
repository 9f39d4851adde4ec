"""Reading class scores from a model's output and choosing what to explain."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from camkit.errors import ModelOutputError, TargetError

__all__ = [
    "OutputSelector",
    "TargetSpec",
    "select_logits",
    "target_indices",
    "target_scores",
    "validate_targets",
]

TargetSpec = int | Sequence[int] | Callable[[Tensor], Tensor] | None
"""What to explain: ``None`` (the predicted class), one class index, one per image, or a
callable mapping the logits ``(B, K)`` to one score per image ``(B,)``.
"""
OutputSelector = Callable[[Any], Tensor]
"""Selects the class scores ``(B, K)`` from whatever the model's forward returned."""


def select_logits(output: Any) -> Tensor:
    """Return the class scores ``(B, K)`` from a model output.

    Accepts a tensor, a tuple or list (its first element), a mapping with ``"logits"``, or an
    object with a ``.logits`` tensor attribute (Hugging Face style).

    Raises:
        ModelOutputError: nothing usable was found, or the scores are not 2-D.
    """
    found: Any = output
    if isinstance(output, Mapping):
        if "logits" not in output:
            raise ModelOutputError(
                f"the model returned a mapping without 'logits' (keys: {list(output)}); "
                "pass output=lambda out: out['<key>'] to Explainer"
            )
        found = output["logits"]
    elif isinstance(output, (tuple, list)):
        if not output:
            raise ModelOutputError("the model returned an empty sequence")
        found = output[0]
    elif not isinstance(output, Tensor) and isinstance(getattr(output, "logits", None), Tensor):
        found = output.logits
    if not isinstance(found, Tensor):
        raise ModelOutputError(
            f"cannot read class scores from a model output of type {type(output).__name__}; "
            "pass output=<callable returning the (B, K) logits> to Explainer"
        )
    if found.ndim != 2:
        raise ModelOutputError(
            f"class scores must have shape (B, K), got {tuple(found.shape)}; pass "
            "output=<callable returning the (B, K) logits> to Explainer"
        )
    return found


def _class_index(value: Any) -> int:
    """One class index as an int: an int (numpy ints too) or a one-element int tensor."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TargetError(
            f"a target must be an int class index, got {type(value).__name__} {value!r}"
        )
    return int(value)


def validate_targets(
    targets: Tensor | Sequence[int],
    *,
    batch: int | None = None,
    num_classes: int | None = None,
) -> Tensor:
    """Check one class index per image and return them as a ``(B,)`` ``torch.long`` tensor.

    ``targets`` is a 1-D integer tensor (kept on its device), or a sequence (a tensor or
    array along its first dimension) of ints, numpy ints or one-element integer tensors;
    the result of a sequence is on the CPU. ``.tolist()`` gives the indices as ints.

    Args:
        targets: the class indices, one per image.
        batch: the number of images, when known: ``targets`` must have that length.
        num_classes: the number of classes ``K``, when known: every index must lie in
            ``0..K-1``. Without it, indices must be ``>= 0``.

    Raises:
        TargetError: ``targets`` is not a sequence, an index is not an int (a float or a
            bool), the length differs from ``batch``, or an index is out of range.
    """
    if isinstance(targets, (str, bytes)) or not (
        isinstance(targets, (Sequence, Tensor)) or hasattr(targets, "__array__")
    ):
        raise TargetError(
            f"targets must be a (B,) tensor or a sequence of int class indices, one per image, "
            f"got {type(targets).__name__}"
        )
    if not isinstance(targets, Tensor) and hasattr(targets, "__array__"):
        try:
            targets = torch.as_tensor(targets)
        except (TypeError, ValueError, RuntimeError):
            raise TargetError(
                f"targets must hold int class indices, got an array {targets!r}"
            ) from None
    if isinstance(targets, Tensor) and targets.ndim == 0:
        raise TargetError(
            "targets must be a (B,) tensor with one class index per image, got a 0-d tensor"
        )
    count = len(targets)
    if batch is not None and count != batch:
        raise TargetError(
            f"got {count} targets for a batch of {batch} images; give one class index per "
            f"image, a tensor or sequence of shape ({batch},)"
        )
    if isinstance(targets, Tensor) and targets.ndim == 1:
        if not _is_integer(targets.dtype):
            raise TargetError(
                f"targets must hold integer class indices, got a tensor of dtype "
                f"{targets.dtype}; convert whole-number labels with .long()"
            )
        indices = targets.detach().long()
        outside = indices < 0
        if num_classes is not None:
            outside |= indices >= num_classes
        first = int(indices[outside][0]) if count and bool(outside.any()) else None
    else:
        values = [_class_index(value) for value in targets]
        indices = torch.tensor(values, dtype=torch.long)
        limit = num_classes
        # host values are checked on the host, without tensor operations
        first = next((v for v in values if v < 0 or (limit is not None and v >= limit)), None)
    if first is not None:
        if num_classes is None:
            raise TargetError(f"target {first} is out of range: class indices are >= 0")
        raise TargetError(
            f"target {first} is out of range: the model has {num_classes} classes "
            f"(valid targets are 0..{num_classes - 1})"
        )
    return indices


def _is_integer(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def target_scores(logits: Tensor, target: TargetSpec) -> tuple[Tensor, list[int | None]]:
    """Return each sample's score to explain, shape ``(B,)``, and the class indices used.

    The index is ``None`` for a callable target.

    Raises:
        TargetError: a class index out of range or not an int, a list whose length differs
            from the batch, or a callable that does not return one score per sample.
    """
    batch = logits.shape[0]
    if callable(target):
        scores = target(logits)
        if not isinstance(scores, Tensor) or scores.shape != (batch,):
            raise TargetError(
                f"a callable target must return a tensor of shape ({batch},), one score per "
                f"image, got {tuple(getattr(scores, 'shape', ())) or type(scores).__name__}"
            )
        return scores, [None] * batch
    index = target_indices(logits, target)
    return logits.gather(1, index[:, None])[:, 0], list(index.tolist())


def target_indices(logits: Tensor, target: int | Sequence[int] | Tensor | None) -> Tensor:
    """The class index of each sample ``(B,)`` (``torch.long``, on the logits' device) for a
    target that is not a callable: the predicted class for ``None`` (computed on the device,
    nothing is read back), else the given indices, checked on the host.

    Raises:
        TargetError: a class index out of range or not an int, or a list whose length
            differs from the batch.
    """
    batch, num_classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    one: list[Any] = [target]  # an int, a numpy int or a 0-d tensor, checked as one index
    if (
        isinstance(target, (Sequence, Tensor))
        and not isinstance(target, str)
        and not (isinstance(target, Tensor) and target.ndim == 0)
    ):
        indices = validate_targets(target, batch=batch, num_classes=num_classes)
    else:
        indices = validate_targets(one, num_classes=num_classes).repeat(batch)
    # a host tensor made here (not the caller's, which may be pinned memory the caller
    # changes next) is staged at once: its copy need not wait for the device
    made_here = not isinstance(target, Tensor) or target.ndim == 0
    return indices.to(logits.device, non_blocking=made_here)
