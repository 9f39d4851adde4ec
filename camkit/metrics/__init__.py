"""Quantitative evaluation of class-activation maps, batched on torch tensors.

Two families of metrics:

* **Localisation** against ground-truth boxes, model-free (``camkit.metrics.localisation``):
  :func:`pointing_game` (Zhang et al., 2016) and :func:`energy_pointing_game` (Wang et al.,
  2020).
* **Faithfulness**, which run the model on images changed according to the map
  (``camkit.metrics.faithfulness``): the methods of a :class:`Scorer` built once per
  model, :meth:`~Scorer.confidence_drop`, :meth:`~Scorer.average_drop` and
  :meth:`~Scorer.increase_in_confidence` (Chattopadhay et al., 2018),
  :meth:`~Scorer.deletion_auc` and :meth:`~Scorer.insertion_auc` (Petsiuk et al., 2018).

Conventions shared by every metric:

* ``cams`` is a ``(B, H, W)`` floating tensor, one map per image, of any floating dtype
  (float16, bfloat16, float32, float64) and on any device; the faithfulness metrics move it
  to the images' device and dtype themselves. They need it at the input resolution,
  ``(H, W)`` of ``images``.
* ``images`` is the ``(B, C, H, W)`` batch exactly as the model takes it (preprocessed).
* ``targets`` is one class index per image, a ``(B,)`` integer tensor or a sequence of
  ints, checked by :func:`camkit.targets.validate_targets` like the Explainer's targets.
* A box is ``(x0, y0, x1, y1)`` in pixels of the map: columns ``x0 <= x < x1`` and rows
  ``y0 <= y < y1`` (``x1`` and ``y1`` exclusive), with ``0 <= x0 < x1 <= W`` and
  ``0 <= y0 < y1 <= H``.
* The class score is always the **softmax probability** of the target class, never the
  logit, as in both papers.
* The model runs under ``torch.no_grad()`` with every module in eval mode; each module's
  training flag and the caller's grad mode are restored afterwards, and no ``.grad`` is
  written. The model must already be on the images' device.
* Per-image values come back as tensors of shape ``(B,)``; :meth:`~Scorer.average_drop` and
  :meth:`~Scorer.increase_in_confidence`, defined by their paper as aggregates, return
  scalars.
"""

from __future__ import annotations

from camkit.metrics.faithfulness import BLUR_SIGMA, BLUR_SIZE, Scorer
from camkit.metrics.localisation import Box, Boxes, energy_pointing_game, pointing_game

__all__ = [
    "BLUR_SIGMA",
    "BLUR_SIZE",
    "Box",
    "Boxes",
    "Scorer",
    "energy_pointing_game",
    "pointing_game",
]
