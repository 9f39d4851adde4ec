"""Reading class scores from a model's output and choosing what to explain."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from camkit.errors import ModelOutputError, TargetError

__all__ = ["OutputSelector", "TargetSpec", "select_logits", "target_scores"]

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


def _as_index(value: Any, num_classes: int) -> int:
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TargetError(
            f"a target must be an int class index, got {type(value).__name__} {value!r}"
        )
    index = int(value)
    if not 0 <= index < num_classes:
        raise TargetError(
            f"target {index} is out of range: the model has {num_classes} classes "
            f"(valid targets are 0..{num_classes - 1})"
        )
    return index


def target_scores(logits: Tensor, target: TargetSpec) -> tuple[Tensor, list[int | None]]:
    """Return each sample's score to explain, shape ``(B,)``, and the class indices used.

    The index is ``None`` for a callable target.

    Raises:
        TargetError: a class index out of range or not an int, a list whose length differs
            from the batch, or a callable that does not return one score per sample.
    """
    batch, num_classes = logits.shape
    if callable(target):
        scores = target(logits)
        if not isinstance(scores, Tensor) or scores.shape != (batch,):
            raise TargetError(
                f"a callable target must return a tensor of shape ({batch},), one score per "
                f"image, got {tuple(getattr(scores, 'shape', ())) or type(scores).__name__}"
            )
        return scores, [None] * batch
    if target is None:
        indices = logits.detach().argmax(dim=1).tolist()
    elif isinstance(target, Tensor) and target.ndim == 0:
        indices = [_as_index(target, num_classes)] * batch
    elif isinstance(target, (Sequence, Tensor)) and not isinstance(target, str):
        values = list(target)
        if len(values) != batch:
            raise TargetError(
                f"got {len(values)} targets for a batch of {batch} images; give one target "
                "per image, a single int for all, or None for the predicted classes"
            )
        indices = [_as_index(v, num_classes) for v in values]
    else:
        indices = [_as_index(target, num_classes)] * batch
    index = torch.tensor(indices, device=logits.device, dtype=torch.long)
    return logits.gather(1, index[:, None])[:, 0], list(indices)
